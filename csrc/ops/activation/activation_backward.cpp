#include "ops/activation/activation_backward.h"

#include <algorithm>
#include <cmath>

#include "core/cpu.h"
#include "core/pool.h"
#include "core/threads.h"
#include "plan/kernels.h"

namespace convcore {

bool unary_grad_uses_output(UnaryOp op) {
  return op == UnaryOp::relu || op == UnaryOp::relu6 || op == UnaryOp::sigmoid || op == UnaryOp::tanh;
}

namespace {

// The derivative factor of one element, in float (the fast loops) - formulas as torch's backward kernels.
inline float factor(UnaryOp op, float alpha, float v) {
  switch (op) {
    case UnaryOp::relu: return v > 0.0f ? 1.0f : 0.0f;
    case UnaryOp::relu6: return v > 0.0f && v < 6.0f ? 1.0f : 0.0f;
    case UnaryOp::leaky_relu: return v > 0.0f ? 1.0f : alpha;
    case UnaryOp::sigmoid: return v * (1.0f - v);
    case UnaryOp::tanh: return 1.0f - v * v;
    case UnaryOp::hardswish: return v < -3.0f ? 0.0f : (v <= 3.0f ? v / 3.0f + 0.5f : 1.0f);
    case UnaryOp::hardsigmoid: return v > -3.0f && v < 3.0f ? 1.0f / 6.0f : 0.0f;
    case UnaryOp::silu: break;  // needs exp: handled by the callers
    default: break;             // no backward kernel (the rules check first)
  }
  return 0.0f;
}

// dx[i] = dy[i] * f(v[i]), one loop per op (the switch outside it, so that each loop vectorizes).
template <class F>
inline void scale_by(const float* v, const float* dy, float* dx, index_t n, F f) {
  for (index_t i = 0; i < n; ++i) dx[i] = dy[i] * f(v[i]);
}

void grad_chunk(UnaryOp op, float alpha, const float* v, const float* dy, float* dx, index_t n, const PlanKernels& k) {
  switch (op) {
    case UnaryOp::relu:
      for (index_t i = 0; i < n; ++i) dx[i] = v[i] > 0.0f ? dy[i] : 0.0f;
      return;
    case UnaryOp::relu6:
      for (index_t i = 0; i < n; ++i) dx[i] = (v[i] > 0.0f) & (v[i] < 6.0f) ? dy[i] : 0.0f;
      return;
    case UnaryOp::leaky_relu:
      return scale_by(v, dy, dx, n, [alpha](float x) { return x > 0.0f ? 1.0f : alpha; });
    case UnaryOp::sigmoid:
      return scale_by(v, dy, dx, n, [](float y) { return y * (1.0f - y); });
    case UnaryOp::tanh:
      return scale_by(v, dy, dx, n, [](float y) { return 1.0f - y * y; });
    case UnaryOp::hardswish:
      return scale_by(v, dy, dx, n, [](float x) { return x < -3.0f ? 0.0f : (x <= 3.0f ? x / 3.0f + 0.5f : 1.0f); });
    case UnaryOp::hardsigmoid:
      return scale_by(v, dy, dx, n, [](float x) { return (x > -3.0f) & (x < 3.0f) ? 1.0f / 6.0f : 0.0f; });
    case UnaryOp::silu: {
      // s = sigmoid(x) with the vectorized kernel, then dx = dy * s * (1 + x * (1 - s)); chunks stay in L1 / L2.
      constexpr index_t kBlock = 2048;
      float s[kBlock];
      Epilogue e;
      e.act = Act::sigmoid;
      for (index_t lo = 0; lo < n; lo += kBlock) {
        const index_t len = std::min(kBlock, n - lo);
        k.activation(e, v + lo, s, len);
        for (index_t i = 0; i < len; ++i) dx[lo + i] = dy[lo + i] * (s[i] * (1.0f + v[lo + i] * (1.0f - s[i])));
      }
      return;
    }
    default:
      for (index_t i = 0; i < n; ++i) dx[i] = dy[i] * factor(op, alpha, v[i]);
  }
}

}  // namespace

void unary_input_grad_ref(UnaryOp op, float alpha, const float* v, const float* dy, float* dx, index_t n) {
  for (index_t i = 0; i < n; ++i) {
    const double x = v[i];
    double f;
    if (op == UnaryOp::silu) {
      const double s = 1.0 / (1.0 + std::exp(-x));
      f = s * (1.0 + x * (1.0 - s));
    } else if (op == UnaryOp::sigmoid) {
      f = x * (1.0 - x);
    } else if (op == UnaryOp::tanh) {
      f = 1.0 - x * x;
    } else {
      f = factor(op, alpha, v[i]);
    }
    dx[i] = static_cast<float>(static_cast<double>(dy[i]) * f);
  }
}

void unary_input_grad_chunk(UnaryOp op, float alpha, const float* v, const float* dy, float* dx, index_t n, Isa isa) {
  if (isa == Isa::scalar)
    unary_input_grad_ref(op, alpha, v, dy, dx, n);
  else
    grad_chunk(op, alpha, v, dy, dx, n, plan_kernels(isa));
}

void unary_input_grad(UnaryOp op, float alpha, const float* v, const float* dy, float* dx, index_t n) {
  const Isa isa = active_isa();
  constexpr index_t kChunk = 65536;
  run_chunks(ceil_div(n, kChunk), threads_for(static_cast<double>(n), kChunk), [&](index_t c) {
    const index_t lo = c * kChunk;
    unary_input_grad_chunk(op, alpha, v + lo, dy + lo, dx + lo, std::min(kChunk, n - lo), isa);
  });
}

}  // namespace convcore
