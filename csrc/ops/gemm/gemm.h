// Packed GEMM: C (M x N) = A (M x K) * B (K x N) [+ bias] [clamped], the engine under conv2d and linear.
//
// A is packed once into row panels of MR rows (K x MR each, zero-padded past M); B is packed on the fly by a caller-
// supplied packer into column panels of NR columns (KC x NR each), so a convolution never materialises its im2col
// matrix. The micro-kernel keeps an MR x NR tile of C in registers and applies the epilogue before its one store.
#pragma once
#include <vector>

#include "core/common.h"
#include "core/cpu.h"

namespace convcore {

// Micro-kernel: C[m_valid x n_valid] = (accumulate ? C : 0) + A_panel(kc x MR) * B(kc x NR); when `last`, add
// bias_row[i] (per row) and/or bias_col[j] (per column) where non-null, then clamp. Stores only the valid part.
// B is a packed panel (row k at b + k * NR) when boff is null; otherwise row k is read in place at b + boff[k] (the
// "direct" convolution: each tap a shifted view of the input), loading only the n_valid columns that exist.
using GemmUkernel = void (*)(index_t kc, const float* a, const float* b, const index_t* boff, float* c, index_t ldc,
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

// Packs rows [0, m) of A (row-major, leading dimension lda) into ceil(m/mr) panels of k x mr, zero padded.
void gemm_pack_a(const float* a, index_t lda, index_t m, index_t k, int mr, float* out);
inline index_t gemm_packed_a_size(index_t m, index_t k, int mr) { return ceil_div(m, mr) * mr * k; }

// One block of C: columns [j0, j1), row panels [mp0, mp1). pack_b(k0, kc, n0, ncols, dst) must write B rows
// [k0, k0+kc) and columns [n0, n0+ncols) as ceil(ncols/NR) consecutive panels of kc x NR (row stride NR), zero-filling
// the last panel past ncols. bbuf holds kGemmKC * round_up(j1 - j0, NR) floats.
template <class PackB>
void gemm_block(const GemmConfig& cfg, index_t M, index_t K, const float* packed_a, const PackB& pack_b, index_t j0,
                index_t j1, index_t mp0, index_t mp1, float* c, index_t ldc, const float* bias_row,
                const float* bias_col, Clamp clamp, float* bbuf) {
  const int mr = cfg.mr, nr = cfg.nr;
  const index_t npanels = ceil_div(j1 - j0, nr);
  for (index_t k0 = 0; k0 < K; k0 += kGemmKC) {
    const index_t kc = K - k0 < kGemmKC ? K - k0 : kGemmKC;
    pack_b(k0, kc, j0, j1 - j0, bbuf);
    const bool accumulate = k0 > 0, last = k0 + kc == K;
    for (index_t mp = mp0; mp < mp1; ++mp) {
      const float* a = packed_a + mp * mr * K + k0 * mr;
      const index_t m0 = mp * mr;
      const int m_valid = static_cast<int>(M - m0 < mr ? M - m0 : mr);
      for (index_t p = 0; p < npanels; ++p) {
        const index_t n0 = j0 + p * nr;
        const int n_valid = static_cast<int>(j1 - n0 < nr ? j1 - n0 : nr);
        cfg.ukernel(kc, a, bbuf + p * kc * nr, nullptr, c + m0 * ldc + n0, ldc, m_valid, n_valid, accumulate, last,
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
