#include <algorithm>

#include "core/threads.h"
#include "ops/linear/linear.h"

namespace convcore {

void linear_ref(index_t M, index_t N, index_t K, const float* x, const float* w, const float* bias, float* y) {
#pragma omp parallel for collapse(2) num_threads(threads_for(2.0 * M * N * K, 1 << 18))
  for (index_t m = 0; m < M; ++m)
    for (index_t n = 0; n < N; ++n) {
      double acc = bias ? bias[n] : 0.0;
      for (index_t k = 0; k < K; ++k) acc += static_cast<double>(x[m * K + k]) * w[n * K + k];
      y[m * N + n] = static_cast<float>(acc);
    }
}

}  // namespace convcore
