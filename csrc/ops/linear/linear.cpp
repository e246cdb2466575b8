#include "ops/linear/linear.h"

#include <algorithm>

#include "core/cpu.h"
#include "core/pool.h"
#include "core/threads.h"
#include "kernels/pack.h"

namespace convcore {

// The rows of x are the pixels of a 1x1 convolution with weight w (N, K, 1, 1): the kernels' channels-last
// convolution, weights packed for this call. A few rows (batch-1 classifier heads) are memory-bound dot products over
// each weight row as stored instead: packing would cost more than the product.
void linear(index_t M, index_t N, index_t K, const float* x, const float* w, const float* bias, float* y) {
  require(M >= 1 && N >= 1 && K >= 1, "linear: sizes must be positive");
  const Isa isa = active_isa();
  if (isa == Isa::scalar) return linear_ref(M, N, K, x, w, bias, y);
  if (M <= 4) {
    constexpr index_t kRows = 64;  // weight rows per chunk
    run_chunks(ceil_div(N, kRows), threads_for(static_cast<double>(N) * K, 1 << 18), [&](index_t chunk) {
      for (index_t n = chunk * kRows; n < std::min(N, (chunk + 1) * kRows); ++n) {
        const float* wn = w + n * K;
        for (index_t m = 0; m < M; ++m) {
          const float* xm = x + m * K;
          float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
          for (index_t k = 0; k < K; ++k) acc += xm[k] * wn[k];
          y[m * N + n] = acc + (bias ? bias[n] : 0.0f);
        }
      }
    });
    return;
  }
  const Kernels& k = kernels_for(isa);
  const int threads = threads_for(2.0 * M * N * K, 1 << 21);
  const ConvGeom g{1, 1, M, K, 1, M, N, 1, 1, 1, 1, 1, 1, 0, 0, 1, K, N};
  const ConvPacked pk = pack_conv(k, g, w, bias, threads);
  const ConvIO io{x, K, y, N, nullptr, 0, nullptr};
  const index_t blocks = pk.t.blocks_per_group;
  // Output channel blocks to the threads (each reads all of x, the smaller operand), or row ranges when few blocks.
  if (blocks >= 2 * threads || M <= pk.t.mr) {
    run_chunks(blocks, threads, [&](index_t b) { k.conv(g, pk.view(), io, Epilogue{}, 0, M, b, b + 1); });
  } else {
    const index_t rows = ceil_div(ceil_div(M, 2 * threads), pk.t.mr) * pk.t.mr;
    run_chunks(ceil_div(M, rows), threads, [&](index_t r) {
      k.conv(g, pk.view(), io, Epilogue{}, r * rows, std::min(M, (r + 1) * rows), 0, blocks);
    });
  }
}

}  // namespace convcore
