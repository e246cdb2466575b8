#include "ops/eltwise/eltwise.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/pool.h"
#include "core/threads.h"

namespace convcore {

namespace {
template <BinaryOp op>
inline float apply(float a, float b) {
  return binary_value<float>(op, a, b);
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
  parallel_for(rows, threads_for(static_cast<double>(rows) * inner, 1 << 17), [&](index_t r0, index_t r1) {
    for (index_t r = r0; r < r1; ++r) {
      index_t rem = r, oa = 0, ob = 0;  // row index -> element offsets of a and b
      for (int d = nd - 2; d >= 0; --d) {
        const index_t i = rem % shape[d];
        rem /= shape[d];
        oa += i * as[d];
        ob += i * bs[d];
      }
      row<op>(inner, a + oa, as[nd - 1], b + ob, bs[nd - 1], out + r * inner);
    }
  });
}
}  // namespace

void binary(BinaryOp op, const std::vector<index_t>& shape, const float* a, const std::vector<index_t>& a_strides,
            const float* b, const std::vector<index_t>& b_strides, float* out) {
  require(a_strides.size() == shape.size() && b_strides.size() == shape.size(), "binary: strides must match the shape");
  switch (op) {
#define CONVCORE_BINARY_CASE(name) \
  case BinaryOp::name:             \
    return binary_impl<BinaryOp::name>(shape, a, a_strides, b, b_strides, out);
    CONVCORE_BINARY_OPS(CONVCORE_BINARY_CASE)
#undef CONVCORE_BINARY_CASE
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
  parallel_for(rows, threads_for(static_cast<double>(total), 1 << 17), [&](index_t r0, index_t r1) {
    for (index_t r = r0; r < r1; ++r) {
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
  });
}

void concat(index_t outer, const std::vector<const float*>& xs, const std::vector<index_t>& chunk, float* out) {
  index_t row = 0;
  for (index_t c : chunk) row += c;
  parallel_for(outer, threads_for(static_cast<double>(outer) * row, 1 << 18), [&](index_t o0, index_t o1) {
    for (index_t o = o0; o < o1; ++o) {
      float* dst = out + o * row;
      for (size_t i = 0; i < xs.size(); ++i) {
        std::memcpy(dst, xs[i] + o * chunk[i], sizeof(float) * chunk[i]);
        dst += chunk[i];
      }
    }
  });
}

}  // namespace convcore
