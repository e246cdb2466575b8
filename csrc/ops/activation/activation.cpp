#include "ops/activation/activation.h"

#include <algorithm>

#include "core/cpu.h"
#include "core/threads.h"

namespace convcore {

void unary(UnaryOp op, float alpha, float beta, const float* x, float* y, index_t n) {
  UnaryFn fn = nullptr;
  if (op <= kLastSimdUnary) {
    switch (active_isa()) {
      case Isa::avx512: fn = avx512::f32_unary_avx512; break;
      case Isa::avx2: fn = avx2::f32_unary_avx2; break;
      case Isa::scalar: break;
    }
  }
  constexpr index_t kChunk = 65536;  // elements per thread at least (and per scheduling chunk)
  const index_t chunks = ceil_div(n, kChunk);
#pragma omp parallel for schedule(static) num_threads(threads_for(static_cast<double>(n), kChunk))
  for (index_t c = 0; c < chunks; ++c) {
    const index_t lo = c * kChunk, len = std::min(kChunk, n - lo);
    if (fn != nullptr)
      fn(op, alpha, x + lo, y + lo, len);
    else
      unary_ref(op, alpha, beta, x + lo, y + lo, len);
  }
}

}  // namespace convcore
