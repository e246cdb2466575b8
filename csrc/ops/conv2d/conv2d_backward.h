// Input gradient of conv2d: dx = conv2d^T(dy, w), a transposed convolution.
//
// The fast path splits the transposed convolution by output phase. A strided convolution's input row ih receives
// gradient only from the taps r with (r * dil) % stride == (ih + pad_top) % stride, so the rows (columns) of dx fall
// into stride_h (stride_w) phases, and each phase is an ordinary stride-1 convolution of dy with the phase's taps,
// flipped (dilation dil / gcd(dil, stride)). Every phase runs on conv2d's SIMD kernels (direct, im2col GEMM or
// depthwise), and a stride-1 convolution is one phase written straight into dx. Weights rearranged once per layer
// (conv2d_input_grad_weights) serve every call.
#pragma once
#include <vector>

#include "core/common.h"
#include "ops/conv2d/conv2d.h"

namespace convcore {

// One axis of one phase p (0 <= p < stride) of a convolution's input gradient: the dx rows ih with
// (ih + pad_lo) % stride == p, and the stride-1 convolution over dy that computes them. Row u of the phase is dx row
// `start + u * stride`. Computed here only: the gradient Plan's lowering (python/convcore/gradients/plan.py) reads
// these through _core.conv_grad_phases.
struct PhaseAxis {
  index_t taps = 0;       // kernel taps r with (r * dil) % stride == p
  index_t first_tap = 0;  // the smallest such r
  index_t tap_step = 1;   // the distance between consecutive ones
  index_t dil = 1;        // their dilation in dy rows
  index_t count = 0;      // dx rows in the phase
  index_t start = 0;      // the first of them
  index_t lo = 0, hi = 0; // padding of dy for the phase's convolution (negative: dy rows it never reads)

  PhaseAxis(index_t in, index_t out, index_t k, index_t stride, index_t dil_in, index_t pad_lo, index_t p);
};

// The stride phases of one axis: in (dx) and out (dy) sizes, kernel size, stride, dilation, leading padding.
std::vector<PhaseAxis> conv_grad_phases(index_t in, index_t out, index_t k, index_t stride, index_t dil,
                                        index_t pad_lo);

// Rearranges OIHW weights w (K, C/groups, R, S) for conv2d_input_grad: for each phase (ph, pw) in row-major order,
// the weights of a (C, K/groups, nh, nw) stride-1 convolution (the phase's taps, flipped). Same element count as w.
void conv2d_input_grad_weights(const Conv2dShape& s, const float* w, float* wt);

// dx (N, C, H, W) = the gradient of sum(dy * conv2d(x, w)) with respect to x, for dy (N, K, OH, OW). `wt` comes from
// conv2d_input_grad_weights (nullptr: rearranged here). Under CONVCORE_ISA=scalar runs conv2d_input_grad_ref.
void conv2d_input_grad(const Conv2dShape& s, const float* dy, const float* w, const float* wt, float* dx);

// The plain loop nest over dx (double accumulators, no rearranged weights): the oracle of the phase decomposition.
void conv2d_input_grad_ref(const Conv2dShape& s, const float* dy, const float* w, float* dx);

}  // namespace convcore
