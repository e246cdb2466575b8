// Dense and grouped convolution as an implicit GEMM over NHWC tensors: M = output pixels (over the batch), N = the
// group's output channels, K = R * S * Cg (tap-major, channels fastest, so one tap's K slice is a contiguous run of
// input channels). The A tile is gathered straight from the input (padding taps read as zero: no im2col buffer),
// the B tile from weights packed [group][k][Kg] at compile time. The epilogue adds the bias and the residual and
// applies the activation before the one store, exactly as the CPU Plan's kernels do.
//
// Two families of kernels:
//  - conv_simt: fp32 on the CUDA cores. A block computes a BM x BN tile with (BM / TM) x (BN / TN) threads, each a
//    TM x TN register tile; BK-deep slices of A and B are double-buffered in shared memory, the next slice loaded
//    into registers while the current one is multiplied.
//  - conv_wmma: TF32 or bf16 on the tensor cores (wmma fragments, fp32 accumulators): a 128 x 64 tile, 8 warps of
//    32 x 32; the accumulators go through shared memory to the same epilogue.
// When the output tiles alone cannot fill the GPU (late layers, small batches), the K loop is split over several
// blocks writing fp32 partial sums to a workspace, and conv_splitk_reduce sums them in a fixed order (the result is
// deterministic) and applies the epilogue.
#include <algorithm>

#include "cuda/device.cuh"

#ifndef CONVCORE_CUDA_EMULATE
#include <cuda_bf16.h>
#include <mma.h>
#endif

namespace convcore::cuda {
namespace {

namespace wmma = nvcuda::wmma;

enum ConvKernel : int {
  kSimt128x64 = 0,  // large outputs
  kSimt64x64,       // fewer pixels
  kSimt64x16,       // few output channels per group (grouped convolutions)
  kTf32,
  kBf16,
  kNumKernels
};
constexpr const char* kKernelNames[kNumKernels] = {"cuda_conv_f32_128x64", "cuda_conv_f32_64x64",
                                                   "cuda_conv_f32_64x16", "cuda_conv_tf32_128x64",
                                                   "cuda_conv_bf16_128x64"};
constexpr int kBK = 16;  // K slice per step, every kernel

// Block-uniform facts of one block's work: its group, its pixel and channel tile, its K tiles.
struct BlockWork {
  int group;
  index_t m0, n0;
  index_t kred;  // R * S * Cg
  index_t kt0, kt1;
  int split;
};

__device__ __forceinline__ BlockWork block_work(const ConvArgs& a, int BM, int BN, int kt_per_split) {
  BlockWork b;
  b.group = static_cast<int>(blockIdx.z % a.groups);
  b.split = static_cast<int>(blockIdx.z / a.groups);
  b.m0 = static_cast<index_t>(blockIdx.x) * BM;
  b.n0 = static_cast<index_t>(blockIdx.y) * BN;
  b.kred = a.R * a.S * a.Cg;
  const index_t ktiles = (b.kred + kBK - 1) / kBK;
  b.kt0 = static_cast<index_t>(b.split) * kt_per_split;
  b.kt1 = b.kt0 + kt_per_split < ktiles ? b.kt0 + kt_per_split : ktiles;
  return b;
}

// Where the receptive field of one output pixel (a row of A) starts: the element offset of its image's first pixel at
// the group's first channel (PW: of the pixel itself) and its top-left input coordinates. A row past the last pixel
// gets ih0 far below zero, so that every tap of it reads as padding. One table per block, in shared memory (in
// registers it would cost each thread ~40 of them).
struct ARow {
  index_t offset;
  int ih0, iw0;
};
constexpr int kNoRow = -(1 << 29);

template <int BM, int NT, bool PW>
__device__ __forceinline__ void init_rows(ARow* rows, const ConvArgs& a, const BlockWork& b) {
  const index_t P = a.N * a.OH * a.OW, hw = a.OH * a.OW;
  for (int r = static_cast<int>(threadIdx.x); r < BM; r += NT) {
    const index_t m = b.m0 + r;
    ARow row{0, kNoRow, 0};
    if (m < P) {
      if (PW) {
        row = ARow{m * a.xs + b.group * a.Cg, 0, 0};
      } else {
        const index_t n = m / hw, rem = m % hw, oh = rem / a.OW, ow = rem % a.OW;
        row = ARow{n * a.H * a.W * a.xs + b.group * a.Cg, static_cast<int>(oh * a.sh - a.pt),
                   static_cast<int>(ow * a.sw - a.pl)};
      }
    }
    rows[r] = row;
  }
}

// Loads this thread's A elements of K tile kt: column k = kt * BK + kcol of rows r0 + i * row_step (0 outside the
// input).
template <int ROWS, bool PW>
__device__ __forceinline__ void load_a(float (&v)[ROWS], const ARow* rows, const ConvArgs& a, const BlockWork& b,
                                       index_t kt, int kcol, int r0, int row_step) {
  const index_t k = kt * kBK + kcol;
  if (k >= b.kred) {
#pragma unroll
    for (int i = 0; i < ROWS; ++i) v[i] = 0.0f;
    return;
  }
  if (PW) {
#pragma unroll
    for (int i = 0; i < ROWS; ++i) {
      const ARow row = rows[r0 + i * row_step];
      v[i] = row.ih0 == 0 ? __ldg(a.x + row.offset + k) : 0.0f;
    }
    return;
  }
  // 32-bit division (a 64-bit one is a long software sequence on the GPU): K = R * S * Cg fits easily.
  const int k32 = static_cast<int>(k), cg = static_cast<int>(a.Cg), S = static_cast<int>(a.S);
  const int c = k32 % cg, tap = k32 / cg;
  const int dr = tap / S * static_cast<int>(a.dh), ds = tap % S * static_cast<int>(a.dw);
#pragma unroll
  for (int i = 0; i < ROWS; ++i) {
    const ARow row = rows[r0 + i * row_step];
    const int ih = row.ih0 + dr, iw = row.iw0 + ds;
    const bool in = ih >= 0 && ih < a.H && iw >= 0 && iw < a.W;
    v[i] = in ? __ldg(a.x + row.offset + (static_cast<index_t>(ih) * a.W + iw) * a.xs + c) : 0.0f;
  }
}

// Loads this thread's B elements of K tile kt: rows krow + j * row_step, column n0 + ncol of the group's weights.
template <int COUNT>
__device__ __forceinline__ void load_b(float (&v)[COUNT], const ConvArgs& a, const BlockWork& b, index_t kt,
                                       int krow, int row_step, int ncol) {
  const index_t col = b.n0 + ncol;
  const float* w = a.w + static_cast<index_t>(b.group) * b.kred * a.Kg;
#pragma unroll
  for (int j = 0; j < COUNT; ++j) {
    const index_t k = kt * kBK + krow + j * row_step;
    v[j] = k < b.kred && col < a.Kg ? __ldg(w + k * a.Kg + col) : 0.0f;
  }
}

// The epilogue of one output element, or its partial sum when the K loop is split.
__device__ __forceinline__ void store_output(const ConvArgs& a, const BlockWork& b, float* ws, index_t m, index_t col,
                                             float acc) {
  const index_t P = a.N * a.OH * a.OW;
  if (m >= P || col >= a.Kg) return;
  if (ws != nullptr) {
    ws[((static_cast<index_t>(b.split) * a.groups + b.group) * P + m) * a.Kg + col] = acc;
    return;
  }
  const index_t oc = b.group * a.Kg + col;
  float v = acc;
  if (a.bias != nullptr) v += __ldg(a.bias + oc);
  if (a.res != nullptr) v += __ldg(a.res + m * a.rs + oc);
  a.y[m * a.ys + oc] = activate(v, a.e);
}

// ------------------------------------------------------------------------------------------------ fp32 (SIMT)
template <int BM, int BN, int TM, int TN, bool PW>
__global__ void __launch_bounds__((BM / TM) * (BN / TN))
    conv_simt(ConvArgs a, int kt_per_split, float* ws) {
  constexpr int NT = (BM / TM) * (BN / TN);
  constexpr int A_ROW_STEP = NT / kBK, A_LOADS = BM / A_ROW_STEP;  // thread: column tid % BK, rows tid / BK + i * step
  constexpr int B_ROW_STEP = NT / BN, B_LOADS = kBK / B_ROW_STEP;  // thread: column tid % BN, rows tid / BN + j * step
  static_assert(NT % kBK == 0 && BM % A_ROW_STEP == 0 && NT % BN == 0 && kBK % B_ROW_STEP == 0, "tile shape");
  static_assert(TM % 4 == 0 && (TN % 4 == 0 || TN == 1), "register tile");
  struct alignas(16) Smem {
    float a[2][kBK][BM + 4];  // A transposed: a K row holds BM pixels
    float b[2][kBK][BN + 4];
    ARow rows[BM];
  };
  __shared__ Smem sm;

  const int tid = static_cast<int>(threadIdx.x);
  const BlockWork blk = block_work(a, BM, BN, kt_per_split);
  const int a_col = tid % kBK, a_row = tid / kBK;
  const int b_col = tid % BN, b_row = tid / BN;
  const int tx = tid % (BN / TN), ty = tid / (BN / TN);

  init_rows<BM, NT, PW>(sm.rows, a, blk);
  __syncthreads();
  float av[A_LOADS], bv[B_LOADS];
  float acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;

  if (blk.kt0 < blk.kt1) {
    load_a<A_LOADS, PW>(av, sm.rows, a, blk, blk.kt0, a_col, a_row, A_ROW_STEP);
    load_b<B_LOADS>(bv, a, blk, blk.kt0, b_row, B_ROW_STEP, b_col);
#pragma unroll
    for (int i = 0; i < A_LOADS; ++i) sm.a[0][a_col][a_row + i * A_ROW_STEP] = av[i];
#pragma unroll
    for (int j = 0; j < B_LOADS; ++j) sm.b[0][b_row + j * B_ROW_STEP][b_col] = bv[j];
  }
  __syncthreads();
  for (index_t kt = blk.kt0; kt < blk.kt1; ++kt) {
    const int buf = static_cast<int>((kt - blk.kt0) & 1);
    const bool more = kt + 1 < blk.kt1;
    if (more) {  // the next slice's loads are in flight while this one is multiplied
      load_a<A_LOADS, PW>(av, sm.rows, a, blk, kt + 1, a_col, a_row, A_ROW_STEP);
      load_b<B_LOADS>(bv, a, blk, kt + 1, b_row, B_ROW_STEP, b_col);
    }
#pragma unroll
    for (int k = 0; k < kBK; ++k) {
      float ar[TM], br[TN];
#pragma unroll
      for (int i = 0; i < TM; i += 4) {
        const float4 t = *reinterpret_cast<const float4*>(&sm.a[buf][k][ty * TM + i]);
        ar[i] = t.x, ar[i + 1] = t.y, ar[i + 2] = t.z, ar[i + 3] = t.w;
      }
      if constexpr (TN == 1) {
        br[0] = sm.b[buf][k][tx];
      } else {
#pragma unroll
        for (int j = 0; j < TN; j += 4) {
          const float4 t = *reinterpret_cast<const float4*>(&sm.b[buf][k][tx * TN + j]);
          br[j] = t.x, br[j + 1] = t.y, br[j + 2] = t.z, br[j + 3] = t.w;
        }
      }
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(ar[i], br[j], acc[i][j]);
    }
    if (more) {  // the other buffer: nobody reads it in this step (its last readers passed the barrier before)
#pragma unroll
      for (int i = 0; i < A_LOADS; ++i) sm.a[buf ^ 1][a_col][a_row + i * A_ROW_STEP] = av[i];
#pragma unroll
      for (int j = 0; j < B_LOADS; ++j) sm.b[buf ^ 1][b_row + j * B_ROW_STEP][b_col] = bv[j];
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j)
      store_output(a, blk, ws, blk.m0 + ty * TM + i, blk.n0 + tx * TN + j, acc[i][j]);
}

// ----------------------------------------------------------------------------------------- TF32 / bf16 (wmma)
struct Tf32 {
  using Smem = float;                  // shared-memory element
  using Frag = wmma::precision::tf32;  // fragment type
  static constexpr int KS = 8;         // K per mma
  static constexpr int PAD = 4;        // row padding (elements): rows stay 16-byte multiples, banks shift
  static __device__ __forceinline__ float to_smem(float v) { return wmma::__float_to_tf32(v); }
};
struct Bf16 {
  using Smem = __nv_bfloat16;
  using Frag = __nv_bfloat16;
  static constexpr int KS = 16;
  static constexpr int PAD = 8;
  static __device__ __forceinline__ __nv_bfloat16 to_smem(float v) { return __float2bfloat16(v); }
};

template <class TC, bool PW>
__global__ void __launch_bounds__(256) conv_wmma(ConvArgs a, int kt_per_split, float* ws) {
  constexpr int BM = 128, BN = 64, NT = 256;
  constexpr int A_ROW_STEP = NT / kBK, A_LOADS = BM / A_ROW_STEP;
  constexpr int B_ROW_STEP = NT / BN, B_LOADS = kBK / B_ROW_STEP;
  constexpr int LDA = kBK + TC::PAD, LDB = BN + TC::PAD, LDC = BN + 4;
  using T = typename TC::Smem;
  struct alignas(128) Smem {
    union {
      struct {
        T a[BM][LDA];  // A row-major (pixel rows, K contiguous): the matrix_a layout
        T b[kBK][LDB];
      } in;
      float c[BM][LDC];  // the accumulators, for the epilogue
    };
    ARow rows[BM];
  };
  __shared__ Smem sm;

  const int tid = static_cast<int>(threadIdx.x), warp = tid / 32;
  const int wm = warp / 2, wn = warp % 2;  // the warp's 32 x 32 sub-tile
  const BlockWork blk = block_work(a, BM, BN, kt_per_split);
  const int a_col = tid % kBK, a_row = tid / kBK;
  const int b_col = tid % BN, b_row = tid / BN;

  init_rows<BM, NT, PW>(sm.rows, a, blk);
  __syncthreads();
  float av[A_LOADS], bv[B_LOADS];
  wmma::fragment<wmma::accumulator, 16, 16, TC::KS, float> acc[2][2];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.0f);

  if (blk.kt0 < blk.kt1) {
    load_a<A_LOADS, PW>(av, sm.rows, a, blk, blk.kt0, a_col, a_row, A_ROW_STEP);
    load_b<B_LOADS>(bv, a, blk, blk.kt0, b_row, B_ROW_STEP, b_col);
  }
  for (index_t kt = blk.kt0; kt < blk.kt1; ++kt) {
#pragma unroll
    for (int i = 0; i < A_LOADS; ++i) sm.in.a[a_row + i * A_ROW_STEP][a_col] = TC::to_smem(av[i]);
#pragma unroll
    for (int j = 0; j < B_LOADS; ++j) sm.in.b[b_row + j * B_ROW_STEP][b_col] = TC::to_smem(bv[j]);
    __syncthreads();
    if (kt + 1 < blk.kt1) {  // in flight during the mma
      load_a<A_LOADS, PW>(av, sm.rows, a, blk, kt + 1, a_col, a_row, A_ROW_STEP);
      load_b<B_LOADS>(bv, a, blk, kt + 1, b_row, B_ROW_STEP, b_col);
    }
#pragma unroll
    for (int ks = 0; ks < kBK; ks += TC::KS) {
      wmma::fragment<wmma::matrix_a, 16, 16, TC::KS, typename TC::Frag, wmma::row_major> fa[2];
      wmma::fragment<wmma::matrix_b, 16, 16, TC::KS, typename TC::Frag, wmma::row_major> fb[2];
#pragma unroll
      for (int i = 0; i < 2; ++i) wmma::load_matrix_sync(fa[i], &sm.in.a[wm * 32 + i * 16][ks], LDA);
#pragma unroll
      for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(fb[j], &sm.in.b[ks][wn * 32 + j * 16], LDB);
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
    __syncthreads();  // before the next step overwrites the tiles (or the epilogue reuses them)
  }
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j)
      wmma::store_matrix_sync(&sm.c[wm * 32 + i * 16][wn * 32 + j * 16], acc[i][j], LDC, wmma::mem_row_major);
  __syncthreads();
  for (int e = tid; e < BM * BN; e += NT) {  // consecutive threads: consecutive channels of one pixel
    const int r = e / BN, cc = e % BN;
    store_output(a, blk, ws, blk.m0 + r, blk.n0 + cc, sm.c[r][cc]);
  }
}

// ----------------------------------------------------------------------------------------------- split-K sum
__global__ void conv_splitk_reduce(ConvArgs a, int splits, const float* ws) {
  const index_t P = a.N * a.OH * a.OW, total = P * a.K;
  for (index_t i = grid_first(); i < total; i += grid_step()) {
    const index_t m = i / a.K, oc = i % a.K, g = oc / a.Kg, col = oc % a.Kg;
    float v = 0.0f;
    for (int s = 0; s < splits; ++s) v += ws[((static_cast<index_t>(s) * a.groups + g) * P + m) * a.Kg + col];
    if (a.bias != nullptr) v += a.bias[oc];
    if (a.res != nullptr) v += a.res[m * a.rs + oc];
    a.y[m * a.ys + oc] = activate(v, a.e);
  }
}

struct Tile {
  int bm, bn;
};
constexpr Tile kTiles[kNumKernels] = {{128, 64}, {64, 64}, {64, 16}, {128, 64}, {128, 64}};

bool pointwise(const ConvArgs& a) {
  return a.R == 1 && a.S == 1 && a.sh == 1 && a.sw == 1 && a.pt == 0 && a.pl == 0 && a.OH == a.H && a.OW == a.W;
}

template <bool PW>
void launch_kernel(int kernel, dim3 grid, const ConvArgs& a, int kt_per_split, float* ws, cudaStream_t s) {
  switch (kernel) {
    case kSimt128x64: {
      auto* k = &conv_simt<128, 64, 8, 4, PW>;
      CC_LAUNCH(k, grid, dim3(256), s, a, kt_per_split, ws);
      break;
    }
    case kSimt64x64: {
      auto* k = &conv_simt<64, 64, 4, 4, PW>;
      CC_LAUNCH(k, grid, dim3(256), s, a, kt_per_split, ws);
      break;
    }
    case kSimt64x16: {
      auto* k = &conv_simt<64, 16, 4, 1, PW>;
      CC_LAUNCH(k, grid, dim3(256), s, a, kt_per_split, ws);
      break;
    }
    case kTf32: {
      auto* k = &conv_wmma<Tf32, PW>;
      CC_LAUNCH(k, grid, dim3(256), s, a, kt_per_split, ws);
      break;
    }
    case kBf16: {
      auto* k = &conv_wmma<Bf16, PW>;
      CC_LAUNCH(k, grid, dim3(256), s, a, kt_per_split, ws);
      break;
    }
    default: throw std::logic_error("conv: unknown kernel");
  }
}

}  // namespace

ConvLaunch plan_conv_launch(const ConvArgs& a, Precision p, int sms) {
  const index_t P = a.N * a.OH * a.OW, kred = a.R * a.S * a.Cg, ktiles = (kred + kBK - 1) / kBK;
  ConvLaunch l;
  auto tiles = [&](int kernel) {
    return ((P + kTiles[kernel].bm - 1) / kTiles[kernel].bm) * ((a.Kg + kTiles[kernel].bn - 1) / kTiles[kernel].bn) *
           a.groups;
  };
  if (p != Precision::fp32 && a.Kg >= 16) {
    l.kernel = p == Precision::tf32 ? kTf32 : kBf16;
  } else if (a.Kg <= 16) {
    l.kernel = kSimt64x16;
  } else {
    // The 128 x 64 tile reuses each loaded value twice as often, but wastes more on a ragged last row of tiles
    // and makes fewer blocks: it pays when the output has enough pixels to fill the GPU with it.
    l.kernel = P >= 512 && tiles(kSimt128x64) >= sms ? kSimt128x64 : kSimt64x64;
  }
  // Split K when the tiles fill less than one wave of blocks and each slice keeps at least 4 K tiles.
  const index_t blocks = tiles(l.kernel);
  index_t splits = 1;
  if (blocks < sms && ktiles >= 8) {
    splits = std::min<index_t>({(2 * sms + blocks - 1) / blocks, ktiles / 4, 32, 65535 / a.groups});
    splits = std::max<index_t>(splits, 1);
  }
  const index_t per = (ktiles + splits - 1) / splits;
  l.k_tiles_per_split = static_cast<int>(std::max<index_t>(per, 1));
  l.splits = static_cast<int>(std::max<index_t>((ktiles + per - 1) / std::max<index_t>(per, 1), 1));
  l.workspace_floats = l.splits > 1 ? static_cast<index_t>(l.splits) * P * a.K : 0;
  l.name = kKernelNames[l.kernel];
  return l;
}

void launch_conv(const ConvArgs& a, const ConvLaunch& l, float* workspace, cudaStream_t s) {
  const index_t P = a.N * a.OH * a.OW;
  if (P == 0 || a.K == 0) return;
  const Tile t = kTiles[l.kernel];
  const index_t gx = (P + t.bm - 1) / t.bm, gy = (a.Kg + t.bn - 1) / t.bn, gz = a.groups * l.splits;
  if (gx > 2147483647 || gy > 65535 || gz > 65535)
    throw std::invalid_argument("conv: the output is too large for one launch");
  const dim3 grid(static_cast<unsigned>(gx), static_cast<unsigned>(gy), static_cast<unsigned>(gz));
  float* ws = l.splits > 1 ? workspace : nullptr;
  if (l.splits > 1 && ws == nullptr) throw std::logic_error("conv: split-K without a workspace");
  if (pointwise(a))
    launch_kernel<true>(l.kernel, grid, a, l.k_tiles_per_split, ws, s);
  else
    launch_kernel<false>(l.kernel, grid, a, l.k_tiles_per_split, ws, s);
  if (l.splits > 1) {
    auto* k = &conv_splitk_reduce;
    CC_LAUNCH(k, dim3(grid_blocks(P * a.K, 256)), dim3(256), s, a, l.splits, static_cast<const float*>(ws));
  }
}

}  // namespace convcore::cuda
