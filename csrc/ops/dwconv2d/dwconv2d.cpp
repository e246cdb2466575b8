#include "ops/dwconv2d/dwconv2d.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/cpu.h"
#include "core/threads.h"

namespace convcore {

namespace {
DwPlaneFn plane_kernel(Isa isa) {
  switch (isa) {
    case Isa::avx512: return avx512::f32_dwconv2d_plane_avx512;
    case Isa::avx2: return avx2::f32_dwconv2d_plane_avx2;
    case Isa::scalar: return nullptr;
  }
  return nullptr;
}
}  // namespace

void dwconv2d(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y, Clamp clamp) {
  const DwPlaneFn kernel = plane_kernel(active_isa());
  if (kernel == nullptr) return dwconv2d_ref(s, x, w, bias, y, clamp);
  const index_t mult = s.K / s.C, sw = s.stride_w;
  // Padded rows / columns the output reads (trailing padding no window reaches is never materialised), and a phase
  // width with room for whole vectors past OW.
  const index_t PH = (s.OH - 1) * s.stride_h + (s.R - 1) * s.dil_h + 1;
  const index_t phase_w = ceil_div(s.OW, kDwMaxVector) * kDwMaxVector + ((s.S - 1) * s.dil_w) / sw + 1;
  const index_t phase_size = PH * phase_w;
  const index_t planes = s.N * s.K;
#pragma omp parallel num_threads(threads_for(static_cast<double>(planes) * s.OH * s.OW * s.R * s.S, 1 << 18))
  {
    std::vector<float> xph(phase_size * sw);
    index_t padded_channel = -1;  // consecutive planes of one input channel (multiplier > 1) reuse the copy
#pragma omp for schedule(static)
    for (index_t nk = 0; nk < planes; ++nk) {
      const index_t n = nk / s.K, k = nk % s.K, channel = n * s.C + k / mult;
      if (channel != padded_channel) {
        const float* xc = x + channel * s.H * s.W;
        std::fill(xph.begin(), xph.end(), 0.0f);
        for (index_t ph = 0; ph < PH; ++ph) {
          const index_t ih = ph - s.pad_t;
          if (ih < 0 || ih >= s.H) continue;
          // Padded column pc = iw + pad_l goes to phase pc % sw, position pc / sw; only columns inside a phase row.
          const index_t iw_end = std::min(s.W, phase_w * sw - s.pad_l);
          const float* src = xc + ih * s.W;
          if (sw == 1) {
            if (iw_end > 0) std::memcpy(xph.data() + ph * phase_w + s.pad_l, src, sizeof(float) * iw_end);
          } else {
            for (index_t phase = 0; phase < sw; ++phase) {
              // first padded column >= pad_l in this phase, then every sw-th one
              const index_t pc0 = phase + ceil_div(std::max<index_t>(s.pad_l - phase, 0), sw) * sw;
              float* dst = xph.data() + phase * phase_size + ph * phase_w + pc0 / sw;
              for (index_t iw = pc0 - s.pad_l; iw < iw_end; iw += sw) *dst++ = src[iw];
            }
          }
        }
        padded_channel = channel;
      }
      kernel(DwPlane{xph.data(), phase_w, phase_size, w + k * s.R * s.S, s.R, s.S, bias ? bias[k] : 0.0f,
                     y + nk * s.OH * s.OW, s.OH, s.OW, s.stride_h, sw, s.dil_h, s.dil_w, clamp});
    }
  }
}

}  // namespace convcore
