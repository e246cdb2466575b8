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
  if (M <= 4) {
    // A few rows (batch-1 classifier heads): memory-bound dot products over each weight row as stored; packing the
    // weights for the GEMM would cost more than the product itself.
#pragma omp parallel for schedule(static) num_threads(threads_for(static_cast<double>(N) * K, 1 << 18))
    for (index_t n = 0; n < N; ++n) {
      const float* wn = w + n * K;
      for (index_t m = 0; m < M; ++m) {
        const float* xm = x + m * K;
        float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
        for (index_t k = 0; k < K; ++k) acc += xm[k] * wn[k];
        y[m * N + n] = acc + (bias ? bias[n] : 0.0f);
      }
    }
    return;
  }
  const float inf = std::numeric_limits<float>::infinity();
  gemm_abt(*cfg, M, N, K, x, w, bias, y, Clamp{-inf, inf}, threads_for(2.0 * M * N * K, 1 << 21));
}

}  // namespace convcore
