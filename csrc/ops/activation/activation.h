// Eager elementwise activations and their input gradients on flat float32 buffers (any tensor shape): the kernels'
// activation and act_grad loops (kernels/kernels.h), split across threads. The activations themselves are listed
// once, in kernels/elementwise.h.
#pragma once
#include "core/common.h"
#include "core/cpu.h"
#include "kernels/elementwise.h"

namespace convcore {

// y = act(x) over n elements for the epilogue's activation and parameters. y may alias x. Isa::scalar runs the
// reference formula in double.
void unary(const Epilogue& e, const float* x, float* y, index_t n, Isa isa);

// dx = dy * act'(v) over n elements, v the activation's input or output as act_grad_from(e.act) says. dx may alias dy.
void unary_input_grad(const Epilogue& e, const float* v, const float* dy, float* dx, index_t n, Isa isa);

}  // namespace convcore
