// Fully connected layer: y (M x N) = x (M x K) * W^T + bias, W (N x K) row-major (torch's Linear layout).
#pragma once
#include "core/common.h"

namespace convcore {

void linear(index_t M, index_t N, index_t K, const float* x, const float* w, const float* bias, float* y);

// Reference: dot products in double.
void linear_ref(index_t M, index_t N, index_t K, const float* x, const float* w, const float* bias, float* y);

}  // namespace convcore
