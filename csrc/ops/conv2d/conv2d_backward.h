// Input gradient of conv2d: dx = conv2d^T(dy, w), a transposed convolution.
//
// The fast path splits the transposed convolution by output phase. A strided convolution's input row ih receives
// gradient only from the taps r with (r * dil) % stride == (ih + pad_top) % stride, so the rows (columns) of dx fall
// into stride_h (stride_w) phases, and each phase is an ordinary stride-1 convolution of dy with the phase's taps,
// flipped (dilation dil / gcd(dil, stride)). Every phase runs on conv2d's SIMD kernels (direct, im2col GEMM or
// depthwise), and a stride-1 convolution is one phase written straight into dx. Weights rearranged once per layer
// (conv2d_input_grad_weights) serve every call.
#pragma once
#include "core/common.h"
#include "ops/conv2d/conv2d.h"

namespace convcore {

// Rearranges OIHW weights w (K, C/groups, R, S) for conv2d_input_grad: for each phase (ph, pw) in row-major order,
// the weights of a (C, K/groups, nh, nw) stride-1 convolution (the phase's taps, flipped). Same element count as w.
void conv2d_input_grad_weights(const Conv2dShape& s, const float* w, float* wt);

// dx (N, C, H, W) = the gradient of sum(dy * conv2d(x, w)) with respect to x, for dy (N, K, OH, OW). `wt` comes from
// conv2d_input_grad_weights (nullptr: rearranged here). Under CONVCORE_ISA=scalar runs conv2d_input_grad_ref.
void conv2d_input_grad(const Conv2dShape& s, const float* dy, const float* w, const float* wt, float* dx);

// The plain loop nest over dx (double accumulators, no rearranged weights): the oracle of the phase decomposition.
void conv2d_input_grad_ref(const Conv2dShape& s, const float* dy, const float* w, float* dx);

}  // namespace convcore
