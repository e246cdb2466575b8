#include "ops/dwconv2d/dwconv2d.h"

#include <omp.h>

#include <algorithm>
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
  if (!padded_copy_pays(double(PH) * phase_w * sw, double(s.H) * s.W, double(mult) * s.OH * s.OW))
    return dwconv2d_ref(s, x, w, bias, y, clamp);
  const index_t phase_size = PH * phase_w;
  const index_t planes = s.N * s.K;
  const int threads = threads_for(static_cast<double>(planes) * s.OH * s.OW * s.R * s.S, 1 << 18);
  // Every thread's padded plane, allocated here: an exception (std::bad_alloc) must not leave an OpenMP region.
  std::vector<float> planes_copy(phase_size * sw * threads);
  std::vector<index_t> tap_offset(s.R * s.S);
  for (index_t r = 0; r < s.R; ++r)
    for (index_t q = 0; q < s.S; ++q) {
      const index_t col = q * s.dil_w;  // padded column of tap q for output column 0
      tap_offset[r * s.S + q] = (col % sw) * phase_size + r * s.dil_h * phase_w + col / sw;
    }
#pragma omp parallel num_threads(threads)
  {
    float* const xph = planes_copy.data() + phase_size * sw * omp_get_thread_num();
    index_t padded_channel = -1;  // consecutive planes of one input channel (multiplier > 1) reuse the copy
#pragma omp for schedule(static)
    for (index_t nk = 0; nk < planes; ++nk) {
      const index_t n = nk / s.K, k = nk % s.K, channel = n * s.C + k / mult;
      if (channel != padded_channel) {
        pad_into_phases(x + channel * s.H * s.W, s.H, s.W, s.pad_t, s.pad_l, sw, PH, phase_w, phase_size, xph);
        padded_channel = channel;
      }
      kernel(DwPlane{xph, phase_w, phase_size, w + k * s.R * s.S, tap_offset.data(), s.R * s.S,
                     bias ? bias[k] : 0.0f, y + nk * s.OH * s.OW, s.OH, s.OW, s.stride_h, clamp});
    }
  }
}

}  // namespace convcore
