// Helpers the CPU Plan's ops share (ops.cpp, conv_ops.cpp, grad_ops.cpp): how many threads an op is worth and each
// part's share of its work.
#pragma once
#include <algorithm>
#include <cmath>
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

// Pixels per kernel call when a thread convolves pixels [p0, p1) with every block of output channels. A conv kernel
// runs block by block over its pixels, so each block re-reads the thread's input; once that outgrows L2 (large maps,
// batches: an AVX2 core has 512 KB) each re-read streams from L3 or memory. Chunks of pixels whose input stays in L2
// across the blocks read the weights once per chunk instead: chosen where that moves fewer bytes.
//   pixels: the thread's output pixels; in_per_px: input bytes one output pixel reads (channels x stride area);
//   blocks: output-channel blocks reading one group's input; weights: packed weight bytes; align: the tile's rows.
inline index_t pixel_chunk(index_t pixels, double in_per_px, index_t blocks, double weights, index_t align) {
  constexpr double kL2 = 256 << 10;  // a share of L2 every current x86 core has
  const double in = static_cast<double>(pixels) * in_per_px;
  if (in <= kL2 || blocks <= 1) return pixels;
  const index_t chunk = std::max<index_t>(1, static_cast<index_t>(kL2 / 2 / in_per_px) / align) * align;
  const double chunks = std::ceil(static_cast<double>(pixels) / static_cast<double>(chunk));
  const double by_block = weights + static_cast<double>(blocks) * in;
  const double by_chunk = in + (weights > kL2 ? chunks * weights : weights);
  return by_chunk < by_block ? chunk : pixels;
}

constexpr double kFlopGrain = 1 << 20;   // below ~1 MFLOP a second thread costs more than it saves
constexpr double kByteGrain = 1 << 17;   // memory-bound ops: per thread at least this many bytes

}  // namespace convcore::planop
