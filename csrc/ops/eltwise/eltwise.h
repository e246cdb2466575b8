// Broadcasting binary ops (kernels/elementwise.h's BinaryOp list), where, and concatenation, on NCHW arrays.
#pragma once
#include <vector>

#include "core/common.h"
#include "kernels/elementwise.h"

namespace convcore {

// out[i] = a[i] op b[i] over `shape` (row-major, contiguous out); a and b are read through element strides, where a
// stride of 0 broadcasts that dimension (numpy's broadcast_to gives exactly these).
void binary(BinaryOp op, const std::vector<index_t>& shape, const float* a, const std::vector<index_t>& a_strides,
            const float* b, const std::vector<index_t>& b_strides, float* out);

// out[i] = c[i] != 0 ? a[i] : b[i] (ONNX Where on a float mask), the three read through element strides as `binary`.
void where(const std::vector<index_t>& shape, const float* c, const std::vector<index_t>& c_strides, const float* a,
           const std::vector<index_t>& a_strides, const float* b, const std::vector<index_t>& b_strides, float* out);

// Concatenation along an axis of tensors viewed as (outer, len_i * inner): copies row chunks.
void concat(index_t outer, const std::vector<const float*>& xs, const std::vector<index_t>& chunk, float* out);

}  // namespace convcore
