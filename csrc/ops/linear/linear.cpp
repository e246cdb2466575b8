#include "ops/linear/linear.h"

#include <algorithm>
#include <vector>

#include "core/aligned.h"
#include "core/cpu.h"
#include "core/pool.h"
#include "core/threads.h"
#include "kernels/kernels.h"

namespace convcore {

namespace {
constexpr index_t kBlockK = 512;  // the reduction in blocks: a block of B (kc x 64 columns) stays in L2

// C (m x n) = A (m x kd) B (kd x n) + bias per row, all row-major, on the kernels' NCHW-orientation GEMM (A broadcast
// as stored, B rows read in place), rows of C split across the pool's threads.
void rows_gemm(const Kernels& k, index_t m, index_t n, index_t kd, const float* a, const float* b, const float* bias,
               float* c, int threads) {
  std::vector<index_t> boff(static_cast<size_t>(std::min(kd, kBlockK)));
  for (index_t i = 0; i < static_cast<index_t>(boff.size()); ++i) boff[static_cast<size_t>(i)] = i * n;
  const index_t chunk = std::max<index_t>(8, ceil_div(ceil_div(m, 4 * threads), 8) * 8);  // rows per task
  run_chunks(ceil_div(m, chunk), threads, [&](index_t t) {
    const index_t r0 = t * chunk, rows = std::min(chunk, m - r0);
    for (index_t k0 = 0; k0 < kd; k0 += kBlockK)
      k.gemm_rows(std::min(kBlockK, kd - k0), a + r0 * kd + k0, kd, k0 == 0 && bias ? bias + r0 : nullptr,
                  b + k0 * n, boff.data(), c + r0 * n, n, rows, n, k0 > 0);
  });
}
}  // namespace

// y = x W^T is a GEMM whose B operand, W^T, is not row-major as stored. A few rows (batch-1 classifier heads) are
// memory-bound dot products over each weight row as stored. Otherwise the smaller side is transposed: x and y
// (y^T = W x^T: the weights are the broadcast operand, streamed once), or W (when x has more rows than W).
void linear(index_t M, index_t N, index_t K, const float* x, const float* w, const float* bias, float* y) {
  require(M >= 1 && N >= 1 && K >= 1, "linear: sizes must be positive");
  const Isa isa = active_isa();
  if (isa == Isa::scalar) return linear_ref(M, N, K, x, w, bias, y);
  const int threads = threads_for(2.0 * M * N * K, 1 << 20);
  const Kernels& k = kernels_for(isa);
  if (M <= 4) {
    constexpr index_t kRows = 64;  // weight rows per chunk
    run_chunks(ceil_div(N, kRows), threads_for(static_cast<double>(N) * K, 1 << 18), [&](index_t chunk) {
      k.dot_rows(K, x, M, w, chunk * kRows, std::min(N, (chunk + 1) * kRows), bias, y, N);
    });
    return;
  }
  if (M * (K + N) <= N * K) {
    AlignedVector xt(static_cast<size_t>(K * M)), yt(static_cast<size_t>(N * M));
    k.nhwc_to_nchw(x, K, K, M, xt.data(), 0, M);  // (M, K) -> (K, M)
    rows_gemm(k, N, M, K, w, xt.data(), bias, yt.data(), threads);
    k.nchw_to_nhwc(yt.data(), N, M, y, N, 0, M);  // (N, M) -> (M, N)
    return;
  }
  AlignedVector wt(static_cast<size_t>(K * N));
  k.nhwc_to_nchw(w, K, K, N, wt.data(), 0, N);  // (N, K) -> (K, N)
  rows_gemm(k, M, N, K, x, wt.data(), nullptr, y, threads);
  if (bias)
    run_chunks(ceil_div(M, 64), threads, [&](index_t t) {
      for (index_t m = t * 64; m < std::min(M, (t + 1) * 64); ++m)
        for (index_t j = 0; j < N; ++j) y[m * N + j] += bias[j];
    });
}

}  // namespace convcore
