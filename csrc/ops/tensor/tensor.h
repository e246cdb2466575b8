// Data movement behind the general tensor ops (transpose, slice, pad, gather, expand, tile, nearest resize) and the
// separable resampling behind linear / cubic resize. Memory-bound: one portable kernel each.
#pragma once
#include <vector>

#include "core/common.h"

namespace convcore {

// out[i_0, ..., i_{k-1}] = x[sum_d offsets_d[i_d]], or `fill` where any offsets_d[i_d] is -1, for a row-major out of
// shape out_shape (k = out_shape.size() >= 0). offsets_d holds, per output index along dim d, the element offset of
// the input it reads (its index along some input axis times that axis' stride), so one kernel serves permutations,
// strided slices, broadcasting, repetition, reflection and constant padding. Rows whose last-dim offsets run
// contiguously are copied with memcpy. The caller guarantees every sum of offsets stays inside x.
void index_copy(const std::vector<index_t>& out_shape, const std::vector<const index_t*>& offsets, const float* x,
                float fill, float* out);

// One separable resampling pass over a tensor viewed as (outer, in_len, inner) -> (outer, out_len, inner):
// out[o, j, i] = sum_t weights[j * taps + t] * x[o, index[j * taps + t], i] (accumulated in double), or `fill` when
// index[j * taps] is -1 (a position outside the input that extrapolates). Indices are in [0, in_len).
void resample_axis(index_t outer, index_t in_len, index_t inner, index_t out_len, index_t taps, const index_t* index,
                   const double* weights, float fill, const float* x, float* out);

}  // namespace convcore
