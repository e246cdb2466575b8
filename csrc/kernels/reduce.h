// Reductions (ONNX Reduce*): the op over a run of values, shared by the eager reduce (ops/reduce) and the Plan's
// per-pixel reduction. Memory-bound: one portable form, accumulating in double.
#pragma once
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>

#include "core/common.h"

namespace convcore {

// sum, mean, max, min, prod, l1 (sum |x|), l2 (sqrt sum x^2), sum_square, log_sum, log_sum_exp.
enum class ReduceOp { sum, mean, max, min, prod, l1, l2, sum_square, log_sum, log_sum_exp };

// op over `count` values: each(f) calls f(v) for every value.
template <class Each>
double reduce_values(ReduceOp op, index_t count, Each&& each) {
  const double inf = std::numeric_limits<double>::infinity();
  double acc = 0.0;
  switch (op) {
    case ReduceOp::sum:
    case ReduceOp::mean:
    case ReduceOp::log_sum:
      each([&](float v) { acc += v; });
      if (op == ReduceOp::mean) acc /= static_cast<double>(count);
      if (op == ReduceOp::log_sum) acc = std::log(acc);
      break;
    case ReduceOp::max:
    case ReduceOp::min: {
      const bool is_max = op == ReduceOp::max;
      acc = is_max ? -inf : inf;
      each([&](float v) {
        if (v != v || acc != acc)
          acc = std::numeric_limits<double>::quiet_NaN();
        else if (is_max ? v > acc : v < acc)
          acc = v;
      });
      break;
    }
    case ReduceOp::prod:
      acc = 1.0;
      each([&](float v) { acc *= v; });
      break;
    case ReduceOp::l1:
      each([&](float v) { acc += std::fabs(static_cast<double>(v)); });
      break;
    case ReduceOp::l2:
    case ReduceOp::sum_square:
      each([&](float v) { acc += static_cast<double>(v) * v; });
      if (op == ReduceOp::l2) acc = std::sqrt(acc);
      break;
    case ReduceOp::log_sum_exp: {
      double mx = -inf;
      each([&](float v) { mx = v > mx || v != v ? v : mx; });
      if (count == 0 || std::isinf(mx)) {  // nothing, all -inf (-> -inf), or a +inf (-> +inf)
        acc = count == 0 ? -inf : mx;
        break;
      }
      each([&](float v) { acc += std::exp(v - mx); });
      acc = mx + std::log(acc);
      break;
    }
  }
  return acc;
}

// op over the n values x[i * stride].
inline float reduce_run(ReduceOp op, const float* x, index_t n, index_t stride) {
  return static_cast<float>(reduce_values(op, n, [&](auto&& f) {
    for (index_t i = 0; i < n; ++i) f(x[i * stride]);
  }));
}

// The op of a name ("sum", "mean", ..., "log_sum_exp"); invalid_argument otherwise.
inline ReduceOp reduce_op_named(const std::string& name) {
  static const std::pair<const char*, ReduceOp> ops[] = {
      {"sum", ReduceOp::sum}, {"mean", ReduceOp::mean}, {"max", ReduceOp::max}, {"min", ReduceOp::min},
      {"prod", ReduceOp::prod}, {"l1", ReduceOp::l1}, {"l2", ReduceOp::l2}, {"sum_square", ReduceOp::sum_square},
      {"log_sum", ReduceOp::log_sum}, {"log_sum_exp", ReduceOp::log_sum_exp}};
  for (const auto& [n, op] : ops)
    if (name == n) return op;
  throw std::invalid_argument("op: unknown reduction '" + name + "'");
}

}  // namespace convcore
