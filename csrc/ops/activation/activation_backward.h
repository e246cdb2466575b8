// Input gradients of the elementwise activations: dx = dy * op'(.) over n elements (torch's backward formulas).
#pragma once
#include "core/common.h"
#include "core/cpu.h"
#include "ops/activation/activation.h"

namespace convcore {

// What op's gradient is computed from: its output y for relu, relu6, sigmoid and tanh (y > 0, 0 < y < 6,
// y * (1 - y), 1 - y^2), its input x for the others.
bool unary_grad_uses_output(UnaryOp op);

// dx[i] = dy[i] * op'(v[i]), v as unary_grad_uses_output says; alpha is leaky_relu's slope. dx may alias dy. SiLU's
// sigmoid comes from the Plan's vectorized kernel (the reference under CONVCORE_ISA=scalar).
void unary_input_grad(UnaryOp op, float alpha, const float* v, const float* dy, float* dx, index_t n);

// One thread's part of unary_input_grad: the vectorized loops of `isa`, or the reference under Isa::scalar (the
// Plan's gradient ops call this on their share of a tensor).
void unary_input_grad_chunk(UnaryOp op, float alpha, const float* v, const float* dy, float* dx, index_t n, Isa isa);

// Reference: one element at a time, exp / tanh in double.
void unary_input_grad_ref(UnaryOp op, float alpha, const float* v, const float* dy, float* dx, index_t n);

}  // namespace convcore
