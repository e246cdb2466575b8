#include <algorithm>

#include "core/threads.h"
#include "ops/dwconv2d/dwconv2d.h"

namespace convcore {

void dwconv2d_ref(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y, Clamp clamp) {
  const index_t mult = s.K / s.C;
#pragma omp parallel for collapse(2) num_threads(threads_for(static_cast<double>(s.N) * s.K * s.OH * s.OW * s.R * s.S, 1 << 16))
  for (index_t n = 0; n < s.N; ++n)
    for (index_t k = 0; k < s.K; ++k) {
      const float* xc = x + (n * s.C + k / mult) * s.H * s.W;
      const float* wk = w + k * s.R * s.S;
      for (index_t oh = 0; oh < s.OH; ++oh)
        for (index_t ow = 0; ow < s.OW; ++ow) {
          double acc = bias ? bias[k] : 0.0;
          for (index_t r = 0; r < s.R; ++r) {
            const index_t ih = oh * s.stride_h - s.pad_t + r * s.dil_h;
            if (ih < 0 || ih >= s.H) continue;
            for (index_t q = 0; q < s.S; ++q) {
              const index_t iw = ow * s.stride_w - s.pad_l + q * s.dil_w;
              if (iw >= 0 && iw < s.W) acc += static_cast<double>(xc[ih * s.W + iw]) * wk[r * s.S + q];
            }
          }
          const float v = static_cast<float>(acc);
          y[((n * s.K + k) * s.OH + oh) * s.OW + ow] = v != v ? v : std::min(std::max(v, clamp.lo), clamp.hi);
        }
    }
}

}  // namespace convcore
