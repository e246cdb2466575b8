// The CPU kernels every path shares: the compiled Plan's ops (csrc/plan) and the eager NCHW entry points (csrc/ops)
// call them. Channels-last (NHWC) activations, weights packed once (pack.h), a fused epilogue.
//
// Every kernel exists three times with one signature: the AVX-512 and AVX2 instantiations of kernels_simd.inc and the
// plain reference loops of kernels_ref.cpp (CONVCORE_ISA=scalar, and the oracle the fast ones are tested against).
// A kernel computes one task (a range of output pixels, rows or channel blocks); callers split their work into tasks
// and hand them to threads.
//
// Tensors are NHWC with a pixel stride: element (pixel p, channel c) lies at base[p * stride + c], pixels counted
// over the whole batch (p = (n * H + h) * W + w). A stride wider than the channel count is how a tensor lives inside
// a slice of a concatenation buffer; 2-D tensors (N, F) are the case H = W = 1.
#pragma once
#include <vector>

#include "core/aligned.h"
#include "core/common.h"
#include "core/cpu.h"
#include "kernels/elementwise.h"

namespace convcore {

// Convolution geometry (the input C counts all channels; a group reads Cg of them and writes Kg outputs).
struct ConvGeom {
  index_t N, H, W, C;
  index_t OH, OW, K;
  index_t R, S, sh, sw, dh, dw, pt, pl;
  index_t groups, Cg, Kg;
  index_t taps() const { return R * S; }
  index_t pixels() const { return N * OH * OW; }
};

// Weights of a dense or grouped convolution packed for the register tile: for each (group, block of NR output
// channels) a panel [tap][Cg][NR], zero-filled past the group's Kg channels, and the bias padded the same way.
struct ConvTile {
  int mr = 0, nv = 0, nr = 0;  // tile: mr pixels x nv vectors (nr = nv * lanes channels)
  index_t blocks_per_group = 0;
  index_t panel = 0;  // floats per panel: taps * Cg * nr
};

struct ConvWeights {  // what a kernel reads: the tile and the packed arrays (owned elsewhere)
  ConvTile t;
  const float* w;
  const float* bias;
};

struct ConvPacked {
  ConvTile t;
  AlignedVector w, bias;
  ConvWeights view() const { return {t, w.data(), bias.data()}; }
};

struct ConvIO {
  const float* x;
  index_t xs;
  float* y;
  index_t ys;
  const float* res;  // residual added before the activation (same shape as y), or null
  index_t rs;
  const float* zero;  // at least C zeros: where a tap falls in the padding
  const float* mask = nullptr;  // the epilogue's mask (same shape as y), or null
  index_t ms = 0;
};

struct PoolGeom {
  index_t N, H, W, C, OH, OW;
  index_t kh, kw, sh, sw, dh, dw, pt, pb, pl, pr;
  bool is_max, count_include_pad;
};

// Elementwise binary op over NHWC with numpy broadcasting: each operand has a stride per axis (0 where broadcast);
// the channel stride is 0 or 1.
struct BinaryGeom {
  index_t N, H, W, C;
  index_t a_s[4], b_s[4];  // element strides of a and b for n, h, w, c
  index_t ys;              // pixel stride of y
};

// Winograd F(4x4, 3x3) for 3x3 stride-1 convolutions: 4x4 output tiles from 6x6 input patches. The transformed input
// V[tile][xi][C] and the products M[tile][xi][K] (xi: the 36 transform positions, tiles counted over the batch) are
// tensors of tiles x (36 * channels), so the 36 products are one grouped 1x1 convolution with 36 groups.
struct WinoGeom {
  index_t N, H, W, C, K, OH, OW, pt, pl, tiles_h, tiles_w;
  index_t tiles() const { return N * tiles_h * tiles_w; }
};

struct Kernels {
  const char* isa;
  int lanes;
  // Tile shape for a convolution with Kg output channels per group: fills mr / nv / nr.
  void (*conv_tile)(index_t Kg, index_t Cg, index_t taps, ConvTile& t);
  // Output pixels [p0, p1) x packed blocks [b0, b1) (block b = group b / blocks_per_group).
  void (*conv)(const ConvGeom& g, const ConvWeights& p, const ConvIO& io, const Epilogue& e, index_t p0, index_t p1,
               index_t b0, index_t b1);
  // The NCHW orientation of the same micro-kernel, for the eager NCHW convolutions: C[m x n] (+)= A[m x kd] B[kd x n]
  // + bias[row], A rows at a + i * lda (weights as stored), B row k read in place at b + boff[k] (a tap's run of
  // pixels), C rows at c + i * ldc; accumulate adds to C (a product split along kd).
  void (*gemm_rows)(index_t kd, const float* a, index_t lda, const float* bias, const float* b, const index_t* boff,
                    float* c, index_t ldc, index_t m, index_t n, bool accumulate);
  // y[i * ldy + j] = bias[j] + <x row i, w row j> for i < m (at most 4) and rows j in [n0, n1) of w (K floats
  // each, as stored): the few-row fully connected layer, a memory-bound pass over the weights.
  void (*dot_rows)(index_t K, const float* x, index_t m, const float* w, index_t n0, index_t n1, const float* bias,
                   float* y, index_t ldy);
  // The eager depthwise convolution over one NCHW plane: c (rows x cols, contiguous) = bias + sum_k w[k] * the plane
  // at b + row * row_step + boff[k] + col (a zero-padded copy: tap k's run of pixels for output row `row`).
  void (*dw_plane)(index_t taps, const float* w, float bias, const float* b, index_t row_step, const index_t* boff,
                   float* c, index_t rows, index_t cols);
  // Depthwise (groups == C == K): weights [tap][Cpad], bias [Cpad]; output rows [r0, r1) of N * OH.
  void (*dwconv)(const ConvGeom& g, const float* w, const float* bias, const ConvIO& io, const Epilogue& e,
                 index_t r0, index_t r1);
  // Max / average pooling, output rows [r0, r1) of N * OH.
  void (*pool)(const PoolGeom& g, const float* x, index_t xs, float* y, index_t ys, index_t r0, index_t r1);
  // Global average / max over H * W pixels for images [n0, n1): y[n * ys + c].
  void (*global_pool)(index_t HW, index_t C, bool is_max, const float* x, index_t xs, float* y, index_t ys,
                      index_t n0, index_t n1);
  // y = act(x * scale[c] + shift[c]) for pixels [p0, p1) (scale / shift may be null: 1 / 0).
  void (*affine)(index_t C, const float* x, index_t xs, float* y, index_t ys, const float* scale, const float* shift,
                 const Epilogue& e, index_t p0, index_t p1);
  // y = act((x - mean) / sqrt(var + eps) * scale[c] + shift[c]) for pixels [p0, p1), mean and biased variance over
  // each pixel's C channels (a layer norm over the last axis of a channels-last value; scale / shift may be null).
  void (*layer_norm)(index_t C, const float* x, index_t xs, float* y, index_t ys, const float* scale,
                     const float* shift, float eps, const Epilogue& e, index_t p0, index_t p1);
  // y = softmax (or log-softmax) over each pixel's C channels, pixels [p0, p1).
  void (*softmax)(index_t C, const float* x, index_t xs, float* y, index_t ys, bool log, index_t p0, index_t p1);
  // y = act(a op b), output rows [r0, r1) of N * H.
  void (*binary)(const BinaryGeom& g, BinaryOp op, const float* a, const float* b, float* y, const Epilogue& e,
                 index_t r0, index_t r1);
  // y[i] = sum_t w[t] * x[index[t] * step + i] for i < n: a weighted sum of `taps` rows of one source (the
  // interpolation taps of a resize, along either axis).
  void (*weighted_rows)(index_t n, index_t taps, const float* x, const index_t* index, index_t step, const float* w,
                        float* y);
  // V <- B^T d B for tiles [t0, t1).
  void (*wino_input)(const WinoGeom& g, const float* x, index_t xs, float* V, index_t t0, index_t t1);
  // y <- act(A^T M A + bias [+ residual]) [masked] for tiles [t0, t1).
  void (*wino_output)(const WinoGeom& g, const float* M, const float* bias, float* y, index_t ys, const float* res,
                      index_t rs, const float* mask, index_t ms, const Epilogue& e, index_t t0, index_t t1);
  // For pixels [p0, p1): out[p] = max over channels of |x[p * xs + c]|, NaN where any of them is not finite (the
  // Winograd guard: which tiles a non-finite or outsized value would spread through).
  void (*channel_absmax)(const float* x, index_t xs, index_t C, float* out, index_t p0, index_t p1);
  // Contiguous y[i] = act(x[i]).
  void (*activation)(const Epilogue& e, const float* x, float* y, index_t n);
  // Contiguous dx[i] = dy[i] * act'(v[i]), v the activation's input or output as act_grad_from(e.act) says (the
  // epilogue's alpha / beta are its parameters). dx may alias dy.
  void (*act_grad)(const Epilogue& e, const float* v, const float* dy, float* dx, index_t n);
  // Layout at the edges of channels-last code: pixels [p0, p1) of one image, C channel planes of HW pixels (NCHW)
  // <-> pixel rows with stride ds / ss (NHWC).
  void (*nchw_to_nhwc)(const float* src, index_t C, index_t HW, float* dst, index_t ds, index_t p0, index_t p1);
  void (*nhwc_to_nchw)(const float* src, index_t ss, index_t C, index_t HW, float* dst, index_t p0, index_t p1);
};

const Kernels& kernels_for(Isa isa);

namespace avx512 {
extern const Kernels kKernels;
}
namespace avx2 {
extern const Kernels kKernels;
}
namespace ref {
extern const Kernels kKernels;
}

// The epilogue's mask for one value (the reference kernels'): v where mask_lo < *mask < mask_hi, else 0 (no mask: v).
inline float masked(float v, const float* mask, const Epilogue& e) {
  return mask == nullptr || (e.mask_lo < *mask && *mask < e.mask_hi) ? v : 0.0f;
}

// Pointer to the input of tap (r, s) for output pixel p, or `zero` in the padding; the IGEMM kernels fill an
// indirection list of these per tile.
inline const float* conv_tap_ptr(const ConvGeom& g, const ConvIO& io, index_t n, index_t oh, index_t ow, index_t r,
                                 index_t s, index_t c0) {
  const index_t ih = oh * g.sh - g.pt + r * g.dh, iw = ow * g.sw - g.pl + s * g.dw;
  if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) return io.zero;
  return io.x + ((n * g.H + ih) * g.W + iw) * io.xs + c0;
}

}  // namespace convcore
