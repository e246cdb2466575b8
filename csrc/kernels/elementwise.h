// The elementwise functions, each listed once: the activations (an epilogue's last step, the eager unary ops, their
// derivatives) and the broadcasting binary ops. Every path computes them from here - the eager kernels, the Plan's
// epilogues, the GPU kernels and the backward passes - and Python reads the lists through the bindings (_core.Act,
// _core.BinaryOp), so no number or name is restated anywhere.
//
// CUDA-free and host/device: the .cu files include this header, and the formulas below are what a GPU thread runs.
// The CPU reference kernels evaluate them in double, the GPU and the SIMD kernels' lane-by-lane fallback in float.
//
// Adding an activation: an X(...) entry, its case in `activate` and (unless its gradient is `none`) in
// `act_derivative`. The SIMD kernels pick it up lane by lane; a vector formula in kernels_simd.inc (`act<A>`) is an
// optimisation, tested against this one.
#pragma once
#include <cmath>

#if defined(__CUDACC__)
#define CC_HOST_DEVICE __host__ __device__
#else
#define CC_HOST_DEVICE
#endif

namespace convcore {

// X(name, gradient): what the derivative is computed from - the activation's `input`, its `output` (after a fused
// convolution only the output exists), or `none` (no backward). alpha / beta are the parameters where one is named.
#define CONVCORE_ACTIVATIONS(X)                                                                                \
  X(none, input)         /* identity (an epilogue without activation) */                                       \
  X(relu, output)        /* max(x, 0) */                                                                       \
  X(relu6, output)       /* min(max(x, 0), 6) */                                                               \
  X(clip, input)         /* min(max(x, alpha), beta): beta wins when alpha > beta (ONNX Clip) */                \
  X(leaky_relu, input)   /* x < 0 ? alpha * x : x */                                                           \
  X(sigmoid, output)     /* 1 / (1 + exp(-x)) */                                                               \
  X(tanh, output)                                                                                              \
  X(silu, input)         /* x * sigmoid(x) */                                                                  \
  X(hardswish, input)    /* x * relu6(x + 3) / 6 */                                                            \
  X(hardsigmoid, input)  /* relu6(x + 3) / 6 */                                                                \
  X(elu, input)          /* x > 0 ? x : alpha * (exp(x) - 1) */                                                \
  X(selu, input)         /* beta * (x > 0 ? x : alpha * (exp(x) - 1)) (beta: gamma) */                         \
  X(celu, input)         /* x > 0 ? x : alpha * (exp(x / alpha) - 1) */                                        \
  X(softplus, input)     /* log(1 + exp(x)) */                                                                 \
  X(softsign, input)     /* x / (1 + |x|) */                                                                   \
  X(gelu, input)         /* 0.5 x (1 + erf(x / sqrt 2)) */                                                     \
  X(gelu_tanh, input)    /* 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) */                               \
  X(mish, input)         /* x * tanh(softplus(x)) */                                                           \
  X(erf, input)                                                                                                \
  X(exp, output)                                                                                               \
  X(log, input)                                                                                                \
  X(sqrt, output)                                                                                              \
  X(neg, input)                                                                                                \
  X(abs, input)                                                                                                \
  X(reciprocal, output)                                                                                        \
  X(shrink, input)       /* x < -alpha ? x + beta : (x > alpha ? x - beta : 0) (ONNX Shrink: lambd, bias) */    \
  X(fake_quant, input)   /* alpha * clamp(rint(x / alpha), beta, beta + 255): QuantizeLinear -> DequantizeLinear */

enum class Act : int {
#define CONVCORE_ACT_ENUM(name, grad) name,
  CONVCORE_ACTIVATIONS(CONVCORE_ACT_ENUM)
#undef CONVCORE_ACT_ENUM
};

// The activation's name, as Python spells it (_core.Act.<name>).
CC_HOST_DEVICE constexpr const char* act_name(Act a) {
  switch (a) {
#define CONVCORE_ACT_NAME(name, grad) \
  case Act::name:                     \
    return #name;
    CONVCORE_ACTIVATIONS(CONVCORE_ACT_NAME)
#undef CONVCORE_ACT_NAME
  }
  return "?";
}

enum class GradFrom : int { none, input, output };

// What an activation's derivative is computed from (the X list's second column).
CC_HOST_DEVICE constexpr GradFrom act_grad_from(Act a) {
  switch (a) {
#define CONVCORE_ACT_GRAD(name, grad) \
  case Act::name:                     \
    return GradFrom::grad;
    CONVCORE_ACTIVATIONS(CONVCORE_ACT_GRAD)
#undef CONVCORE_ACT_GRAD
  }
  return GradFrom::none;
}

// The last step of a kernel's epilogue: y = act(v) with the activation's parameters. With a mask tensor (a backward
// pass: dy through a ReLU whose output is the mask), y is then kept where mask_lo < mask < mask_hi, else 0 (NaN too).
struct Epilogue {
  Act act = Act::none;
  float alpha = 0.0f, beta = 0.0f;
  float mask_lo = 0.0f, mask_hi = 0.0f;
};

namespace elementwise_detail {
// log(1 + exp(v)) without overflow for large v or loss of precision for very negative v.
template <class T>
CC_HOST_DEVICE inline T softplus(T v) {
  return v > T(0) ? v + std::log1p(std::exp(-v)) : std::log1p(std::exp(v));
}
template <class T>
CC_HOST_DEVICE inline T sigmoid(T v) {
  return T(1) / (T(1) + std::exp(-v));
}
constexpr double kInvSqrt2 = 0.70710678118654752440, kSqrt2OverPi = 0.79788456080286535588;
constexpr double kInvSqrt2Pi = 0.39894228040143267794, kTwoOverSqrtPi = 1.12837916709551257390;
}  // namespace elementwise_detail

// act(v) for T = float or double. NaN in, NaN out, for every activation.
template <class T>
CC_HOST_DEVICE inline T activate(Act a, T v, T alpha, T beta) {
  namespace d = elementwise_detail;
  if (v != v) return v;
  switch (a) {
    case Act::none: return v;
    case Act::relu: return v < T(0) ? T(0) : v;
    case Act::relu6: return v < T(0) ? T(0) : (v > T(6) ? T(6) : v);
    case Act::clip: {
      const T r = v < alpha ? alpha : v;
      return r > beta ? beta : r;
    }
    case Act::leaky_relu: return v < T(0) ? alpha * v : v;
    case Act::sigmoid: return d::sigmoid(v);
    case Act::tanh: return std::tanh(v);
    case Act::silu: return v * d::sigmoid(v);
    case Act::hardswish: return v * std::fmin(std::fmax(v + T(3), T(0)), T(6)) / T(6);
    case Act::hardsigmoid: return std::fmin(std::fmax(v / T(6) + T(0.5), T(0)), T(1));
    case Act::elu: return v > T(0) ? v : alpha * std::expm1(v);
    case Act::selu: return beta * (v > T(0) ? v : alpha * std::expm1(v));
    case Act::celu: return v > T(0) ? v : alpha * std::expm1(v / alpha);
    case Act::softplus: return d::softplus(v);
    case Act::softsign: return v / (T(1) + std::fabs(v));
    // 1 + erf(z) as erfc(-z), and 0.5 (1 + tanh(u)) as sigmoid(2u): no cancellation in the negative tail.
    case Act::gelu: return T(0.5) * v * std::erfc(-v * T(d::kInvSqrt2));
    case Act::gelu_tanh: return v * d::sigmoid(T(2 * d::kSqrt2OverPi) * (v + T(0.044715) * v * v * v));
    case Act::mish: return v * std::tanh(d::softplus(v));
    case Act::erf: return std::erf(v);
    case Act::exp: return std::exp(v);
    case Act::log: return std::log(v);
    case Act::sqrt: return std::sqrt(v);
    case Act::neg: return -v;
    case Act::abs: return std::fabs(v);
    case Act::reciprocal: return T(1) / v;
    case Act::shrink: return v < -alpha ? v + beta : (v > alpha ? v - beta : T(0));
    case Act::fake_quant: {  // in float, as the ONNX ops compute it (alpha: the scale, beta: qmin - zero point)
      const float q = rintf(static_cast<float>(v) / static_cast<float>(alpha)), lo = static_cast<float>(beta);
      return static_cast<T>((q < lo ? lo : (q > lo + 255.0f ? lo + 255.0f : q)) * static_cast<float>(alpha));
    }
  }
  return v;
}

// d act / d x at v, where v is the activation's input or output as act_grad_from(a) says (torch's backward
// formulas: ReLU's derivative is 0 at 0, a clip passes the gradient on [alpha, beta]).
template <class T>
CC_HOST_DEVICE inline T act_derivative(Act a, T v, T alpha, T beta) {
  namespace d = elementwise_detail;
  switch (a) {
    case Act::none: return T(1);
    case Act::relu: return v > T(0) ? T(1) : T(0);
    case Act::relu6: return v > T(0) && v < T(6) ? T(1) : T(0);
    case Act::clip: return v >= alpha && v <= beta ? T(1) : T(0);
    case Act::leaky_relu: return v > T(0) ? T(1) : alpha;
    case Act::sigmoid: return v * (T(1) - v);
    case Act::tanh: return T(1) - v * v;
    case Act::silu: {
      const T s = d::sigmoid(v);
      return s * (T(1) + v * (T(1) - s));
    }
    case Act::hardswish: return v < T(-3) ? T(0) : (v <= T(3) ? v / T(3) + T(0.5) : T(1));
    case Act::hardsigmoid: return v > T(-3) && v < T(3) ? T(1) / T(6) : T(0);
    case Act::elu: return v > T(0) ? T(1) : alpha * std::exp(v);
    case Act::selu: return beta * (v > T(0) ? T(1) : alpha * std::exp(v));
    case Act::celu: return v > T(0) ? T(1) : std::exp(v / alpha);
    case Act::softplus: return d::sigmoid(v);
    case Act::softsign: {
      const T q = T(1) + std::fabs(v);
      return T(1) / (q * q);
    }
    case Act::gelu: return T(0.5) * std::erfc(-v * T(d::kInvSqrt2)) + v * T(d::kInvSqrt2Pi) * std::exp(T(-0.5) * v * v);
    case Act::gelu_tanh: {  // with s = sigmoid(2u): 0.5 (1 + tanh(u)) = s, 1 - tanh(u)^2 = 4 s (1 - s)
      const T k = T(d::kSqrt2OverPi), s = d::sigmoid(T(2) * k * (v + T(0.044715) * v * v * v));
      return s + T(2) * v * s * (T(1) - s) * k * (T(1) + T(3 * 0.044715) * v * v);
    }
    case Act::mish: {
      const T sp = d::softplus(v), t = std::tanh(sp);
      return t + v * (T(1) - t * t) * d::sigmoid(v);
    }
    case Act::erf: return T(d::kTwoOverSqrtPi) * std::exp(-v * v);
    case Act::exp: return v;
    case Act::log: return T(1) / v;
    case Act::sqrt: return T(0.5) / v;
    case Act::neg: return T(-1);
    case Act::abs: return v > T(0) ? T(1) : (v < T(0) ? T(-1) : T(0));
    case Act::reciprocal: return -v * v;
    case Act::shrink: return v < -alpha || v > alpha ? T(1) : T(0);
    case Act::fake_quant: {  // straight through inside the range (torch's fake_quantize_per_tensor_affine)
      const float q = rintf(static_cast<float>(v) / static_cast<float>(alpha)), lo = static_cast<float>(beta);
      return q >= lo && q <= lo + 255.0f ? T(1) : T(0);
    }
  }
  return T(0);
}

// dx = dy * act'(v), and 0 wherever the derivative is 0, whatever dy holds (torch's select in ReLU's backward).
template <class T>
CC_HOST_DEVICE inline T act_input_grad(Act a, T v, T dy, T alpha, T beta) {
  const T d = act_derivative(a, v, alpha, beta);
  return d == T(0) ? T(0) : dy * d;
}

// The broadcasting binary ops (numpy semantics). prelu: a < 0 ? a * b : a. The comparisons give float masks, 1.0
// where true and 0.0 where false (NaN compares false); max / min propagate NaN.
#define CONVCORE_BINARY_OPS(X) \
  X(add) X(mul) X(sub) X(div) X(max) X(min) X(pow) X(prelu) X(less) X(less_equal) X(greater) X(greater_equal) X(equal)

enum class BinaryOp : int {
#define CONVCORE_BINARY_ENUM(name) name,
  CONVCORE_BINARY_OPS(CONVCORE_BINARY_ENUM)
#undef CONVCORE_BINARY_ENUM
};

CC_HOST_DEVICE constexpr const char* binary_name(BinaryOp op) {
  switch (op) {
#define CONVCORE_BINARY_NAME(name) \
  case BinaryOp::name:             \
    return #name;
    CONVCORE_BINARY_OPS(CONVCORE_BINARY_NAME)
#undef CONVCORE_BINARY_NAME
  }
  return "?";
}

template <class T>
CC_HOST_DEVICE inline T binary_value(BinaryOp op, T a, T b) {
  switch (op) {
    case BinaryOp::add: return a + b;
    case BinaryOp::mul: return a * b;
    case BinaryOp::sub: return a - b;
    case BinaryOp::div: return a / b;
    case BinaryOp::max: return a != a || b != b ? a + b : (a > b ? a : b);
    case BinaryOp::min: return a != a || b != b ? a + b : (a < b ? a : b);
    case BinaryOp::pow: return static_cast<T>(std::pow(static_cast<double>(a), static_cast<double>(b)));
    case BinaryOp::prelu: return a < T(0) ? a * b : a;
    case BinaryOp::less: return a < b ? T(1) : T(0);
    case BinaryOp::less_equal: return a <= b ? T(1) : T(0);
    case BinaryOp::greater: return a > b ? T(1) : T(0);
    case BinaryOp::greater_equal: return a >= b ? T(1) : T(0);
    case BinaryOp::equal: return a == b ? T(1) : T(0);
  }
  return a;
}

}  // namespace convcore
