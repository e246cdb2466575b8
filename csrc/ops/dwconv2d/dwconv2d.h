// Depthwise convolution (groups == in_channels, any channel multiplier), NCHW. Memory-bound: one plane at a time,
// the padded input plane copied once into a scratch buffer so the inner loop has no bounds checks.
#pragma once
#include "core/common.h"
#include "ops/conv2d/conv2d.h"

namespace convcore {

// One output plane: y (OH x OW) = clamp(sum_{r,q} w[r,q] * xpad[oh*sh + r*dh][ow*sw + q*dw] + bias). The padded input
// plane is stored as stride_w column phases (phase p holds padded columns p, p + sw, p + 2*sw, ...), each PH rows of
// phase_w floats, so every tap of a strided convolution is a contiguous load. phase_w leaves room for whole vectors
// past OW (zeros), so the kernel needs no tail loads.
struct DwPlane {
  const float* xph;
  index_t phase_w, phase_size;  // row stride and size of one phase
  const float* w;
  const index_t* tap_offset;  // R*S offsets of tap (r, q) from the window origin in the phased plane
  index_t taps;
  float bias;
  float* y;
  index_t OH, OW;
  index_t stride_h;
  Clamp clamp;
};
using DwPlaneFn = void (*)(const DwPlane&);

constexpr index_t kDwMaxVector = 16;  // widest vector (floats) a plane kernel reads past OW

void dwconv2d(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y, Clamp clamp);

// Reference: direct loops with bounds checks on the unpadded input (double accumulators).
void dwconv2d_ref(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y, Clamp clamp);

namespace avx2 {
void f32_dwconv2d_plane_avx2(const DwPlane& p);
}
namespace avx512 {
void f32_dwconv2d_plane_avx512(const DwPlane& p);
}

}  // namespace convcore
