#include "ops/reduce/reduce.h"

#include <cmath>
#include <limits>

#include "core/pool.h"
#include "core/threads.h"

namespace convcore {

namespace {
constexpr int kMaxDims = 64;

// Visits every element of the reduced sub-space of one output (an odometer over the reduced dims).
template <class F>
void for_each_reduced(const float* base, const std::vector<index_t>& rshape, const std::vector<index_t>& rstride,
                      index_t count, F&& f) {
  const int nr = static_cast<int>(rshape.size());
  if (nr == 1 && rstride[0] == 1) {  // one contiguous run (the innermost axis)
    for (index_t e = 0; e < count; ++e) f(base[e]);
    return;
  }
  index_t idx[kMaxDims] = {};
  index_t off = 0;
  for (index_t e = 0; e < count; ++e) {
    f(base[off]);
    for (int d = nr - 1; d >= 0; --d) {
      if (++idx[d] < rshape[d]) {
        off += rstride[d];
        break;
      }
      off -= (rshape[d] - 1) * rstride[d];
      idx[d] = 0;
    }
  }
}
}  // namespace

void reduce(const std::vector<index_t>& shape, const std::vector<bool>& reduced, ReduceOp op, const float* x,
            float* y) {
  const int nd = static_cast<int>(shape.size());
  require(reduced.size() == shape.size(), "reduce: one flag per dimension");
  require(nd <= kMaxDims, "reduce: at most 64 dimensions");
  std::vector<index_t> stride(nd, 1);
  for (int d = nd - 2; d >= 0; --d) stride[d] = stride[d + 1] * shape[d + 1];
  std::vector<index_t> kshape, kstride, rshape, rstride;
  index_t outputs = 1, count = 1;
  for (int d = 0; d < nd; ++d) {
    if (reduced[d]) {
      rshape.push_back(shape[d]);
      rstride.push_back(stride[d]);
      count *= shape[d];
    } else {
      kshape.push_back(shape[d]);
      kstride.push_back(stride[d]);
      outputs *= shape[d];
    }
  }
  const double inf = std::numeric_limits<double>::infinity();
  parallel_for(outputs, threads_for(static_cast<double>(outputs) * count, 1 << 17), [&](index_t o0, index_t o1) {
    for (index_t o = o0; o < o1; ++o) {
      index_t rem = o, off = 0;
      for (int d = static_cast<int>(kshape.size()) - 1; d >= 0; --d) {
        off += (rem % kshape[d]) * kstride[d];
        rem /= kshape[d];
      }
      const float* base = x + off;
      double acc = 0.0;
      switch (op) {
        case ReduceOp::sum:
        case ReduceOp::mean:
        case ReduceOp::log_sum:
          for_each_reduced(base, rshape, rstride, count, [&](float v) { acc += v; });
          if (op == ReduceOp::mean) acc /= static_cast<double>(count);
          if (op == ReduceOp::log_sum) acc = std::log(acc);
          break;
        case ReduceOp::max:
        case ReduceOp::min: {
          const bool is_max = op == ReduceOp::max;
          acc = is_max ? -inf : inf;
          for_each_reduced(base, rshape, rstride, count, [&](float v) {
            if (v != v || acc != acc)
              acc = std::numeric_limits<double>::quiet_NaN();
            else if (is_max ? v > acc : v < acc)
              acc = v;
          });
          break;
        }
        case ReduceOp::prod:
          acc = 1.0;
          for_each_reduced(base, rshape, rstride, count, [&](float v) { acc *= v; });
          break;
        case ReduceOp::l1:
          for_each_reduced(base, rshape, rstride, count, [&](float v) { acc += std::fabs(static_cast<double>(v)); });
          break;
        case ReduceOp::l2:
        case ReduceOp::sum_square:
          for_each_reduced(base, rshape, rstride, count, [&](float v) { acc += static_cast<double>(v) * v; });
          if (op == ReduceOp::l2) acc = std::sqrt(acc);
          break;
        case ReduceOp::log_sum_exp: {
          double mx = -inf;
          for_each_reduced(base, rshape, rstride, count, [&](float v) { mx = v > mx || v != v ? v : mx; });
          if (count == 0 || std::isinf(mx)) {  // nothing, all -inf (-> -inf), or a +inf (-> +inf)
            acc = count == 0 ? -inf : mx;
            break;
          }
          for_each_reduced(base, rshape, rstride, count, [&](float v) { acc += std::exp(v - mx); });
          acc = mx + std::log(acc);
          break;
        }
      }
      y[o] = static_cast<float>(acc);
    }
  });
}

}  // namespace convcore
