#include "core/pool.h"
#include "core/threads.h"
#include "ops/conv_transpose/conv_transpose.h"

namespace convcore {

void conv_transpose2d_ref(const ConvTranspose2dShape& s, const float* x, const float* w, const float* bias, float* y) {
  conv_transpose2d_check(s);
  const index_t Cg = s.C / s.groups, Kg = s.K / s.groups;
  parallel_for(s.N * s.K, threads_for(2.0 * s.N * s.K * s.OH * s.OW * Cg * s.kh * s.kw, 1 << 18),
               [&](index_t i0, index_t i1) {
    for (index_t i = i0; i < i1; ++i) {
      const index_t n = i / s.K, o = i % s.K;
      const index_t g = o / Kg, k = o % Kg;
      for (index_t oh = 0; oh < s.OH; ++oh)
        for (index_t ow = 0; ow < s.OW; ++ow) {
          double acc = bias ? bias[o] : 0.0;
          for (index_t r = 0; r < s.kh; ++r) {
            const index_t th = oh + s.pad_t - r * s.dil_h;  // = ih * stride_h
            if (th < 0 || th % s.stride_h) continue;
            const index_t ih = th / s.stride_h;
            if (ih >= s.H) continue;
            for (index_t q = 0; q < s.kw; ++q) {
              const index_t tw = ow + s.pad_l - q * s.dil_w;
              if (tw < 0 || tw % s.stride_w) continue;
              const index_t iw = tw / s.stride_w;
              if (iw >= s.W) continue;
              for (index_t c = 0; c < Cg; ++c) {
                const index_t ci = g * Cg + c;
                acc += static_cast<double>(x[((n * s.C + ci) * s.H + ih) * s.W + iw]) *
                       w[((ci * Kg + k) * s.kh + r) * s.kw + q];
              }
            }
          }
          y[((n * s.K + o) * s.OH + oh) * s.OW + ow] = static_cast<float>(acc);
        }
    }
  });
}

}  // namespace convcore
