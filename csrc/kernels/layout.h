// Whole NCHW <-> NHWC conversions on the pool's threads, for the eager ops whose kernels are channels-last: each
// chunk is a run of pixels of one image, transposed by the kernels' blocked transposes.
#pragma once
#include <algorithm>

#include "core/pool.h"
#include "core/threads.h"
#include "kernels/kernels.h"

namespace convcore {

constexpr index_t kLayoutChunk = 1024;  // pixels per chunk

// dst (N, HW, C) <- src (N, C, HW).
inline void nchw_to_nhwc_all(const Kernels& k, const float* src, index_t N, index_t C, index_t HW, float* dst) {
  const index_t per_image = ceil_div(HW, kLayoutChunk);
  run_chunks(N * per_image, threads_for(2.0 * N * C * HW, 1 << 16), [&](index_t i) {
    const index_t n = i / per_image, p0 = i % per_image * kLayoutChunk;
    k.nchw_to_nhwc(src + n * C * HW, C, HW, dst + n * HW * C, C, p0, std::min(HW, p0 + kLayoutChunk));
  });
}

// dst (N, C, HW) <- src (N, HW, C).
inline void nhwc_to_nchw_all(const Kernels& k, const float* src, index_t N, index_t C, index_t HW, float* dst) {
  const index_t per_image = ceil_div(HW, kLayoutChunk);
  run_chunks(N * per_image, threads_for(2.0 * N * C * HW, 1 << 16), [&](index_t i) {
    const index_t n = i / per_image, p0 = i % per_image * kLayoutChunk;
    k.nhwc_to_nchw(src + n * HW * C, C, C, HW, dst + n * C * HW, p0, std::min(HW, p0 + kLayoutChunk));
  });
}

}  // namespace convcore
