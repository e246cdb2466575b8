#include "ops/matmul/matmul.h"

#include <algorithm>
#include <vector>

#include "core/cpu.h"
#include "ops/linear/linear.h"

namespace convcore {

void matmul(index_t batch, index_t M, index_t N, index_t K, const float* a, const index_t* a_offsets, const float* b,
            const index_t* b_offsets, float* c) {
  require(batch >= 0 && M >= 1 && N >= 1 && K >= 0, "matmul: bad sizes");
  if (K == 0) {
    std::fill(c, c + batch * M * N, 0.0f);
    return;
  }
  if (active_isa() == Isa::scalar) return matmul_ref(batch, M, N, K, a, a_offsets, b, b_offsets, c);
  std::vector<float> bt(static_cast<size_t>(N * K));
  index_t packed = -1;  // the B offset bt holds (broadcast B: transposed once)
  for (index_t i = 0; i < batch; ++i) {
    if (b_offsets[i] != packed) {
      const float* bi = b + b_offsets[i];
      for (index_t k = 0; k < K; ++k)
        for (index_t n = 0; n < N; ++n) bt[n * K + k] = bi[k * N + n];
      packed = b_offsets[i];
    }
    linear(M, N, K, a + a_offsets[i], bt.data(), nullptr, c + i * M * N);  // threads split inside
  }
}

}  // namespace convcore
