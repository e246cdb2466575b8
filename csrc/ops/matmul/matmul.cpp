#include "ops/matmul/matmul.h"

#include <algorithm>
#include <vector>

#include "core/cpu.h"
#include "core/pool.h"
#include "core/threads.h"
#include "kernels/kernels.h"

namespace convcore {

// Each product C[b] = A[b] B[b] is the kernels' NCHW-orientation GEMM as the operands lie (A's rows broadcast, B's
// rows read in place): tasks are (product, block of rows of C).
void matmul(index_t batch, index_t M, index_t N, index_t K, const float* a, const index_t* a_offsets, const float* b,
            const index_t* b_offsets, float* c) {
  require(batch >= 0 && M >= 1 && N >= 1 && K >= 0, "matmul: bad sizes");
  if (K == 0) {
    std::fill(c, c + batch * M * N, 0.0f);
    return;
  }
  const Isa isa = active_isa();
  if (isa == Isa::scalar) return matmul_ref(batch, M, N, K, a, a_offsets, b, b_offsets, c);
  const Kernels& k = kernels_for(isa);
  constexpr index_t kBlockK = 512;
  std::vector<index_t> boff(static_cast<size_t>(std::min(K, kBlockK)));
  for (index_t i = 0; i < static_cast<index_t>(boff.size()); ++i) boff[static_cast<size_t>(i)] = i * N;
  const int threads = threads_for(2.0 * batch * M * N * K, 1 << 20);
  const index_t chunk = std::max<index_t>(8, ceil_div(ceil_div(M * batch, 4 * threads), 8) * 8);
  const index_t per_product = ceil_div(M, chunk);
  run_chunks(batch * per_product, threads, [&](index_t t) {
    const index_t i = t / per_product, r0 = t % per_product * chunk, rows = std::min(chunk, M - r0);
    const float* ai = a + a_offsets[i] + r0 * K;
    for (index_t k0 = 0; k0 < K; k0 += kBlockK)
      k.gemm_rows(std::min(kBlockK, K - k0), ai + k0, K, nullptr, b + b_offsets[i] + k0 * N, boff.data(),
                  c + (i * M + r0) * N, N, rows, N, k0 > 0);
  });
}

}  // namespace convcore
