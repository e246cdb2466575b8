#include "ops/linear/linear.h"

#include <limits>

#include "core/cpu.h"
#include "core/threads.h"
#include "ops/gemm/gemm.h"

namespace convcore {

void linear(index_t M, index_t N, index_t K, const float* x, const float* w, const float* bias, float* y) {
  require(M >= 1 && N >= 1 && K >= 1, "linear: sizes must be positive");
  const GemmConfig* cfg = gemm_config(active_isa());
  if (cfg == nullptr) return linear_ref(M, N, K, x, w, bias, y);
  const float inf = std::numeric_limits<float>::infinity();
  gemm_abt(*cfg, M, N, K, x, w, bias, y, Clamp{-inf, inf}, threads_for(2.0 * M * N * K, 1 << 21));
}

}  // namespace convcore
