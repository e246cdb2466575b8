// Max / average pooling (torch semantics, 4-sided padding, ceil_mode handled by the caller's output size), adaptive
// and global pooling. NCHW. Memory-bound and a small share of any network: one portable kernel each.
#pragma once
#include "core/common.h"

namespace convcore {

struct Pool2dShape {
  index_t N, C, H, W, OH, OW;
  index_t kh, kw, stride_h, stride_w, dil_h, dil_w;
  index_t pad_t, pad_b, pad_l, pad_r;
};

// Throws std::invalid_argument on inconsistent sizes (every window must start inside the input or its top/left pad).
void pool2d_check(const Pool2dShape& s);

// Padding cells are ignored (never the maximum); NaN inside a window propagates.
void max_pool2d(const Pool2dShape& s, const float* x, float* y);

// count_include_pad: divide by the window clipped to the padded input (torch), else by the real cells it covers.
void avg_pool2d(const Pool2dShape& s, bool count_include_pad, const float* x, float* y);

// The plain loops (CONVCORE_ISA=scalar, and few channels); the SIMD paths use the Plan's channels-last kernel.
void max_pool2d_ref(const Pool2dShape& s, const float* x, float* y);
void avg_pool2d_ref(const Pool2dShape& s, bool count_include_pad, const float* x, float* y);

// Lp pooling (ONNX LpPool): (sum over the window's real cells of |x|^p)^(1/p); padding cells add nothing. One
// portable kernel (Lp pooling is rare and memory-bound).
void lp_pool2d(const Pool2dShape& s, double p, const float* x, float* y);

// Adaptive pooling: window i covers [floor(i*in/out), ceil((i+1)*in/out)). Global pooling is the 1x1 case.
void adaptive_pool2d(bool is_max, index_t N, index_t C, index_t H, index_t W, index_t OH, index_t OW, const float* x,
                     float* y);

}  // namespace convcore
