// Helpers the Plan's op builders share (ops.cpp, grad_ops.cpp): how many threads an op is worth, each part's share
// of its work, shape strings for summaries, adding an op and keeping a reference to it.
#pragma once
#include <algorithm>
#include <memory>
#include <string>
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

constexpr double kFlopGrain = 1 << 20;   // below ~1 MFLOP a second thread costs more than it saves
constexpr double kByteGrain = 1 << 17;   // memory-bound ops: per thread at least this many bytes

inline std::string dims(const TensorDesc& t) {
  return std::to_string(t.H) + "x" + std::to_string(t.W) + "x" + std::to_string(t.C);
}

template <class T>
T& add(Plan& p, std::unique_ptr<T> op) {
  T& ref = *op;
  p.add_op(std::move(op));
  return ref;
}

}  // namespace convcore::planop
