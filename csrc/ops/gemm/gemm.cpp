#include "ops/gemm/gemm.h"

#include <omp.h>

#include <algorithm>
#include <cstring>

namespace convcore {

namespace avx2 {
extern const GemmConfig kGemmConfig;
}
namespace avx512 {
extern const GemmConfig kGemmConfig;
}

const GemmConfig* gemm_config(Isa isa) {
  switch (isa) {
    case Isa::avx512: return &avx512::kGemmConfig;
    case Isa::avx2: return &avx2::kGemmConfig;
    case Isa::scalar: return nullptr;
  }
  return nullptr;
}

void gemm_pack_a(const float* a, index_t lda, index_t m, index_t k, int mr, float* out) {
  const index_t panels = ceil_div(m, mr);
  for (index_t p = 0; p < panels; ++p) {
    float* dst = out + p * mr * k;
    for (index_t kk = 0; kk < k; ++kk)
      for (int i = 0; i < mr; ++i) {
        const index_t row = p * mr + i;
        dst[kk * mr + i] = row < m ? a[row * lda + kk] : 0.0f;
      }
  }
}

std::vector<GemmTask> gemm_tasks(index_t M, index_t N, const GemmConfig& cfg, index_t independent_problems,
                                 int threads, index_t max_nc) {
  const index_t nr = cfg.nr, mpanels = ceil_div(M, cfg.mr), npanels = ceil_div(N, nr);
  // Column blocks of whole panels, as equal as possible: every task streams all of A, so a thin tail block would
  // cost nearly as much as a full one.
  index_t nblocks = ceil_div(npanels, std::max<index_t>(max_nc / nr, 1));
  if (threads > 1)  // a couple of tasks per thread balance uneven progress
    nblocks = std::min(npanels, std::max(nblocks, ceil_div(2 * static_cast<index_t>(threads), independent_problems)));
  const index_t per_block = ceil_div(npanels, nblocks);
  nblocks = ceil_div(npanels, per_block);
  // Too few blocks for the threads: split the row panels as well.
  index_t msplit = 1;
  if (independent_problems * nblocks < threads)
    msplit = std::min<index_t>(mpanels, ceil_div(threads, independent_problems * nblocks));
  std::vector<GemmTask> tasks;
  for (index_t b = 0; b < nblocks; ++b)
    for (index_t s = 0; s < msplit; ++s)
      tasks.push_back({b * per_block * nr, std::min(N, (b + 1) * per_block * nr), mpanels * s / msplit,
                       mpanels * (s + 1) / msplit});
  return tasks;
}

void gemm_abt(const GemmConfig& cfg, index_t M, index_t N, index_t K, const float* a, const float* b,
              const float* bias_col, float* c, Clamp clamp, int threads) {
  std::vector<float> packed_a(gemm_packed_a_size(M, K, cfg.mr));
  gemm_pack_a(a, K, M, K, cfg.mr, packed_a.data());
  const int nr = cfg.nr;
  // B^T panels: element (k, j) = b[j * K + k]; each row of b is read contiguously.
  auto pack_bt = [&](index_t k0, index_t kc, index_t n0, index_t ncols, float* dst) {
    for (index_t j = 0; j < ceil_div(ncols, nr) * nr; ++j) {
      float* d = dst + (j / nr) * kc * nr + j % nr;
      if (j < ncols) {
        const float* src = b + (n0 + j) * K + k0;
        for (index_t kk = 0; kk < kc; ++kk) d[kk * nr] = src[kk];
      } else {
        for (index_t kk = 0; kk < kc; ++kk) d[kk * nr] = 0.0f;
      }
    }
  };
  const std::vector<GemmTask> tasks = gemm_tasks(M, N, cfg, 1, threads, 256);
  index_t max_cols = 0;
  for (const GemmTask& task : tasks) max_cols = std::max(max_cols, task.j1 - task.j0);
  const index_t buf_size = kGemmKC * ceil_div(max_cols, nr) * nr;
  const index_t ntasks = static_cast<index_t>(tasks.size());
#pragma omp parallel num_threads(std::min<index_t>(threads, ntasks))
  {
    std::vector<float> bbuf(buf_size);
#pragma omp for schedule(dynamic, 1)
    for (index_t t = 0; t < ntasks; ++t) {
      const GemmTask& task = tasks[t];
      gemm_block(cfg, M, K, packed_a.data(), pack_bt, task.j0, task.j1, task.mp0, task.mp1, c, N, nullptr,
                 bias_col, clamp, bbuf.data());
    }
  }
}

}  // namespace convcore
