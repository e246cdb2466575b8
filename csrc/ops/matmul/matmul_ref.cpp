#include "core/pool.h"
#include "core/threads.h"
#include "ops/matmul/matmul.h"

namespace convcore {

void matmul_ref(index_t batch, index_t M, index_t N, index_t K, const float* a, const index_t* a_offsets,
                const float* b, const index_t* b_offsets, float* c) {
  parallel_for(batch * M, threads_for(2.0 * batch * M * N * K, 1 << 18), [&](index_t r0, index_t r1) {
    for (index_t r = r0; r < r1; ++r) {
      const index_t i = r / M, m = r % M;
      const float* ai = a + a_offsets[i] + m * K;
      const float* bi = b + b_offsets[i];
      for (index_t n = 0; n < N; ++n) {
        double acc = 0.0;
        for (index_t k = 0; k < K; ++k) acc += static_cast<double>(ai[k]) * bi[k * N + n];
        c[(i * M + m) * N + n] = static_cast<float>(acc);
      }
    }
  });
}

}  // namespace convcore
