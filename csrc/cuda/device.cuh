// Device helpers shared by the kernels: the epilogue activation (the formulas of csrc/kernels/elementwise.h, in
// float) and grid-stride loop bounds.
#pragma once
#include <cmath>

#include "cuda/kernels.h"

namespace convcore::cuda {

__device__ __forceinline__ bool is_nan(float v) { return v != v; }
__device__ __forceinline__ index_t imin(index_t a, index_t b) { return a < b ? a : b; }
__device__ __forceinline__ index_t imax(index_t a, index_t b) { return a > b ? a : b; }

// The epilogue's activation: the formula of csrc/kernels/elementwise.h, in float.
__device__ __forceinline__ float activate(float v, const Epilogue& e) {
  return convcore::activate<float>(e.act, v, e.alpha, e.beta);
}

// The first index of this thread and the step of a grid-stride loop over a 1-D grid.
__device__ __forceinline__ index_t grid_first() {
  return static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ index_t grid_step() { return static_cast<index_t>(gridDim.x) * blockDim.x; }

// Blocks for a grid-stride loop over n items with `threads` per block (at most a few waves: the loop does the rest).
inline unsigned grid_blocks(index_t n, int threads) {
  const index_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > 65536 ? 65536 : blocks));
}

}  // namespace convcore::cuda
