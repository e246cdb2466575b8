#include "ops/batchnorm/batchnorm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/pool.h"
#include "core/threads.h"

namespace convcore {

void batch_norm(index_t N, index_t C, index_t inner, const float* x, const float* mean, const float* var,
                const float* weight, const float* bias, double eps, float* y) {
  std::vector<float> scale(C), shift(C);
  for (index_t c = 0; c < C; ++c) {
    const double sc = (weight ? weight[c] : 1.0) / std::sqrt(static_cast<double>(var[c]) + eps);
    scale[c] = static_cast<float>(sc);
    shift[c] = static_cast<float>((bias ? bias[c] : 0.0) - mean[c] * sc);
  }
  const index_t planes = N * C;
  parallel_for(planes, threads_for(static_cast<double>(planes) * inner, 1 << 17), [&](index_t p0, index_t p1) {
    for (index_t p = p0; p < p1; ++p) {
      const float a = scale[p % C], b = shift[p % C];
      const float* xp = x + p * inner;
      float* yp = y + p * inner;
      for (index_t i = 0; i < inner; ++i) yp[i] = xp[i] * a + b;
    }
  });
}

}  // namespace convcore
