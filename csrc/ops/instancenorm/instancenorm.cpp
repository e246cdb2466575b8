#include "ops/instancenorm/instancenorm.h"

#include <cmath>

#include "core/pool.h"
#include "core/threads.h"

namespace convcore {

void instance_norm(index_t N, index_t C, index_t inner, const float* x, const float* weight, const float* bias,
                   double eps, float* y) {
  const index_t planes = N * C;
  parallel_for(planes, threads_for(static_cast<double>(planes) * inner * 3, 1 << 17), [&](index_t p0, index_t p1) {
    for (index_t p = p0; p < p1; ++p) {
      const index_t c = p % C;
      const float* xp = x + p * inner;
      float* yp = y + p * inner;
      double mean = 0.0, var = 0.0;
      for (index_t i = 0; i < inner; ++i) mean += xp[i];
      mean /= static_cast<double>(inner);
      for (index_t i = 0; i < inner; ++i) var += (xp[i] - mean) * (xp[i] - mean);
      var /= static_cast<double>(inner);
      const double scale = (weight ? weight[c] : 1.0) / std::sqrt(var + eps);
      const double shift = (bias ? bias[c] : 0.0) - mean * scale;
      for (index_t i = 0; i < inner; ++i) yp[i] = static_cast<float>(xp[i] * scale + shift);
    }
  });
}

}  // namespace convcore
