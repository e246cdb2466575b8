// Inference batch normalization: y = (x - mean) / sqrt(var + eps) * weight + bias, per channel of (N, C, inner).
#pragma once
#include "core/common.h"

namespace convcore {

// weight / bias may be null (1 / 0). The per-channel scale and shift are formed in double once.
void batch_norm(index_t N, index_t C, index_t inner, const float* x, const float* mean, const float* var,
                const float* weight, const float* bias, double eps, float* y);

}  // namespace convcore
