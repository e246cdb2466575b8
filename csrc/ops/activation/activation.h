// Elementwise activations on a flat float32 buffer (any tensor shape).
#pragma once
#include "core/common.h"

namespace convcore {

// The activations up to hardsigmoid run the Plan's SIMD activation kernels (the CNN hot path); the ops after them
// (ONNX's other elementwise functions) are memory-bound in practice and run the portable reference loop on every ISA.
enum class UnaryOp {
  relu, relu6, leaky_relu, sigmoid, tanh, silu, hardswish, hardsigmoid,
  // portable only:
  elu, selu, celu, softplus, softsign, gelu, gelu_tanh, mish, erf, exp, log, sqrt, neg, abs, reciprocal, clip
};
constexpr UnaryOp kLastSimdUnary = UnaryOp::hardsigmoid;

// y = op(x) over n elements, split across threads. y may alias x. The parameters:
//   leaky_relu: alpha = negative slope;  elu, celu: alpha;  selu: alpha, beta = gamma;  clip: [alpha, beta].
// The AVX2 / AVX-512 paths are the Plan's activation kernels (plan/kernels_simd.inc: vectorized exp, rcp-based
// sigmoid).
void unary(UnaryOp op, float alpha, float beta, const float* x, float* y, index_t n);

// Reference: computed in double with <cmath>, one element at a time; NaN in, NaN out.
void unary_ref(UnaryOp op, float alpha, float beta, const float* x, float* y, index_t n);

}  // namespace convcore
