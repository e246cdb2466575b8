// Reductions over any set of axes (ONNX Reduce*). Memory-bound: one portable kernel.
#pragma once
#include <vector>

#include "core/common.h"
#include "kernels/reduce.h"

namespace convcore {

// y[kept index] = op over the axes with reduced[d] of a row-major x of `shape`; y is row-major over the kept axes.
// Accumulates in double; max / min propagate NaN; an empty reduction gives the op's identity (0 for sums, -inf for
// max and log_sum_exp, +inf for min, 1 for prod; mean of nothing is NaN).
void reduce(const std::vector<index_t>& shape, const std::vector<bool>& reduced, ReduceOp op, const float* x, float* y);

}  // namespace convcore
