#include <algorithm>

#include "core/pool.h"
#include "core/threads.h"
#include "ops/linear/linear.h"

namespace convcore {

void linear_ref(index_t M, index_t N, index_t K, const float* x, const float* w, const float* bias, float* y) {
  parallel_for(M * N, threads_for(2.0 * M * N * K, 1 << 18), [&](index_t i0, index_t i1) {
    for (index_t i = i0; i < i1; ++i) {
      const index_t m = i / N, n = i % N;
      double acc = bias ? bias[n] : 0.0;
      for (index_t k = 0; k < K; ++k) acc += static_cast<double>(x[m * K + k]) * w[n * K + k];
      y[m * N + n] = static_cast<float>(acc);
    }
  });
}

}  // namespace convcore
