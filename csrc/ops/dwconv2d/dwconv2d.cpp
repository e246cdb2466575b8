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
  const index_t mult = s.K / s.C;
  // The padded plane covers exactly the rows / columns the output reads (trailing padding that no window reaches,
  // e.g. from 'same' or ceil-style sizes, is never materialised).
  const index_t PH = (s.OH - 1) * s.stride_h + (s.R - 1) * s.dil_h + 1;
  const index_t PW = (s.OW - 1) * s.stride_w + (s.S - 1) * s.dil_w + 1;
  const index_t planes = s.N * s.K;
#pragma omp parallel num_threads(std::min<index_t>(num_threads(), planes))
  {
    std::vector<float> xpad(PH * PW);
    index_t padded_channel = -1;  // consecutive planes of one input channel (multiplier > 1) reuse the copy
#pragma omp for schedule(static)
    for (index_t nk = 0; nk < planes; ++nk) {
      const index_t n = nk / s.K, k = nk % s.K, channel = n * s.C + k / mult;
      if (channel != padded_channel) {
        const float* xc = x + channel * s.H * s.W;
        for (index_t ph = 0; ph < PH; ++ph) {
          float* dst = xpad.data() + ph * PW;
          const index_t ih = ph - s.pad_t;
          if (ih < 0 || ih >= s.H) {
            std::memset(dst, 0, sizeof(float) * PW);
            continue;
          }
          const index_t lo = std::min(s.pad_l, PW), hi = std::min(PW, s.pad_l + s.W);
          std::memset(dst, 0, sizeof(float) * lo);
          if (hi > lo) std::memcpy(dst + lo, xc + ih * s.W + (lo - s.pad_l), sizeof(float) * (hi - lo));
          if (hi < PW) std::memset(dst + std::max(hi, lo), 0, sizeof(float) * (PW - std::max(hi, lo)));
        }
        padded_channel = channel;
      }
      kernel(DwPlane{xpad.data(), PW, w + k * s.R * s.S, s.R, s.S, bias ? bias[k] : 0.0f,
                     y + nk * s.OH * s.OW, s.OH, s.OW, s.stride_h, s.stride_w, s.dil_h, s.dil_w, clamp});
    }
  }
}

}  // namespace convcore
