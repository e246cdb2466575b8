#include "ops/eltwise/eltwise.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/threads.h"

namespace convcore {

namespace {
template <EltwiseOp op>
inline float apply(float a, float b) {
  if constexpr (op == EltwiseOp::add) return a + b;
  if constexpr (op == EltwiseOp::mul) return a * b;
  if constexpr (op == EltwiseOp::sub) return a - b;
  if constexpr (op == EltwiseOp::div) return a / b;
  if constexpr (op == EltwiseOp::max) return a != a || b != b ? a + b : (a > b ? a : b);  // NaN propagates
  if constexpr (op == EltwiseOp::min) return a != a || b != b ? a + b : (a < b ? a : b);
  if constexpr (op == EltwiseOp::pow) return static_cast<float>(std::pow(static_cast<double>(a), static_cast<double>(b)));
  if constexpr (op == EltwiseOp::prelu) return a < 0.0f ? a * b : a;
  if constexpr (op == EltwiseOp::less) return a < b ? 1.0f : 0.0f;
  if constexpr (op == EltwiseOp::less_equal) return a <= b ? 1.0f : 0.0f;
  if constexpr (op == EltwiseOp::greater) return a > b ? 1.0f : 0.0f;
  if constexpr (op == EltwiseOp::greater_equal) return a >= b ? 1.0f : 0.0f;
  if constexpr (op == EltwiseOp::equal) return a == b ? 1.0f : 0.0f;
  return 0.0f;
}

// The innermost row: contiguous, broadcast-scalar, or strided operands.
template <EltwiseOp op>
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

template <EltwiseOp op>
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

void binary(EltwiseOp op, const std::vector<index_t>& shape, const float* a, const std::vector<index_t>& a_strides,
            const float* b, const std::vector<index_t>& b_strides, float* out) {
  require(a_strides.size() == shape.size() && b_strides.size() == shape.size(), "binary: strides must match the shape");
  switch (op) {
    case EltwiseOp::add: return binary_impl<EltwiseOp::add>(shape, a, a_strides, b, b_strides, out);
    case EltwiseOp::mul: return binary_impl<EltwiseOp::mul>(shape, a, a_strides, b, b_strides, out);
    case EltwiseOp::sub: return binary_impl<EltwiseOp::sub>(shape, a, a_strides, b, b_strides, out);
    case EltwiseOp::div: return binary_impl<EltwiseOp::div>(shape, a, a_strides, b, b_strides, out);
    case EltwiseOp::max: return binary_impl<EltwiseOp::max>(shape, a, a_strides, b, b_strides, out);
    case EltwiseOp::min: return binary_impl<EltwiseOp::min>(shape, a, a_strides, b, b_strides, out);
    case EltwiseOp::pow: return binary_impl<EltwiseOp::pow>(shape, a, a_strides, b, b_strides, out);
    case EltwiseOp::prelu: return binary_impl<EltwiseOp::prelu>(shape, a, a_strides, b, b_strides, out);
    case EltwiseOp::less: return binary_impl<EltwiseOp::less>(shape, a, a_strides, b, b_strides, out);
    case EltwiseOp::less_equal: return binary_impl<EltwiseOp::less_equal>(shape, a, a_strides, b, b_strides, out);
    case EltwiseOp::greater: return binary_impl<EltwiseOp::greater>(shape, a, a_strides, b, b_strides, out);
    case EltwiseOp::greater_equal:
      return binary_impl<EltwiseOp::greater_equal>(shape, a, a_strides, b, b_strides, out);
    case EltwiseOp::equal: return binary_impl<EltwiseOp::equal>(shape, a, a_strides, b, b_strides, out);
  }
  throw std::invalid_argument("binary: unknown op");
}

void where(const std::vector<index_t>& shape, const float* c, const std::vector<index_t>& cs, const float* a,
           const std::vector<index_t>& as, const float* b, const std::vector<index_t>& bs, float* out) {
  const int nd = static_cast<int>(shape.size());
  require(cs.size() == shape.size() && as.size() == shape.size() && bs.size() == shape.size(),
          "where: strides must match the shape");
  index_t total = 1;
  for (index_t d : shape) total *= d;
  if (total == 0) return;
  const index_t inner = nd ? shape[nd - 1] : 1;
  const index_t rows = total / inner;
#pragma omp parallel for num_threads(threads_for(static_cast<double>(total), 1 << 17))
  for (index_t r = 0; r < rows; ++r) {
    index_t rem = r, oc = 0, oa = 0, ob = 0;
    for (int d = nd - 2; d >= 0; --d) {
      const index_t i = rem % shape[d];
      rem /= shape[d];
      oc += i * cs[d];
      oa += i * as[d];
      ob += i * bs[d];
    }
    const index_t sc = nd ? cs[nd - 1] : 0, sa = nd ? as[nd - 1] : 0, sb = nd ? bs[nd - 1] : 0;
    float* dst = out + r * inner;
    for (index_t j = 0; j < inner; ++j) dst[j] = c[oc + j * sc] != 0.0f ? a[oa + j * sa] : b[ob + j * sb];
  }
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
