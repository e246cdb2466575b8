#include "core/pool.h"
#include "core/threads.h"
#include "ops/conv2d/conv2d.h"

namespace convcore {

void conv2d_ref(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y) {
  const index_t Cg = s.C / s.groups, Kg = s.K / s.groups;
  parallel_for(s.N * s.K, threads_for(2.0 * s.N * s.K * s.OH * s.OW * (s.C / s.groups) * s.R * s.S, 1 << 18),
               [&](index_t i0, index_t i1) {
    for (index_t i = i0; i < i1; ++i) {
      const index_t n = i / s.K, k = i % s.K;
      const index_t g = k / Kg;
      for (index_t oh = 0; oh < s.OH; ++oh)
        for (index_t ow = 0; ow < s.OW; ++ow) {
          double acc = bias ? bias[k] : 0.0;
          for (index_t c = 0; c < Cg; ++c)
            for (index_t r = 0; r < s.R; ++r) {
              const index_t ih = oh * s.stride_h - s.pad_t + r * s.dil_h;
              if (ih < 0 || ih >= s.H) continue;
              for (index_t q = 0; q < s.S; ++q) {
                const index_t iw = ow * s.stride_w - s.pad_l + q * s.dil_w;
                if (iw < 0 || iw >= s.W) continue;
                acc += static_cast<double>(x[((n * s.C + g * Cg + c) * s.H + ih) * s.W + iw]) *
                       w[((k * Cg + c) * s.R + r) * s.S + q];
              }
            }
          y[((n * s.K + k) * s.OH + oh) * s.OW + ow] = static_cast<float>(acc);
        }
    }
  });
}

}  // namespace convcore
