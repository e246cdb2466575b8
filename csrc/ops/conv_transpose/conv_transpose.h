// Transposed 2-D convolution (ONNX ConvTranspose, torch conv_transpose2d), NCHW:
// out[n, g*Kg + k, oh, ow] += x[n, g*Cg + c, ih, iw] * w[g*Cg + c, k, r, q] where oh = ih*sh - pad_t + r*dh (likewise
// ow), for every input pixel and tap; then + bias. Pads may be negative (the output then starts before the "full"
// output's first row); the output size comes from the caller (output_padding / output_shape included).
#pragma once
#include "core/common.h"

namespace convcore {

struct ConvTranspose2dShape {
  index_t N, C, H, W;   // input
  index_t K, kh, kw;    // output channels, kernel
  index_t OH, OW;       // output
  index_t stride_h, stride_w, dil_h, dil_w, pad_t, pad_l, groups;
};

void conv_transpose2d_check(const ConvTranspose2dShape& s);

// Per image and group: one GEMM forms every tap's contribution (columns), then a col2im pass adds them into place.
void conv_transpose2d(const ConvTranspose2dShape& s, const float* x, const float* w, const float* bias, float* y);

// Reference: each output pixel gathers its taps in double.
void conv_transpose2d_ref(const ConvTranspose2dShape& s, const float* x, const float* w, const float* bias, float* y);

}  // namespace convcore
