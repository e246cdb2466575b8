// The CUDA backend's kernels, as host functions that launch them on a stream (csrc/cuda/conv.cu, ops.cu). The GPU
// Plan (plan_ops.cpp) fills these argument structs from its tensors and calls them; nothing here allocates.
//
// Tensors are NHWC with a pixel stride, as in the CPU Plan (csrc/plan/core.h): element (pixel p, channel c) lies
// at base[p * stride + c], pixels counted over the whole batch (p = (n * H + h) * W + w); a stride wider than the
// channel count is a tensor living in a channel slice of a concatenation buffer.
#pragma once
#include "cuda/runtime.h"
#include "kernels/elementwise.h"

namespace convcore::cuda {

// Arithmetic of the dense and grouped convolutions: fp32 (CUDA cores, exact fp32 products), TF32 or bf16 (tensor
// cores: inputs rounded to 10 / 7 mantissa bits, products accumulated in fp32).
enum class Precision : int { fp32 = 0, tf32 = 1, bf16 = 2 };

// y = act(conv(x, w) + bias [+ res]). w is packed [group][(r * S + s) * Cg + c][Kg] (packed_conv_weights).
struct ConvArgs {
  const float* x;
  index_t xs;
  float* y;
  index_t ys;
  const float* res;  // or null
  index_t rs;
  const float* w;
  const float* bias;  // [K] or null
  index_t N, H, W, C, OH, OW, K, R, S, sh, sw, dh, dw, pt, pl, groups, Cg, Kg;
  Epilogue e;
};

// How a convolution runs for one batch size: the kernel, and into how many slices its reduction is split (split-K:
// partial sums in a workspace, then a reduction that applies the epilogue) when its output tiles alone cannot fill
// the GPU.
struct ConvLaunch {
  int kernel = 0;      // ConvKernel
  int splits = 1;
  int k_tiles_per_split = 0;
  index_t workspace_floats = 0;
  const char* name = "";
};

ConvLaunch plan_conv_launch(const ConvArgs& a, Precision p, int sms);
void launch_conv(const ConvArgs& a, const ConvLaunch& l, float* workspace, cudaStream_t s);

// Depthwise (groups == C == K): w is [tap][C].
struct DwArgs {
  const float* x;
  index_t xs;
  float* y;
  index_t ys;
  const float* res;
  index_t rs;
  const float* w;
  const float* bias;  // [C] or null
  index_t N, H, W, C, OH, OW, R, S, sh, sw, dh, dw, pt, pl;
  Epilogue e;
};
void launch_dwconv(const DwArgs& a, cudaStream_t s);

struct PoolArgs {
  const float* x;
  index_t xs;
  float* y;
  index_t ys;
  index_t N, H, W, C, OH, OW, kh, kw, sh, sw, dh, dw, pt, pb, pl, pr;
  bool is_max, count_include_pad;
};
void launch_pool(const PoolArgs& a, cudaStream_t s);
// Over H * W pixels per image: y[n * ys + c].
void launch_global_pool(const float* x, index_t xs, float* y, index_t ys, index_t N, index_t HW, index_t C,
                        bool is_max, cudaStream_t s);
// torch's adaptive windows [floor(i * H / OH), ceil((i + 1) * H / OH)).
void launch_adaptive_pool(const float* x, index_t xs, float* y, index_t ys, index_t N, index_t H, index_t W,
                          index_t C, index_t OH, index_t OW, bool is_max, cudaStream_t s);

// y = act(x * scale[c] + shift[c]) over `pixels` pixels (scale / shift may be null: 1 / 0).
void launch_affine(const float* x, index_t xs, float* y, index_t ys, index_t pixels, index_t C, const float* scale,
                   const float* shift, const Epilogue& e, cudaStream_t s);

// y = act(a op b) with numpy broadcasting: per-operand element strides for n, h, w, c (0 where broadcast).
struct BinaryArgs {
  const float* a;
  const float* b;
  float* y;
  index_t N, H, W, C;
  index_t as[4], bs[4];
  index_t ys;
  BinaryOp op;
  Epilogue e;
};
void launch_binary(const BinaryArgs& a, cudaStream_t s);

// y[p * ys + c] = x[p * xs + c] for c < C (y already points at the destination's channel offset).
void launch_copy_channels(const float* x, index_t xs, float* y, index_t ys, index_t pixels, index_t C, cudaStream_t s);
// y[p * ys + c] = x[p * xs + index[c]] for c < C (index on the device).
void launch_gather_channels(const float* x, index_t xs, float* y, index_t ys, index_t pixels, index_t C,
                            const index_t* index, cudaStream_t s);
void launch_softmax(const float* x, index_t xs, float* y, index_t ys, index_t pixels, index_t C, bool log,
                    cudaStream_t s);
// y = act((x - mean) / sqrt(var + eps) * scale[c] + shift[c]) over each pixel's C channels (scale / shift may be null).
void launch_layer_norm(const float* x, index_t xs, float* y, index_t ys, index_t pixels, index_t C, const float* scale,
                       const float* shift, float eps, const Epilogue& e, cudaStream_t s);
void launch_lrn(const float* x, index_t xs, float* y, index_t ys, index_t pixels, index_t C, index_t size, float alpha,
                float beta, float k, cudaStream_t s);
// A separable resize (plan/builder.h step::Resample): the tables on the device, x / y with pixel and image strides.
struct ResampleArgs {
  const float* x;
  index_t xs, ximage;
  float* y;
  index_t ys, yimage;
  index_t N, H, W, C, OH, OW, taps_h, taps_w;
  const index_t* index_h;
  const float* weight_h;
  const index_t* index_w;
  const float* weight_w;
  float fill;
};
void launch_resample(const ResampleArgs& a, cudaStream_t s);
// NHWC (pixel stride xs) -> one row of C * H * W per image in NCHW order.
void launch_flatten_nchw(const float* x, index_t xs, float* y, index_t N, index_t H, index_t W, index_t C,
                         cudaStream_t s);
// A caller's contiguous NCHW batch -> the plan's NHWC tensor, and back (nchw false: (N, H * W * C) as stored).
void launch_nchw_to_nhwc(const float* src, float* y, index_t ys, index_t N, index_t C, index_t H, index_t W,
                         cudaStream_t s);
void launch_nhwc_to_output(const float* x, index_t xs, float* dst, index_t N, index_t C, index_t H, index_t W,
                           bool nchw, cudaStream_t s);

}  // namespace convcore::cuda
