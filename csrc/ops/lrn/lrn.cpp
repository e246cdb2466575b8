#include "ops/lrn/lrn.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/threads.h"

namespace convcore {

void lrn(index_t N, index_t C, index_t inner, index_t size, index_t before, index_t after, double alpha, double beta,
         double k, const float* x, float* y) {
  require(size >= 1 && before >= 0 && after >= 0, "lrn: size must be >= 1");
  const int threads = threads_for(static_cast<double>(N) * C * inner * size, 1 << 17);
  // Every thread's accumulators, allocated here: an exception (std::bad_alloc) must not leave an OpenMP region.
  std::vector<double> accs(inner * threads);
#pragma omp parallel num_threads(threads)
  {
    double* const acc = accs.data() + inner * omp_get_thread_num();
#pragma omp for collapse(2)
    for (index_t n = 0; n < N; ++n)
      for (index_t c = 0; c < C; ++c) {
        std::fill(acc, acc + inner, 0.0);
        const index_t c0 = std::max<index_t>(0, c - before), c1 = std::min<index_t>(C - 1, c + after);
        for (index_t cc = c0; cc <= c1; ++cc) {
          const float* xp = x + (n * C + cc) * inner;
          for (index_t i = 0; i < inner; ++i) acc[i] += static_cast<double>(xp[i]) * xp[i];
        }
        const float* xp = x + (n * C + c) * inner;
        float* yp = y + (n * C + c) * inner;
        for (index_t i = 0; i < inner; ++i)
          yp[i] = static_cast<float>(xp[i] / std::pow(k + alpha / static_cast<double>(size) * acc[i], beta));
      }
  }
}

}  // namespace convcore
