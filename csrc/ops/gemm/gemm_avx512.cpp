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

inline __mmask16 tail_mask(int n) {
  return n >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>(n <= 0 ? 0u : (1u << n) - 1u);
}

template <int M, int NV, bool kIndirect>
void tile(index_t kc, const float* a, index_t lda, const float* b, const index_t* boff, float* c, index_t ldc,
          int n_valid,
          bool accumulate, bool last, const float* bias_row, const float* bias_col, Clamp clamp) {
  static_assert(NV * 16 <= kNR, "tile wider than a B panel");
  __mmask16 mask[NV];
#pragma GCC unroll 3
  for (int v = 0; v < NV; ++v) mask[v] = tail_mask(n_valid - 16 * v);
  __m512 acc[M][NV];
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  for (index_t k = 0; k < kc; ++k) {
    __m512 bv[NV];
    if (kIndirect) {  // in-place rows: never read past the valid columns
      const float* bk = b + boff[k];
#pragma GCC unroll 3
      for (int v = 0; v < NV; ++v) bv[v] = _mm512_maskz_loadu_ps(mask[v], bk + 16 * v);
    } else {
#pragma GCC unroll 3
      for (int v = 0; v < NV; ++v) bv[v] = _mm512_loadu_ps(b + k * kNR + 16 * v);
    }
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
      const __m512 av = _mm512_set1_ps(a[i * lda + k]);
#pragma GCC unroll 3
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);
    }
  }
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

using TileFn = void (*)(index_t, const float*, index_t, const float*, const index_t*, float*, index_t, int, bool, bool,
                        const float*, const float*, Clamp);

template <int M>
constexpr TileFn kTiles[2][3] = {{tile<M, 1, false>, tile<M, 2, false>, tile<M, 3, false>},
                                 {tile<M, 1, true>, tile<M, 2, true>, tile<M, 3, true>}};

void f32_gemm_8x48_avx512(index_t kc, const float* a, index_t lda, const float* b, const index_t* boff, float* c, index_t ldc,
                          int m_valid, int n_valid, bool accumulate, bool last, const float* bias_row,
                          const float* bias_col, Clamp clamp) {
  static constexpr const TileFn (*by_rows[kMR])[3] = {kTiles<1>, kTiles<2>, kTiles<3>, kTiles<4>,
                                                       kTiles<5>, kTiles<6>, kTiles<7>, kTiles<8>};
  const int nv = (n_valid + 15) / 16;  // vectors this tile needs
  by_rows[m_valid - 1][boff != nullptr][nv - 1](kc, a, lda, b, boff, c, ldc, n_valid, accumulate, last, bias_row,
                                                bias_col, clamp);
}

}  // namespace

extern const GemmConfig kGemmConfig = {kMR, kNR, f32_gemm_8x48_avx512, "f32_gemm_8x48_avx512"};

}  // namespace avx512
}  // namespace convcore
