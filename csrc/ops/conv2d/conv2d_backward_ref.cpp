#include "core/pool.h"
#include "core/threads.h"
#include "ops/conv2d/conv2d_backward.h"

namespace convcore {

void conv2d_input_grad_ref(const Conv2dShape& s, const float* dy, const float* w, float* dx) {
  conv2d_check(s);
  const index_t Cg = s.C / s.groups, Kg = s.K / s.groups;
  parallel_for(s.N * s.C, threads_for(2.0 * s.N * s.K * s.OH * s.OW * Cg * s.R * s.S, 1 << 18),
               [&](index_t i0, index_t i1) {
    for (index_t i = i0; i < i1; ++i) {
      const index_t n = i / s.C, c = i % s.C;
      const index_t g = c / Cg, cg = c % Cg;
      for (index_t ih = 0; ih < s.H; ++ih)
        for (index_t iw = 0; iw < s.W; ++iw) {
          double acc = 0.0;
          for (index_t r = 0; r < s.R; ++r) {
            // Output row oh reads input row ih through tap r when oh * stride - pad + r * dil == ih.
            const index_t num_h = ih + s.pad_t - r * s.dil_h;
            if (num_h < 0 || num_h % s.stride_h) continue;
            const index_t oh = num_h / s.stride_h;
            if (oh >= s.OH) continue;
            for (index_t q = 0; q < s.S; ++q) {
              const index_t num_w = iw + s.pad_l - q * s.dil_w;
              if (num_w < 0 || num_w % s.stride_w) continue;
              const index_t ow = num_w / s.stride_w;
              if (ow >= s.OW) continue;
              for (index_t k = g * Kg; k < (g + 1) * Kg; ++k)
                acc += static_cast<double>(dy[((n * s.K + k) * s.OH + oh) * s.OW + ow]) *
                       w[((k * Cg + cg) * s.R + r) * s.S + q];
            }
          }
          dx[((n * s.C + c) * s.H + ih) * s.W + iw] = static_cast<float>(acc);
        }
    }
  });
}

}  // namespace convcore
