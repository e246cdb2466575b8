// A thin vector type per ISA, so that each kernel is written once (kernels_simd.inc) and compiled twice: in
// kernels_avx512.cpp (16 lanes) and kernels_avx2.cpp (8 lanes). Only *_avx2.cpp / *_avx512.cpp files include this
// header; each is compiled with its own -m flags (CMakeLists.txt), so no wide instruction reaches the baseline code.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace convcore {

#if defined(__AVX512F__)
struct Vec512 {
  using reg = __m512;
  using mask = __mmask16;
  static constexpr int N = 16;
  static reg zero() { return _mm512_setzero_ps(); }
  static reg set1(float v) { return _mm512_set1_ps(v); }
  static reg load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, reg v) { _mm512_storeu_ps(p, v); }
  static mask tail(int n) {  // the first n lanes (n may exceed N or be <= 0)
    return n >= N ? static_cast<mask>(0xffff) : static_cast<mask>(n <= 0 ? 0u : (1u << n) - 1u);
  }
  static reg load(const float* p, mask m) { return _mm512_maskz_loadu_ps(m, p); }
  static void store(float* p, reg v, mask m) { _mm512_mask_storeu_ps(p, m, v); }
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  // Lane i <- lane (i / G) * G + j of a vector: input channel j of each lane's group of G channels.
  using index = __m512i;
  static index group_lane(int G, int j) {
    alignas(64) int32_t t[N];
    for (int i = 0; i < N; ++i) t[i] = i / G * G + j;
    return _mm512_load_si512(t);
  }
  static reg permute(reg v, index i) { return _mm512_permutexvar_ps(i, v); }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm512_sub_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
  static reg div(reg a, reg b) { return _mm512_div_ps(a, b); }
  // 1 / a to within 1-2 ulp: a 14-bit estimate and one Newton step (a division takes ~16 cycles of throughput).
  // The step is r * (2 - a * r), not 2r - r * r * a: r * r underflows to 0 for a above ~1e19 (sigmoid(-58) came out
  // 2x too large).
  static reg rcp(reg a) {
    const reg r = _mm512_rcp14_ps(a);
    return _mm512_mul_ps(r, _mm512_fnmadd_ps(a, r, _mm512_set1_ps(2.0f)));
  }
  // max / min return the second operand when either is NaN: max(lo, x) and min(hi, x) let a NaN x through.
  static reg max(reg a, reg b) { return _mm512_max_ps(a, b); }
  static reg min(reg a, reg b) { return _mm512_min_ps(a, b); }
  static reg round(reg a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // a / b by the faster accurate route: a * rcp(b) (a zmm division takes ~10-16 cycles of throughput)
  static reg quotient(reg a, reg b) { return _mm512_mul_ps(a, rcp(b)); }
  static reg fms(reg a, reg b, reg c) { return _mm512_fmsub_ps(a, b, c); }  // a * b - c
  // 2^n from big = n + 127 + 1.5 * 2^23 (n an integer in [-126, 127]): big's low mantissa bits are n + 127.
  static reg pow2_biased(reg big) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_castps_si512(big), 23)); }
  static reg select_lt(reg a, reg b, reg if_lt, reg otherwise) {  // a < b ? if_lt : otherwise (false for NaN)
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_LT_OQ), otherwise, if_lt);
  }
  static reg select_nan(reg a, reg if_nan, reg otherwise) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q), otherwise, if_nan);
  }
  static reg abs(reg a) { return _mm512_abs_ps(a); }
  static float hsum(reg a) { return _mm512_reduce_add_ps(a); }
  static float hmax(reg a) { return _mm512_reduce_max_ps(a); }
  // r[i][j] <- r[j][i] for a 16 x 16 block: pairs, quads, then 128-bit lanes (the 4 x 4 of lanes in two steps).
  static void transpose(reg* r) {
    reg t[16];
    for (int i = 0; i < 16; i += 2) {
      t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
      t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
      const __m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 1]);
      const __m512d c = _mm512_castps_pd(t[i + 2]), d = _mm512_castps_pd(t[i + 3]);
      r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
      r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
      r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
      r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int i = 0; i < 4; ++i) {
      t[i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0x88);
      t[4 + i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0xdd);
      t[8 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0x88);
      t[12 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0xdd);
    }
    for (int i = 0; i < 4; ++i) {
      r[i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88);
      r[8 + i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0xdd);
      r[4 + i] = _mm512_shuffle_f32x4(t[4 + i], t[12 + i], 0x88);
      r[12 + i] = _mm512_shuffle_f32x4(t[4 + i], t[12 + i], 0xdd);
    }
  }
};
#endif

#if defined(__AVX2__)
struct Vec256 {
  using reg = __m256;
  // The lanes of a tail, and whether that is all of them: `vmaskmovps` is microcoded on AMD before Zen 4 (a masked
  // store costs ~10x a plain one on Zen 2), so whole vectors, the common case, take the plain load and store.
  struct mask {
    __m256i lanes;
    bool full;
  };
  static constexpr int N = 8;
  static reg zero() { return _mm256_setzero_ps(); }
  static reg set1(float v) { return _mm256_set1_ps(v); }
  static reg load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, reg v) { _mm256_storeu_ps(p, v); }
  static mask tail(int n) {
    const int k = n >= N ? N : (n <= 0 ? 0 : n);
    return {_mm256_cmpgt_epi32(_mm256_set1_epi32(k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)), k == N};
  }
  static reg load(const float* p, mask m) { return m.full ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m.lanes); }
  static void store(float* p, reg v, mask m) {
    if (m.full)
      _mm256_storeu_ps(p, v);
    else
      _mm256_maskstore_ps(p, m.lanes, v);
  }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  using index = __m256i;  // see Vec512::group_lane
  static index group_lane(int G, int j) {
    alignas(32) int32_t t[N];
    for (int i = 0; i < N; ++i) t[i] = i / G * G + j;
    return _mm256_load_si256(reinterpret_cast<const __m256i*>(t));
  }
  static reg permute(reg v, index i) { return _mm256_permutevar8x32_ps(v, i); }
  static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm256_sub_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
  static reg div(reg a, reg b) { return _mm256_div_ps(a, b); }
  // 1 / a: a 12-bit estimate and one Newton step (about 23 bits).
  static reg rcp(reg a) {  // r * (2 - a * r): see the AVX-512 rcp
    const reg r = _mm256_rcp_ps(a);
    return _mm256_mul_ps(r, _mm256_fnmadd_ps(a, r, _mm256_set1_ps(2.0f)));
  }
  static reg max(reg a, reg b) { return _mm256_max_ps(a, b); }
  static reg min(reg a, reg b) { return _mm256_min_ps(a, b); }
  static reg round(reg a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // a / b: a ymm division (10-11 cycles of latency, one per 3.5-6.5 cycles) is shorter on the critical path than
  // rcp + a Newton step + the multiply (16 cycles), and exact.
  static reg quotient(reg a, reg b) { return _mm256_div_ps(a, b); }
  static reg fms(reg a, reg b, reg c) { return _mm256_fmsub_ps(a, b, c); }  // a * b - c
  static reg pow2_biased(reg big) {  // see Vec512::pow2_biased
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(big), 23));
  }
  static reg select_lt(reg a, reg b, reg if_lt, reg otherwise) {
    return _mm256_blendv_ps(otherwise, if_lt, _mm256_cmp_ps(a, b, _CMP_LT_OQ));
  }
  static reg select_nan(reg a, reg if_nan, reg otherwise) {
    return _mm256_blendv_ps(otherwise, if_nan, _mm256_cmp_ps(a, a, _CMP_UNORD_Q));
  }
  static reg abs(reg a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
  static float hsum(reg a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static float hmax(reg a) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  // r[i][j] <- r[j][i] for an 8 x 8 block.
  static void transpose(reg* r) {
    reg t[8], s[8];
    for (int i = 0; i < 8; i += 2) {
      t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
      t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
      s[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
      s[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
      s[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
      s[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int i = 0; i < 4; ++i) {
      r[i] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x20);
      r[i + 4] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x31);
    }
  }
};
#endif

}  // namespace convcore
