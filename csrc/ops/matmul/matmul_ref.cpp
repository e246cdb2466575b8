#include <omp.h>

#include "core/threads.h"
#include "ops/matmul/matmul.h"

namespace convcore {

void matmul_ref(index_t batch, index_t M, index_t N, index_t K, const float* a, const index_t* a_offsets,
                const float* b, const index_t* b_offsets, float* c) {
#pragma omp parallel for collapse(2) num_threads(threads_for(2.0 * batch * M * N * K, 1 << 18))
  for (index_t i = 0; i < batch; ++i)
    for (index_t m = 0; m < M; ++m) {
      const float* ai = a + a_offsets[i] + m * K;
      const float* bi = b + b_offsets[i];
      for (index_t n = 0; n < N; ++n) {
        double acc = 0.0;
        for (index_t k = 0; k < K; ++k) acc += static_cast<double>(ai[k]) * bi[k * N + n];
        c[(i * M + m) * N + n] = static_cast<float>(acc);
      }
    }
}

}  // namespace convcore
