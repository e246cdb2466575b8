// Elementwise activations on a flat float32 buffer (any tensor shape).
#pragma once
#include "core/common.h"

namespace convcore {

enum class UnaryOp { relu, relu6, leaky_relu, sigmoid, tanh, silu, hardswish, hardsigmoid };

// y = op(x) over n elements, split across threads; alpha is leaky_relu's negative slope. y may alias x. The AVX2 /
// AVX-512 paths are the Plan's activation kernels (plan/kernels_simd.inc: vectorized exp, rcp-based sigmoid).
void unary(UnaryOp op, float alpha, const float* x, float* y, index_t n);

// Reference: std::exp / std::tanh, one element at a time.
void unary_ref(UnaryOp op, float alpha, const float* x, float* y, index_t n);

}  // namespace convcore
