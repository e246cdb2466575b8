// Packed GEMM: C (M x N) = A (M x K) * B (K x N) [+ bias] [clamped], the engine under conv2d and linear.
//
// A is read where it lies (row-major, e.g. the weights as the user passed them: nothing is repacked per call); B is
// packed on the fly by a caller-supplied packer into column panels of NR columns (KC x NR each), so a convolution
// never materialises its im2col matrix, or read in place (the direct convolution). The micro-kernel keeps an MR x NR
// tile of C in registers and applies the epilogue before its one store.
#pragma once
#include <vector>

#include "core/common.h"
#include "core/cpu.h"

namespace convcore {

// Micro-kernel: C[m_valid x n_valid] = (accumulate ? C : 0) + A(m_valid x kc, row stride lda) * B(kc x NR); when `last`, add
// bias_row[i] (per row) and/or bias_col[j] (per column) where non-null, then clamp. Stores only the valid part.
// B is a packed panel (row k at b + k * NR) when boff is null; otherwise row k is read in place at b + boff[k] (the
// "direct" convolution: each tap a shifted view of the input), loading only the n_valid columns that exist.
using GemmUkernel = void (*)(index_t kc, const float* a, index_t lda, const float* b, const index_t* boff, float* c,
                             index_t ldc,
                             int m_valid, int n_valid, bool accumulate, bool last, const float* bias_row,
                             const float* bias_col, Clamp clamp);

struct GemmConfig {
  int mr;
  int nr;
  GemmUkernel ukernel;
  const char* name;
};

// The micro-kernel of an ISA; nullptr for Isa::scalar (its callers use their plain reference kernels instead).
const GemmConfig* gemm_config(Isa isa);

constexpr index_t kGemmKC = 256;  // K block: an A panel (MR x KC) stays in L1 while B panels stream from L2

// One block of C: columns [j0, j1), row panels [mp0, mp1). panels_b(k0, kc) returns B rows [k0, k0+kc) of columns
// [j0, j1) as ceil((j1-j0)/NR) consecutive panels of kc x NR (row stride NR), the last zero-filled past j1: packed
// on the fly into a task's buffer, or found in a buffer packed once for all tasks.
//
// A packer pack(k0, kc, n0, ncols, dst) writes B rows [k0, k0+kc) x columns [n0, n0+ncols) in that panel format.
template <class PanelsB>
void gemm_block(const GemmConfig& cfg, index_t M, index_t K, const float* a, index_t lda, const PanelsB& panels_b,
                index_t j0, index_t j1, index_t mp0, index_t mp1, float* c, index_t ldc, const float* bias_row,
                const float* bias_col, Clamp clamp) {
  const int mr = cfg.mr, nr = cfg.nr;
  const index_t npanels = ceil_div(j1 - j0, nr);
  for (index_t k0 = 0; k0 < K; k0 += kGemmKC) {
    const index_t kc = K - k0 < kGemmKC ? K - k0 : kGemmKC;
    const float* bbuf = panels_b(k0, kc);
    const bool accumulate = k0 > 0, last = k0 + kc == K;
    for (index_t mp = mp0; mp < mp1; ++mp) {
      const index_t m0 = mp * mr;
      const int m_valid = static_cast<int>(M - m0 < mr ? M - m0 : mr);
      for (index_t p = 0; p < npanels; ++p) {
        const index_t n0 = j0 + p * nr;
        const int n_valid = static_cast<int>(j1 - n0 < nr ? j1 - n0 : nr);
        cfg.ukernel(kc, a + m0 * lda + k0, lda, bbuf + p * kc * nr, nullptr, c + m0 * ldc + n0, ldc, m_valid, n_valid,
                    accumulate, last,
                    bias_row ? bias_row + m0 : nullptr, bias_col ? bias_col + n0 : nullptr, clamp);
      }
    }
  }
}

// Splits an M x N product into tasks (column block, row-panel range) so that `threads` threads stay busy: column
// blocks of at most max_nc columns first, then row panels when there are too few column blocks.
struct GemmTask {
  index_t j0, j1, mp0, mp1;
};
std::vector<GemmTask> gemm_tasks(index_t M, index_t N, const GemmConfig& cfg, index_t independent_problems,
                                 int threads, index_t max_nc = 512);

// C = A * B^T + bias_col, with A (M x K) and B (N x K) row-major: the fully-connected layer (y = x W^T + b).
void gemm_abt(const GemmConfig& cfg, index_t M, index_t N, index_t K, const float* a, const float* b,
              const float* bias_col, float* c, Clamp clamp, int threads);

}  // namespace convcore
