#include "ops/softmax/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/pool.h"
#include "core/threads.h"

namespace convcore {

// Max-subtracted, summed in double: exact enough for 1000-class heads and long axes alike.
void softmax(index_t outer, index_t len, index_t inner, bool log, const float* x, float* y) {
  const index_t rows = outer * inner;
  parallel_for(rows, threads_for(static_cast<double>(rows) * len, 1 << 16), [&](index_t row0, index_t row1) {
    for (index_t row = row0; row < row1; ++row) {
      const index_t o = row / inner, i = row % inner;
      const float* xr = x + o * len * inner + i;
      float* yr = y + o * len * inner + i;
      float mx = -std::numeric_limits<float>::infinity();
      for (index_t l = 0; l < len; ++l) mx = std::max(mx, xr[l * inner]);
      if (std::isinf(mx) && mx < 0) mx = 0.0f;  // all -inf: avoid inf - inf
      double sum = 0.0;
      for (index_t l = 0; l < len; ++l) sum += std::exp(static_cast<double>(xr[l * inner]) - mx);
      if (log) {
        const double lse = std::log(sum) + mx;
        for (index_t l = 0; l < len; ++l) yr[l * inner] = static_cast<float>(xr[l * inner] - lse);
      } else {
        for (index_t l = 0; l < len; ++l)
          yr[l * inner] = static_cast<float>(std::exp(static_cast<double>(xr[l * inner]) - mx) / sum);
      }
    }
  });
}

}  // namespace convcore
