#include "ops/gemm/gemm.h"

#include <omp.h>

#include <algorithm>

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

std::vector<GemmTask> gemm_tasks(index_t M, index_t N, const GemmConfig& cfg, index_t independent_problems,
                                 int threads, index_t max_nc) {
  const index_t nr = cfg.nr, mpanels = ceil_div(M, cfg.mr), npanels = ceil_div(N, nr);
  // Column blocks of whole panels, as equal as possible: every task streams all of A, so a thin tail block would
  // cost nearly as much as a full one.
  index_t nblocks = ceil_div(npanels, std::max<index_t>(max_nc / nr, 1));
  const index_t want = threads > 1 ? 2 * static_cast<index_t>(threads) : 1;  // a couple of tasks per thread
  // More tasks: narrower column blocks while they keep >= 4 panels (each block re-reads all of A), then row ranges.
  if (independent_problems * nblocks < want)
    nblocks = std::max(nblocks, std::min(ceil_div(want, independent_problems), std::max<index_t>(npanels / 4, 1)));
  const index_t per_block = ceil_div(npanels, nblocks);
  nblocks = ceil_div(npanels, per_block);
  index_t msplit = 1;
  if (independent_problems * nblocks < want)
    msplit = std::min<index_t>(mpanels, ceil_div(want, independent_problems * nblocks));
  std::vector<GemmTask> tasks;
  for (index_t b = 0; b < nblocks; ++b)
    for (index_t s = 0; s < msplit; ++s)
      tasks.push_back({b * per_block * nr, std::min(N, (b + 1) * per_block * nr), mpanels * s / msplit,
                       mpanels * (s + 1) / msplit});
  return tasks;
}

void gemm_abt(const GemmConfig& cfg, index_t M, index_t N, index_t K, const float* a, const float* b,
              const float* bias_col, float* c, Clamp clamp, int threads) {
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
  const int team = static_cast<int>(std::min<index_t>(threads, ntasks));
  // Every thread's panel buffer, allocated here: an exception (std::bad_alloc) must not leave an OpenMP region.
  std::vector<float> bbufs(buf_size * team);
#pragma omp parallel num_threads(team)
  {
    float* const bbuf = bbufs.data() + buf_size * omp_get_thread_num();
#pragma omp for schedule(dynamic, 1)
    for (index_t t = 0; t < ntasks; ++t) {
      const GemmTask& task = tasks[t];
      auto panels = [&](index_t k0, index_t kc) {
        pack_bt(k0, kc, task.j0, task.j1 - task.j0, bbuf);
        return static_cast<const float*>(bbuf);
      };
      gemm_block(cfg, M, K, a, K, panels, task.j0, task.j1, task.mp0, task.mp1, c, N, nullptr, bias_col, clamp);
    }
  }
}

}  // namespace convcore
