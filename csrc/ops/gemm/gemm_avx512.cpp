// AVX-512 micro-kernel: 8 rows x 48 columns (24 zmm accumulators), one broadcast of A per row and three loads of B per
// k step. 8 rows divide the channel counts of nearly every CNN layer (64, 40, 112, 320, ...), so row tiles are rarely
// partial; partial column tiles run an instantiation with only the vectors they need, and store with masks.
#include <immintrin.h>

#include "ops/gemm/gemm.h"

namespace convcore {
namespace avx512 {
namespace {

constexpr int kMR = 8;
constexpr int kNR = 48;

inline __mmask16 tail_mask(int n) { return n >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << n) - 1u); }

template <int M, int NV>
void tile(index_t kc, const float* a, const float* b, float* c, index_t ldc, int n_valid, bool accumulate, bool last,
          const float* bias_row, const float* bias_col, Clamp clamp) {
  static_assert(NV * 16 <= kNR, "tile wider than a B panel");
  __m512 acc[M][NV];
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  for (index_t k = 0; k < kc; ++k) {
    __m512 bv[NV];
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_loadu_ps(b + k * kNR + 16 * v);
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
      const __m512 av = _mm512_set1_ps(a[k * kMR + i]);
#pragma GCC unroll 3
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);
    }
  }
  __mmask16 mask[NV];
#pragma GCC unroll 3
  for (int v = 0; v < NV; ++v) mask[v] = tail_mask(n_valid - 16 * v);
  const __m512 lo = _mm512_set1_ps(clamp.lo), hi = _mm512_set1_ps(clamp.hi);
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i) {
    float* crow = c + i * ldc;
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) {
      __m512 r = acc[i][v];
      if (accumulate) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(mask[v], crow + 16 * v));
      if (last) {
        if (bias_row) r = _mm512_add_ps(r, _mm512_set1_ps(bias_row[i]));
        if (bias_col) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(mask[v], bias_col + 16 * v));
        r = _mm512_min_ps(hi, _mm512_max_ps(lo, r));  // this operand order lets NaN through
      }
      _mm512_mask_storeu_ps(crow + 16 * v, mask[v], r);
    }
  }
}

template <int M>
void tile_rows(index_t kc, const float* a, const float* b, float* c, index_t ldc, int n_valid, bool accumulate,
               bool last, const float* bias_row, const float* bias_col, Clamp clamp) {
  if (n_valid > 32)
    tile<M, 3>(kc, a, b, c, ldc, n_valid, accumulate, last, bias_row, bias_col, clamp);
  else if (n_valid > 16)
    tile<M, 2>(kc, a, b, c, ldc, n_valid, accumulate, last, bias_row, bias_col, clamp);
  else
    tile<M, 1>(kc, a, b, c, ldc, n_valid, accumulate, last, bias_row, bias_col, clamp);
}

void f32_gemm_8x48_avx512(index_t kc, const float* a, const float* b, float* c, index_t ldc, int m_valid,
                           int n_valid, bool accumulate, bool last, const float* bias_row, const float* bias_col,
                           Clamp clamp) {
  using Fn = void (*)(index_t, const float*, const float*, float*, index_t, int, bool, bool, const float*,
                      const float*, Clamp);
  static constexpr Fn by_rows[kMR] = {tile_rows<1>, tile_rows<2>, tile_rows<3>, tile_rows<4>,
                                      tile_rows<5>, tile_rows<6>, tile_rows<7>, tile_rows<8>};
  by_rows[m_valid - 1](kc, a, b, c, ldc, n_valid, accumulate, last, bias_row, bias_col, clamp);
}

}  // namespace

extern const GemmConfig kGemmConfig = {kMR, kNR, f32_gemm_8x48_avx512, "f32_gemm_8x48_avx512"};

}  // namespace avx512
}  // namespace convcore
