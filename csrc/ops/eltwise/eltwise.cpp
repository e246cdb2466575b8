#include "ops/eltwise/eltwise.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/threads.h"

namespace convcore {

namespace {
template <BinaryOp op>
inline float apply(float a, float b) {
  if constexpr (op == BinaryOp::add) return a + b;
  if constexpr (op == BinaryOp::mul) return a * b;
  if constexpr (op == BinaryOp::sub) return a - b;
  if constexpr (op == BinaryOp::div) return a / b;
  if constexpr (op == BinaryOp::max) return a != a || b != b ? a + b : (a > b ? a : b);  // NaN propagates
  if constexpr (op == BinaryOp::min) return a != a || b != b ? a + b : (a < b ? a : b);
  if constexpr (op == BinaryOp::pow) return static_cast<float>(std::pow(static_cast<double>(a), static_cast<double>(b)));
  if constexpr (op == BinaryOp::prelu) return a < 0.0f ? a * b : a;
  return 0.0f;
}

// The innermost row: contiguous, broadcast-scalar, or strided operands.
template <BinaryOp op>
void row(index_t n, const float* a, index_t sa, const float* b, index_t sb, float* out) {
  if (sa == 1 && sb == 1) {
    for (index_t i = 0; i < n; ++i) out[i] = apply<op>(a[i], b[i]);
  } else if (sa == 1 && sb == 0) {
    const float bv = *b;
    for (index_t i = 0; i < n; ++i) out[i] = apply<op>(a[i], bv);
  } else if (sa == 0 && sb == 1) {
    const float av = *a;
    for (index_t i = 0; i < n; ++i) out[i] = apply<op>(av, b[i]);
  } else {
    for (index_t i = 0; i < n; ++i) out[i] = apply<op>(a[i * sa], b[i * sb]);
  }
}

template <BinaryOp op>
void binary_impl(const std::vector<index_t>& shape, const float* a, const std::vector<index_t>& as, const float* b,
                 const std::vector<index_t>& bs, float* out) {
  const int nd = static_cast<int>(shape.size());
  if (nd == 0) {
    *out = apply<op>(*a, *b);
    return;
  }
  const index_t inner = shape[nd - 1];
  index_t rows = 1;
  for (int d = 0; d < nd - 1; ++d) rows *= shape[d];
#pragma omp parallel for num_threads(threads_for(static_cast<double>(rows) * inner, 1 << 17))
  for (index_t r = 0; r < rows; ++r) {
    index_t rem = r, oa = 0, ob = 0;  // row index -> element offsets of a and b
    for (int d = nd - 2; d >= 0; --d) {
      const index_t i = rem % shape[d];
      rem /= shape[d];
      oa += i * as[d];
      ob += i * bs[d];
    }
    row<op>(inner, a + oa, as[nd - 1], b + ob, bs[nd - 1], out + r * inner);
  }
}
}  // namespace

void binary(BinaryOp op, const std::vector<index_t>& shape, const float* a, const std::vector<index_t>& a_strides,
            const float* b, const std::vector<index_t>& b_strides, float* out) {
  require(a_strides.size() == shape.size() && b_strides.size() == shape.size(), "binary: strides must match the shape");
  switch (op) {
    case BinaryOp::add: return binary_impl<BinaryOp::add>(shape, a, a_strides, b, b_strides, out);
    case BinaryOp::mul: return binary_impl<BinaryOp::mul>(shape, a, a_strides, b, b_strides, out);
    case BinaryOp::sub: return binary_impl<BinaryOp::sub>(shape, a, a_strides, b, b_strides, out);
    case BinaryOp::div: return binary_impl<BinaryOp::div>(shape, a, a_strides, b, b_strides, out);
    case BinaryOp::max: return binary_impl<BinaryOp::max>(shape, a, a_strides, b, b_strides, out);
    case BinaryOp::min: return binary_impl<BinaryOp::min>(shape, a, a_strides, b, b_strides, out);
    case BinaryOp::pow: return binary_impl<BinaryOp::pow>(shape, a, a_strides, b, b_strides, out);
    case BinaryOp::prelu: return binary_impl<BinaryOp::prelu>(shape, a, a_strides, b, b_strides, out);
  }
  throw std::invalid_argument("binary: unknown op");
}

void concat(index_t outer, const std::vector<const float*>& xs, const std::vector<index_t>& chunk, float* out) {
  index_t row = 0;
  for (index_t c : chunk) row += c;
#pragma omp parallel for num_threads(threads_for(static_cast<double>(outer) * row, 1 << 18))
  for (index_t o = 0; o < outer; ++o) {
    float* dst = out + o * row;
    for (size_t i = 0; i < xs.size(); ++i) {
      std::memcpy(dst, xs[i] + o * chunk[i], sizeof(float) * chunk[i]);
      dst += chunk[i];
    }
  }
}

}  // namespace convcore
