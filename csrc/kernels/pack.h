// Weight packing for the kernels (kernels.h): done once per compiled Plan op, or once per eager call.
#pragma once
#include <vector>

#include "kernels/kernels.h"

namespace convcore {

// OIHW weights (K, Cg, R, S) and an optional bias (K) packed for the register tile of `k` (see ConvTile), the panels
// split across `threads` threads of the pool.
ConvPacked pack_conv(const Kernels& k, const ConvGeom& g, const float* w, const float* bias, int threads = 1);

// Depthwise weights (C, 1, R, S), or narrow-group ones (C, G, R, S) with as many outputs as inputs per group, as
// [tap][j < G][C padded to the lanes], and the bias (or zeros) padded the same way.
void pack_depthwise(const Kernels& k, index_t C, index_t G, index_t taps, const float* w, const float* bias,
                    AlignedVector& wp, AlignedVector& bp);

// Winograd F(4x4, 3x3) filters U = G f G^T of OIHW 3x3 weights (K, C, 3, 3), as (36 * K, C): row xi * K + oc holds
// position xi of every input channel's transformed filter (the 36 products are one grouped 1x1 convolution).
std::vector<float> winograd_filters(const float* w, index_t K, index_t C);

}  // namespace convcore
