#include "core/pool.h"
#include "core/threads.h"
#include "ops/tensor/tensor.h"

namespace convcore {

void resample_axis(index_t outer, index_t in_len, index_t inner, index_t out_len, index_t taps, const index_t* index,
                   const double* weights, float fill, const float* x, float* out) {
  require(outer >= 0 && in_len >= 0 && inner >= 0 && out_len >= 0 && taps >= 1, "resample_axis: bad sizes");
  const index_t work = outer * out_len;
  parallel_for(work, threads_for(static_cast<double>(work) * inner * taps, 1 << 16), [&](index_t w0, index_t w1) {
    for (index_t w = w0; w < w1; ++w) {
      const index_t o = w / out_len, j = w % out_len;
      float* dst = out + (o * out_len + j) * inner;
      const index_t* idx = index + j * taps;
      const double* wt = weights + j * taps;
      if (idx[0] < 0) {
        for (index_t i = 0; i < inner; ++i) dst[i] = fill;
        continue;
      }
      const float* src = x + o * in_len * inner;
      for (index_t i = 0; i < inner; ++i) {
        double acc = 0.0;
        for (index_t t = 0; t < taps; ++t) acc += wt[t] * src[idx[t] * inner + i];
        dst[i] = static_cast<float>(acc);
      }
    }
  });
}

}  // namespace convcore
