// Builders for the Plan's ops: each checks its arguments (std::invalid_argument), packs what it needs once, adds
// one op to the plan and returns the tensor it writes. The Python compiler (python/convcore/plan) calls these through
// the bindings in the order of the graph.
#pragma once
#include <string>
#include <vector>

#include "plan/plan.h"

namespace convcore {

struct ConvSpec {
  index_t K, C, R, S;  // weight (K, C / groups, R, S), OIHW as torch
  index_t sh = 1, sw = 1, dh = 1, dw = 1;
  index_t pt = 0, pb = 0, pl = 0, pr = 0;
  index_t groups = 1;
};

enum class ConvAlgo : int { automatic = 0, igemm, depthwise, winograd };

// y = act(conv(x [* scale], w) + bias [+ residual]); residual: a tensor of y's shape, or -1; scale: a per image,
// per input channel gate (N x 1 x 1 x C) for 1x1 convolutions, or -1; mask: a tensor of y's shape the epilogue
// masks y with (Epilogue::mask_lo / mask_hi), or -1. Returns y, a new tensor.
int plan_conv(Plan& p, const std::string& name, int x, const ConvSpec& spec, const float* w, const float* bias,
              const Epilogue& e, int residual, ConvAlgo algo, int scale = -1, int mask = -1);

// Whether Winograd F(4x4, 3x3) applies: 3x3, stride 1, no dilation, one group.
bool winograd_eligible(const ConvSpec& s);

// An inverted-residual block fused over row stripes: y = project(dw(expand(x))) [+ residual], each step with its
// epilogue. we / be: expand weights (E, C, 1, 1) and bias, or null for a block without expansion; dw: the depthwise
// geometry (K = C = groups = E); wp: project weights (K, E, 1, 1), or null to stop after the depthwise step (its
// output is needed elsewhere too, e.g. by a squeeze-excitation gate).
int plan_mbconv(Plan& p, const std::string& name, int x, const float* we, const float* be, index_t E,
                const Epilogue& ee, const ConvSpec& dw, const float* wd, const float* bd, const Epilogue& ed,
                const float* wp, const float* bp, index_t K, const Epilogue& ep, int residual);

int plan_pool(Plan& p, const std::string& name, int x, bool is_max, index_t kh, index_t kw, index_t sh, index_t sw,
              index_t dh, index_t dw, index_t pt, index_t pb, index_t pl, index_t pr, index_t OH, index_t OW,
              bool count_include_pad);
int plan_global_pool(Plan& p, const std::string& name, int x, bool is_max);
int plan_adaptive_pool(Plan& p, const std::string& name, int x, bool is_max, index_t OH, index_t OW);
// y = act(x * scale + shift) per channel (scale / shift may be null).
int plan_affine(Plan& p, const std::string& name, int x, const float* scale, const float* shift, const Epilogue& e);
int plan_binary(Plan& p, const std::string& name, int a, int b, BinaryOp op, const Epilogue& e);
// Copies x into channels [c0, c0 + x.C) of y (a concatenation that could not be written in place).
void plan_copy_into(Plan& p, const std::string& name, int x, int y, index_t c0);
int plan_softmax(Plan& p, const std::string& name, int x, bool log);
int plan_lrn(Plan& p, const std::string& name, int x, index_t size, float alpha, float beta, float k);
// (N, H, W, C) -> (N, 1, 1, C * H * W) in NCHW flatten order.
int plan_flatten_nchw(Plan& p, const std::string& name, int x);

}  // namespace convcore
