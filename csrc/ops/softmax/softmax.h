// Softmax / log-softmax along one axis of a tensor viewed as (outer, axis_len, inner).
#pragma once
#include "core/common.h"

namespace convcore {

void softmax(index_t outer, index_t len, index_t inner, bool log, const float* x, float* y);

}  // namespace convcore
