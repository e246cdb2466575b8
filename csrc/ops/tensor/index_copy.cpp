#include <cstring>

#include "core/pool.h"
#include "core/threads.h"
#include "ops/tensor/tensor.h"

namespace convcore {

void index_copy(const std::vector<index_t>& out_shape, const std::vector<const index_t*>& offsets, const float* x,
                float fill, float* out) {
  const int nd = static_cast<int>(out_shape.size());
  require(offsets.size() == out_shape.size(), "index_copy: one offset table per output dimension");
  if (nd == 0) {
    out[0] = x[0];
    return;
  }
  index_t rows = 1;
  for (int d = 0; d < nd - 1; ++d) rows *= out_shape[d];
  const index_t inner = out_shape[nd - 1];
  if (rows == 0 || inner == 0) return;
  const index_t* last = offsets[nd - 1];
  bool run = last[0] >= 0;  // the last dim reads consecutive elements: a row is one memcpy
  for (index_t j = 1; run && j < inner; ++j) run = last[j] == last[0] + j;
  parallel_for(rows, threads_for(static_cast<double>(rows) * inner, 1 << 17), [&](index_t r0, index_t r1) {
    for (index_t r = r0; r < r1; ++r) {
      index_t rem = r, base = 0;
      bool filled = false;
      for (int d = nd - 2; d >= 0; --d) {
        const index_t i = rem % out_shape[d];
        rem /= out_shape[d];
        const index_t o = offsets[d][i];
        if (o < 0) filled = true;
        base += o;
      }
      float* dst = out + r * inner;
      if (filled) {
        for (index_t j = 0; j < inner; ++j) dst[j] = fill;
      } else if (run) {
        std::memcpy(dst, x + base + last[0], sizeof(float) * inner);
      } else {
        for (index_t j = 0; j < inner; ++j) dst[j] = last[j] < 0 ? fill : x[base + last[j]];
      }
    }
  });
}

}  // namespace convcore
