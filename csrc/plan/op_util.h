// Helpers the CPU Plan's ops share (ops.cpp, conv_ops.cpp, grad_ops.cpp): how many threads an op is worth and each
// part's share of its work.
#pragma once
#include <algorithm>
#include <utility>

#include "core/threads.h"
#include "plan/plan.h"

namespace convcore::planop {

// Threads worth using for `work` units (FLOPs or bytes touched) when each should have at least `grain`.
inline int parts_for(double work, double grain, int threads) {
  const double useful = work / (grain * grain_scale() + 1e-30);
  return useful >= threads ? threads : std::max(1, static_cast<int>(useful));
}

// [lo, hi) of part `part` of `parts` over n items, in multiples of `align` items.
inline std::pair<index_t, index_t> share(index_t n, int part, int parts, index_t align = 1) {
  const index_t units = ceil_div(n, align);
  const index_t lo = units * part / parts * align, hi = units * (part + 1) / parts * align;
  return {std::min(lo, n), std::min(hi, n)};
}

// Calls f(n, p0, p1) for each image's piece of pixels [lo, hi) of an N x HW batch.
template <class F>
void for_image_pixels(index_t HW, index_t lo, index_t hi, F&& f) {
  for (index_t p = lo; p < hi;) {
    const index_t n = p / HW, end = std::min(hi, (n + 1) * HW);
    f(n, p - n * HW, end - n * HW);
    p = end;
  }
}

constexpr double kFlopGrain = 1 << 20;   // below ~1 MFLOP a second thread costs more than it saves
constexpr double kByteGrain = 1 << 17;   // memory-bound ops: per thread at least this many bytes

}  // namespace convcore::planop
