#include <algorithm>
#include <cmath>

#include "ops/activation/activation.h"

namespace convcore {

namespace {
// log(1 + exp(v)) without overflow for large v or loss of precision for very negative v.
double softplus(double v) { return v > 0.0 ? v + std::log1p(std::exp(-v)) : std::log1p(std::exp(v)); }

float apply(UnaryOp op, float alpha, float beta, float v) {
  if (std::isnan(v)) return v;
  const double d = v;
  switch (op) {
    case UnaryOp::relu: return std::max(v, 0.0f);
    case UnaryOp::relu6: return std::min(std::max(v, 0.0f), 6.0f);
    case UnaryOp::leaky_relu: return v < 0.0f ? alpha * v : v;
    case UnaryOp::sigmoid: return static_cast<float>(1.0 / (1.0 + std::exp(-d)));
    case UnaryOp::tanh: return std::tanh(v);
    case UnaryOp::silu: return static_cast<float>(d / (1.0 + std::exp(-d)));
    case UnaryOp::hardswish: return v * std::min(std::max(v + 3.0f, 0.0f), 6.0f) / 6.0f;
    case UnaryOp::hardsigmoid: return std::min(std::max(v / 6.0f + 0.5f, 0.0f), 1.0f);
    case UnaryOp::elu: return v < 0.0f ? static_cast<float>(alpha * std::expm1(d)) : v;
    case UnaryOp::selu: return static_cast<float>(beta * (v > 0.0f ? d : alpha * std::expm1(d)));
    case UnaryOp::celu: return v > 0.0f ? v : static_cast<float>(alpha * std::expm1(d / alpha));
    case UnaryOp::softplus: return static_cast<float>(softplus(d));
    case UnaryOp::softsign: return static_cast<float>(d / (1.0 + std::fabs(d)));
    case UnaryOp::gelu: return static_cast<float>(0.5 * d * (1.0 + std::erf(d * 0.70710678118654752440)));
    case UnaryOp::gelu_tanh:
      return static_cast<float>(0.5 * d * (1.0 + std::tanh(0.79788456080286535588 * (d + 0.044715 * d * d * d))));
    case UnaryOp::mish: return static_cast<float>(d * std::tanh(softplus(d)));
    case UnaryOp::erf: return static_cast<float>(std::erf(d));
    case UnaryOp::exp: return static_cast<float>(std::exp(d));
    case UnaryOp::log: return static_cast<float>(std::log(d));
    case UnaryOp::sqrt: return static_cast<float>(std::sqrt(d));
    case UnaryOp::neg: return -v;
    case UnaryOp::abs: return std::fabs(v);
    case UnaryOp::reciprocal: return static_cast<float>(1.0 / d);
    case UnaryOp::clip: {  // min(max(v, lo), hi): hi wins when lo > hi (ONNX)
      const float r = v < alpha ? alpha : v;
      return r > beta ? beta : r;
    }
  }
  return v;
}
}  // namespace

void unary_ref(UnaryOp op, float alpha, float beta, const float* x, float* y, index_t n) {
  for (index_t i = 0; i < n; ++i) y[i] = apply(op, alpha, beta, x[i]);
}

}  // namespace convcore
