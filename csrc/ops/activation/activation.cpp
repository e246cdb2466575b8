#include "ops/activation/activation.h"

#include <algorithm>

#include "core/cpu.h"
#include "core/threads.h"
#include "plan/kernels.h"

namespace convcore {

namespace {

// The activation as the Plan's epilogue (whose SIMD kernels evaluate exp with a vectorized polynomial).
Epilogue as_epilogue(UnaryOp op, float alpha) {
  Epilogue e;
  switch (op) {
    case UnaryOp::relu: e.act = Act::clamp, e.lo = 0.0f, e.hi = __builtin_inff(); break;
    case UnaryOp::relu6: e.act = Act::clamp, e.lo = 0.0f, e.hi = 6.0f; break;
    case UnaryOp::leaky_relu: e.act = Act::leaky_relu, e.alpha = alpha; break;
    case UnaryOp::sigmoid: e.act = Act::sigmoid; break;
    case UnaryOp::tanh: e.act = Act::tanh; break;
    case UnaryOp::silu: e.act = Act::silu; break;
    case UnaryOp::hardswish: e.act = Act::hardswish; break;
    case UnaryOp::hardsigmoid: e.act = Act::hardsigmoid; break;
    default: break;  // the portable ops: unary() runs unary_ref for them
  }
  return e;
}

}  // namespace

void unary(UnaryOp op, float alpha, float beta, const float* x, float* y, index_t n) {
  const Isa isa = active_isa();
  const bool simd = isa != Isa::scalar && op <= kLastSimdUnary;
  const Epilogue e = as_epilogue(op, alpha);
  const PlanKernels& k = plan_kernels(isa);
  constexpr index_t kChunk = 65536;  // elements per thread at least (and per scheduling chunk)
  const index_t chunks = ceil_div(n, kChunk);
#pragma omp parallel for schedule(static) num_threads(threads_for(static_cast<double>(n), kChunk))
  for (index_t c = 0; c < chunks; ++c) {
    const index_t lo = c * kChunk, len = std::min(kChunk, n - lo);
    if (simd)
      k.activation(e, x + lo, y + lo, len);
    else
      unary_ref(op, alpha, beta, x + lo, y + lo, len);
  }
}

}  // namespace convcore
