// Input gradients of the pooling ops (the backward pass of convcore.gradients). NCHW, one plane per task; each
// overwrites all of dx. Memory-bound and a small share of a backward pass: plain loops, which are also the reference.
#pragma once
#include "core/common.h"
#include "ops/pool2d/pool2d.h"

namespace convcore {

// Each output's gradient goes to the input cell that won its window in the forward pass (max_pool2d_ref's scan:
// the first maximum in row-major window order, padding never, a NaN wins), added up where windows overlap.
void max_pool2d_input_grad(const Pool2dShape& s, const float* x, const float* dy, float* dx);

// Each output's gradient spread evenly over the cells its forward average divided by (same count rules as
// avg_pool2d: count_include_pad counts the padding inside the padded input, never the ceil_mode overflow).
void avg_pool2d_input_grad(const Pool2dShape& s, bool count_include_pad, const float* dy, float* dx);

// Adaptive (and global) pooling: windows [floor(i*in/out), ceil((i+1)*in/out)); max routes to the window's first
// maximum, average spreads evenly.
void adaptive_pool2d_input_grad(bool is_max, index_t N, index_t C, index_t H, index_t W, index_t OH, index_t OW,
                                const float* x, const float* dy, float* dx);

}  // namespace convcore
