// AVX2+FMA micro-kernel: 6 rows x 16 columns (12 ymm accumulators). Edge tiles use exact-size instantiations and
// masked loads/stores.
#include <immintrin.h>

#include "ops/gemm/gemm.h"

namespace convcore {
namespace avx2 {
namespace {

constexpr int kMR = 6;
constexpr int kNR = 16;

inline __m256i tail_mask(int n) {
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lanes);
}

template <int M, int NV, bool kIndirect>
void tile(index_t kc, const float* a, index_t lda, const float* b, const index_t* boff, float* c, index_t ldc,
          int n_valid,
          bool accumulate, bool last, const float* bias_row, const float* bias_col, Clamp clamp) {
  __m256i mask[NV];
#pragma GCC unroll 2
  for (int v = 0; v < NV; ++v) mask[v] = tail_mask(n_valid - 8 * v);
  __m256 acc[M][NV];
#pragma GCC unroll 6
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_setzero_ps();
  for (index_t k = 0; k < kc; ++k) {
    __m256 bv[NV];
    if (kIndirect) {  // in-place rows: never read past the valid columns
      const float* bk = b + boff[k];
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) bv[v] = _mm256_maskload_ps(bk + 8 * v, mask[v]);
    } else {
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) bv[v] = _mm256_loadu_ps(b + k * kNR + 8 * v);
    }
#pragma GCC unroll 6
    for (int i = 0; i < M; ++i) {
      const __m256 av = _mm256_broadcast_ss(a + i * lda + k);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_fmadd_ps(av, bv[v], acc[i][v]);
    }
  }
  const __m256 lo = _mm256_set1_ps(clamp.lo), hi = _mm256_set1_ps(clamp.hi);
#pragma GCC unroll 6
  for (int i = 0; i < M; ++i) {
    float* crow = c + i * ldc;
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) {
      __m256 r = acc[i][v];
      if (accumulate) r = _mm256_add_ps(r, _mm256_maskload_ps(crow + 8 * v, mask[v]));
      if (last) {
        if (bias_row) r = _mm256_add_ps(r, _mm256_set1_ps(bias_row[i]));
        if (bias_col) r = _mm256_add_ps(r, _mm256_maskload_ps(bias_col + 8 * v, mask[v]));
        r = _mm256_min_ps(hi, _mm256_max_ps(lo, r));  // this operand order lets NaN through
      }
      _mm256_maskstore_ps(crow + 8 * v, mask[v], r);
    }
  }
}

using TileFn = void (*)(index_t, const float*, index_t, const float*, const index_t*, float*, index_t, int, bool, bool,
                        const float*, const float*, Clamp);

template <int M>
constexpr TileFn kTiles[2][2] = {{tile<M, 1, false>, tile<M, 2, false>}, {tile<M, 1, true>, tile<M, 2, true>}};

void f32_gemm_6x16_avx2(index_t kc, const float* a, index_t lda, const float* b, const index_t* boff, float* c, index_t ldc,
                        int m_valid, int n_valid, bool accumulate, bool last, const float* bias_row,
                        const float* bias_col, Clamp clamp) {
  static constexpr const TileFn (*by_rows[kMR])[2] = {kTiles<1>, kTiles<2>, kTiles<3>,
                                                       kTiles<4>, kTiles<5>, kTiles<6>};
  const int nv = (n_valid + 7) / 8;  // vectors this tile needs
  by_rows[m_valid - 1][boff != nullptr][nv - 1](kc, a, lda, b, boff, c, ldc, n_valid, accumulate, last, bias_row,
                                                bias_col, clamp);
}

}  // namespace

extern const GemmConfig kGemmConfig = {kMR, kNR, f32_gemm_6x16_avx2, "f32_gemm_6x16_avx2"};

}  // namespace avx2
}  // namespace convcore
