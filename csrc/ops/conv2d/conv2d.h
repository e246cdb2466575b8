// 2-D convolution, NCHW activations, OIHW weights (torch layout), any padding / stride / dilation / groups.
#pragma once
#include "core/common.h"

namespace convcore {

struct Conv2dShape {
  index_t N, C, H, W;  // input
  index_t K, R, S;     // output channels, kernel height, width
  index_t OH, OW;      // output
  index_t stride_h, stride_w, dil_h, dil_w;
  index_t pad_t, pad_b, pad_l, pad_r;
  index_t groups;
};

// Throws std::invalid_argument unless every size is positive and OH/OW follow from the others.
void conv2d_check(const Conv2dShape& s);

// y = conv(x, w) + bias (bias may be null), on the kernels' NCHW GEMM (kernels.h: gemm_rows, the micro-kernel the
// Plan's convolutions run in the other orientation) or, under CONVCORE_ISA=scalar, the reference loop nest.
void conv2d(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y);

// The plain direct loop nest (double accumulators): the fallback and the oracle the fast paths are tested against.
void conv2d_ref(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y);

// Copies one H x W input plane into `stride_w` column phases of a zero-padded plane: phase p, row ph, position i holds
// padded element (ph, i * stride_w + p), i.e. input (ph - pad_t, i * stride_w + p - pad_l) or 0. Each phase is
// `rows` x `row_w` floats and the phases lie `phase_stride` apart in dst. With the phases, every tap of a strided
// window is a contiguous run, which the kernel loads as vectors.
void pad_into_phases(const float* x, index_t H, index_t W, index_t pad_t, index_t pad_l, index_t stride_w,
                     index_t rows, index_t row_w, index_t phase_stride, float* dst);

// Whether the zero-padded copy of the input is worth making: it spans every padded row and column a window reaches
// (and stride_w column phases), which with strides or dilations far larger than the kernel is mostly rows and
// columns no window reads (stride 2^31-1 on a 4x4 input would ask for 2^31 phases). Past a few times the input plus the
// output, the reference loop nest runs instead: its work follows the output and the taps, never the padded extent.
// Sizes are doubles: the products would overflow 64-bit integers for hostile strides and paddings.
inline bool padded_copy_pays(double copy, double input, double output) {
  return copy <= 4.0 * (input + output) + 65536.0;
}

}  // namespace convcore
