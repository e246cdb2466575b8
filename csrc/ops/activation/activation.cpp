#include "ops/activation/activation.h"

#include <algorithm>

#include "core/pool.h"
#include "core/threads.h"
#include "kernels/kernels.h"

namespace convcore {

namespace {
constexpr index_t kChunk = 65536;  // elements per thread at least (and per scheduling chunk)
}

void unary(const Epilogue& e, const float* x, float* y, index_t n, Isa isa) {
  const Kernels& k = kernels_for(isa);
  run_chunks(ceil_div(n, kChunk), threads_for(static_cast<double>(n), kChunk), [&](index_t c) {
    const index_t lo = c * kChunk;
    k.activation(e, x + lo, y + lo, std::min(kChunk, n - lo));
  });
}

void unary_input_grad(const Epilogue& e, const float* v, const float* dy, float* dx, index_t n, Isa isa) {
  const Kernels& k = kernels_for(isa);
  run_chunks(ceil_div(n, kChunk), threads_for(static_cast<double>(n), kChunk), [&](index_t c) {
    const index_t lo = c * kChunk;
    k.act_grad(e, v + lo, dy + lo, dx + lo, std::min(kChunk, n - lo));
  });
}

}  // namespace convcore
