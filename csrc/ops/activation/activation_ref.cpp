#include <algorithm>
#include <cmath>

#include "ops/activation/activation.h"

namespace convcore {

namespace {
float apply(UnaryOp op, float alpha, float v) {
  if (std::isnan(v)) return v;
  switch (op) {
    case UnaryOp::relu: return std::max(v, 0.0f);
    case UnaryOp::relu6: return std::min(std::max(v, 0.0f), 6.0f);
    case UnaryOp::leaky_relu: return v < 0.0f ? alpha * v : v;
    case UnaryOp::sigmoid: return static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(v))));
    case UnaryOp::tanh: return std::tanh(v);
    case UnaryOp::silu: return static_cast<float>(v / (1.0 + std::exp(-static_cast<double>(v))));
    case UnaryOp::hardswish: return v * std::min(std::max(v + 3.0f, 0.0f), 6.0f) / 6.0f;
    case UnaryOp::hardsigmoid: return std::min(std::max(v / 6.0f + 0.5f, 0.0f), 1.0f);
  }
  return v;
}
}  // namespace

void unary_ref(UnaryOp op, float alpha, const float* x, float* y, index_t n) {
  for (index_t i = 0; i < n; ++i) y[i] = apply(op, alpha, x[i]);
}

}  // namespace convcore
