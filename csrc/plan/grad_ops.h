// The Plan's backward ops: with them a Plan runs a network forward and then its input gradient in one C++ call
// (python/convcore/gradients/plan.py builds such a Plan from the ops' declared Plan backward rules).
// A convolution's input gradient needs no op of its own: it is convolutions over dy (one per output phase, see
// conv2d_backward.h) that `plan_interleave` puts together.
#pragma once
#include <string>
#include <vector>

#include "plan/plan.h"

namespace convcore {

// dx = dy * act'(v) for the epilogue's activation and parameters: v is the activation's output or input, as
// act_grad_from(e.act) says (kernels/elementwise.h). guided: dy clamped at 0 first (guided backpropagation).
int plan_act_grad(Plan& p, const std::string& name, int dy, int v, const Epilogue& e, bool guided);

// One axis of a strided convolution's input gradient: the output phase whose pixels have residue r (index r), as
// rows (or columns) start + stride * i, i < count, read at offset + i in that phase's tensor. phase < 0: none.
struct PhaseSlot {
  index_t phase = -1, start = 0, count = 0, offset = 0;
};

// The gradient through a clamp (ReLU, ReLU6) the ops below can apply last, as the conv epilogue's mask does: dx is
// kept where lo < m < hi, m the clamp's output (tensor `mask`, dx's shape), and is 0 elsewhere. mask -1: none.
struct GradMask {
  int mask = -1;
  float lo = 0.0f, hi = 0.0f;
};

// dx (H x W x C) [+ residual] from the phase tensors: phases[pr * cols.size() + pc] holds the pixels of row phase
// pr and column phase pc (or -1: that phase is empty); pixels no phase covers are 0.
int plan_interleave(Plan& p, const std::string& name, index_t H, index_t W, index_t C,
                    const std::vector<PhaseSlot>& rows, const std::vector<PhaseSlot>& cols,
                    const std::vector<int>& phases, int residual, const GradMask& mask);

// Max pooling's input gradient: dy routed to each window's first maximum (a NaN wins), added where windows overlap.
int plan_max_pool_grad(Plan& p, const std::string& name, int x, int dy, index_t kh, index_t kw, index_t sh,
                       index_t sw, index_t dh, index_t dw, index_t pt, index_t pl, const GradMask& mask);

// dx (H x W x C) [+ residual] [masked] of a convolution with R x S taps from `cols` (OH x OW x R*S*C): channel
// (r * S + s) * C + c of output pixel (oh, ow) is its tap (r, s)'s contribution to input pixel (oh * sh - pt + r * dh,
// ow * sw - pl + s * dw), channel c. The input gradient of a convolution with few input channels (a network's stem)
// as one GEMM (cols = dy W^T, a 1x1 convolution) and this gather, rather than per-phase convolutions whose register
// tiles would be mostly empty.
int plan_col2im(Plan& p, const std::string& name, int cols, index_t H, index_t W, index_t C, index_t R, index_t S,
                index_t sh, index_t sw, index_t dh, index_t dw, index_t pt, index_t pl, int residual,
                const GradMask& mask);

// Average pooling's input gradient: each output's gradient spread evenly over the cells its forward average divided
// by (count_include_pad counts the padding inside the padded input, never the ceil_mode overflow). dx is H x W x C.
int plan_avg_pool_grad(Plan& p, const std::string& name, int dy, index_t H, index_t W, index_t kh, index_t kw,
                       index_t sh, index_t sw, index_t pt, index_t pb, index_t pl, index_t pr, bool count_include_pad);

}  // namespace convcore
