#include "ops/lrn/lrn.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/pool.h"
#include "core/threads.h"

namespace convcore {

void lrn(index_t N, index_t C, index_t inner, index_t size, index_t before, index_t after, double alpha, double beta,
         double k, const float* x, float* y) {
  require(size >= 1 && before >= 0 && after >= 0, "lrn: size must be >= 1");
  const int threads = threads_for(static_cast<double>(N) * C * inner * size, 1 << 17);
  parallel_for(N * C, threads, [&](index_t p0, index_t p1) {
    std::vector<double> acc(inner);  // this range's sums of squares
    for (index_t p = p0; p < p1; ++p) {
      const index_t n = p / C, c = p % C;
      std::fill(acc.begin(), acc.end(), 0.0);
      const index_t c0 = std::max<index_t>(0, c - before), c1 = std::min<index_t>(C - 1, c + after);
      for (index_t cc = c0; cc <= c1; ++cc) {
        const float* xp = x + (n * C + cc) * inner;
        for (index_t i = 0; i < inner; ++i) acc[i] += static_cast<double>(xp[i]) * xp[i];
      }
      const float* xp = x + p * inner;
      float* yp = y + p * inner;
      for (index_t i = 0; i < inner; ++i)
        yp[i] = static_cast<float>(xp[i] / std::pow(k + alpha / static_cast<double>(size) * acc[i], beta));
    }
  });
}

}  // namespace convcore
