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
  parallel_for(outputs, threads_for(static_cast<double>(outputs) * count, 1 << 17), [&](index_t o0, index_t o1) {
    for (index_t o = o0; o < o1; ++o) {
      index_t rem = o, off = 0;
      for (int d = static_cast<int>(kshape.size()) - 1; d >= 0; --d) {
        off += (rem % kshape[d]) * kstride[d];
        rem /= kshape[d];
      }
      const float* base = x + off;
      y[o] = static_cast<float>(
          reduce_values(op, count, [&](auto&& f) { for_each_reduced(base, rshape, rstride, count, f); }));
    }
  });
}

}  // namespace convcore
