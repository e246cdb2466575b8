// Instance normalization: y = (x - mean) / sqrt(var + eps) * weight[c] + bias[c], mean and (biased) variance taken
// per (n, c) plane of (N, C, inner). Memory-bound: one portable kernel.
#pragma once
#include "core/common.h"

namespace convcore {

// weight / bias may be null (1 / 0). Statistics are accumulated in double (two passes).
void instance_norm(index_t N, index_t C, index_t inner, const float* x, const float* weight, const float* bias,
                   double eps, float* y);

}  // namespace convcore
