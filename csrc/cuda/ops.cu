// The CUDA backend's other kernels: depthwise convolution, pooling, per-channel scale-shift (folded batch norm) and
// activations, broadcasting binary ops, channel copies (concatenation), softmax, LRN and the layout conversions at a
// plan's edges. Each is a grid-stride loop over its outputs (any size fits any grid), channels fastest so that
// consecutive threads touch consecutive addresses of NHWC tensors. Reductions accumulate in double, as the CPU
// Plan's reference kernels do.
#include <algorithm>

#include "cuda/device.cuh"

namespace convcore::cuda {
namespace {

constexpr int kThreads = 256;

// max with NaN propagation: a NaN anywhere in the window makes the result NaN (torch's rule).
__device__ __forceinline__ float max_nan(float best, float v) { return is_nan(best) ? best : (v > best || is_nan(v) ? v : best); }
__device__ __forceinline__ double max_nan(double best, double v) {
  return best != best ? best : (v > best || v != v ? v : best);
}

// ------------------------------------------------------------------------------------------------- depthwise
__global__ void dwconv_kernel(DwArgs a) {
  const index_t total = a.N * a.OH * a.OW * a.C;
  for (index_t i = grid_first(); i < total; i += grid_step()) {
    const index_t c = i % a.C, p = i / a.C, ow = p % a.OW, t = p / a.OW, oh = t % a.OH, n = t / a.OH;
    float acc = a.bias != nullptr ? __ldg(a.bias + c) : 0.0f;
    const index_t ih0 = oh * a.sh - a.pt, iw0 = ow * a.sw - a.pl;
    const float* xn = a.x + n * a.H * a.W * a.xs + c;
    for (index_t r = 0; r < a.R; ++r) {
      const index_t ih = ih0 + r * a.dh;
      if (ih < 0 || ih >= a.H) continue;
      for (index_t s = 0; s < a.S; ++s) {
        const index_t iw = iw0 + s * a.dw;
        if (iw < 0 || iw >= a.W) continue;
        acc = fmaf(__ldg(xn + (ih * a.W + iw) * a.xs), __ldg(a.w + (r * a.S + s) * a.C + c), acc);
      }
    }
    if (a.res != nullptr) acc += __ldg(a.res + p * a.rs + c);
    a.y[p * a.ys + c] = activate(acc, a.e);
  }
}

// --------------------------------------------------------------------------------------------------- pooling
__global__ void pool_kernel(PoolArgs a) {
  const index_t total = a.N * a.OH * a.OW * a.C;
  for (index_t i = grid_first(); i < total; i += grid_step()) {
    const index_t c = i % a.C, p = i / a.C, ow = p % a.OW, t = p / a.OW, oh = t % a.OH, n = t / a.OH;
    const index_t h0 = oh * a.sh - a.pt, w0 = ow * a.sw - a.pl;
    const float* xn = a.x + n * a.H * a.W * a.xs + c;
    float out;
    if (a.is_max) {
      float best = -INFINITY;
      for (index_t r = 0; r < a.kh; ++r) {
        const index_t ih = h0 + r * a.dh;
        if (ih < 0 || ih >= a.H) continue;
        for (index_t s = 0; s < a.kw; ++s) {
          const index_t iw = w0 + s * a.dw;
          if (iw < 0 || iw >= a.W) continue;
          best = max_nan(best, __ldg(xn + (ih * a.W + iw) * a.xs));
        }
      }
      out = best;
    } else {  // torch's rules: the window is clipped to the padded input; count_include_pad counts the padding
      const index_t h1 = imin(h0 + a.kh, a.H + a.pb), w1 = imin(w0 + a.kw, a.W + a.pr);
      const index_t hs = imax(h0, 0), he = imin(h1, a.H), ws = imax(w0, 0), we = imin(w1, a.W);
      const index_t count = a.count_include_pad ? (h1 - h0) * (w1 - w0) : (he - hs) * (we - ws);
      double sum = 0.0;
      for (index_t ih = hs; ih < he; ++ih)
        for (index_t iw = ws; iw < we; ++iw) sum += __ldg(xn + (ih * a.W + iw) * a.xs);
      out = count > 0 ? static_cast<float>(sum / static_cast<double>(count)) : 0.0f;
    }
    a.y[p * a.ys + c] = out;
  }
}

// Block (32 channels, 16 pixel lanes) per (channel tile, image): each lane reduces every 16th pixel, then the block
// combines the 16 partial results in shared memory.
constexpr int kGpChannels = 32, kGpLanes = 16;

__global__ void global_pool_kernel(const float* x, index_t xs, float* y, index_t ys, index_t HW, index_t C,
                                   bool is_max) {
  __shared__ double part[kGpLanes][kGpChannels + 1];
  const int tx = static_cast<int>(threadIdx.x), ty = static_cast<int>(threadIdx.y);
  const index_t n = blockIdx.y;
  for (index_t c0 = static_cast<index_t>(blockIdx.x) * kGpChannels; c0 < C;
       c0 += static_cast<index_t>(gridDim.x) * kGpChannels) {  // uniform over the block: the barriers are safe
    const index_t c = c0 + tx;
    double acc = is_max ? -INFINITY : 0.0;
    if (c < C)
      for (index_t p = ty; p < HW; p += kGpLanes) {
        const double v = __ldg(x + (n * HW + p) * xs + c);
        acc = is_max ? max_nan(acc, v) : acc + v;
      }
    part[ty][tx] = acc;
    __syncthreads();
    if (ty == 0 && c < C) {
      double r = part[0][tx];
      for (int l = 1; l < kGpLanes; ++l) r = is_max ? max_nan(r, part[l][tx]) : r + part[l][tx];
      y[n * ys + c] = static_cast<float>(is_max ? r : r / static_cast<double>(HW));
    }
    __syncthreads();  // before the next channel tile reuses `part`
  }
}

__global__ void adaptive_pool_kernel(const float* x, index_t xs, float* y, index_t ys, index_t N, index_t H,
                                     index_t W, index_t C, index_t OH, index_t OW, bool is_max) {
  const index_t total = N * OH * OW * C;
  for (index_t i = grid_first(); i < total; i += grid_step()) {
    const index_t c = i % C, p = i / C, ow = p % OW, t = p / OW, oh = t % OH, n = t / OH;
    const index_t hs = oh * H / OH, he = ((oh + 1) * H + OH - 1) / OH;
    const index_t ws = ow * W / OW, we = ((ow + 1) * W + OW - 1) / OW;
    double acc = is_max ? -INFINITY : 0.0;
    for (index_t ih = hs; ih < he; ++ih)
      for (index_t iw = ws; iw < we; ++iw) {
        const double v = __ldg(x + ((n * H + ih) * W + iw) * xs + c);
        acc = is_max ? max_nan(acc, v) : acc + v;
      }
    y[p * ys + c] = static_cast<float>(is_max ? acc : acc / static_cast<double>((he - hs) * (we - ws)));
  }
}

// ----------------------------------------------------------------------------------------------- elementwise
__global__ void affine_kernel(const float* x, index_t xs, float* y, index_t ys, index_t pixels, index_t C,
                              const float* scale, const float* shift, Epilogue e) {
  const index_t total = pixels * C;
  for (index_t i = grid_first(); i < total; i += grid_step()) {
    const index_t c = i % C, p = i / C;
    float v = __ldg(x + p * xs + c);
    if (scale != nullptr && shift != nullptr)
      v = fmaf(v, __ldg(scale + c), __ldg(shift + c));
    else if (scale != nullptr)
      v *= __ldg(scale + c);
    else if (shift != nullptr)
      v += __ldg(shift + c);
    y[p * ys + c] = activate(v, e);
  }
}

__global__ void binary_kernel(BinaryArgs g) {
  const index_t total = g.N * g.H * g.W * g.C;
  for (index_t i = grid_first(); i < total; i += grid_step()) {
    const index_t c = i % g.C, p = i / g.C, w = p % g.W, t = p / g.W, h = t % g.H, n = t / g.H;
    const float av = __ldg(g.a + n * g.as[0] + h * g.as[1] + w * g.as[2] + c * g.as[3]);
    const float bv = __ldg(g.b + n * g.bs[0] + h * g.bs[1] + w * g.bs[2] + c * g.bs[3]);
    g.y[p * g.ys + c] = activate(binary_value<float>(g.op, av, bv), g.e);
  }
}

__global__ void copy_channels_kernel(const float* x, index_t xs, float* y, index_t ys, index_t pixels, index_t C) {
  const index_t total = pixels * C;
  for (index_t i = grid_first(); i < total; i += grid_step()) {
    const index_t c = i % C, p = i / C;
    y[p * ys + c] = __ldg(x + p * xs + c);
  }
}

__global__ void gather_channels_kernel(const float* x, index_t xs, float* y, index_t ys, index_t pixels, index_t C,
                                       const index_t* index) {
  const index_t total = pixels * C;
  for (index_t i = grid_first(); i < total; i += grid_step()) {
    const index_t c = i % C, p = i / C;
    y[p * ys + c] = __ldg(x + p * xs + __ldg(index + c));
  }
}

// Block per pixel (grid-stride over pixels): max, then the sum of exponentials in double, as the CPU Plan.
constexpr int kSoftmaxThreads = 128;

__global__ void softmax_kernel(const float* x, index_t xs, float* y, index_t ys, index_t pixels, index_t C, bool log) {
  __shared__ float mx_part[kSoftmaxThreads];
  __shared__ double sum_part[kSoftmaxThreads];
  const int tid = static_cast<int>(threadIdx.x);
  for (index_t p = blockIdx.x; p < pixels; p += gridDim.x) {  // uniform over the block
    const float* xp = x + p * xs;
    float mx = -INFINITY;
    for (index_t c = tid; c < C; c += kSoftmaxThreads) mx = fmaxf(mx, __ldg(xp + c));
    mx_part[tid] = mx;
    __syncthreads();
    for (int half = kSoftmaxThreads / 2; half > 0; half /= 2) {
      if (tid < half) mx_part[tid] = fmaxf(mx_part[tid], mx_part[tid + half]);
      __syncthreads();
    }
    mx = mx_part[0];
    double sum = 0.0;
    for (index_t c = tid; c < C; c += kSoftmaxThreads) sum += exp(static_cast<double>(__ldg(xp + c)) - mx);
    sum_part[tid] = sum;
    __syncthreads();
    for (int half = kSoftmaxThreads / 2; half > 0; half /= 2) {
      if (tid < half) sum_part[tid] += sum_part[tid + half];
      __syncthreads();
    }
    const double lse = ::log(sum_part[0]);
    for (index_t c = tid; c < C; c += kSoftmaxThreads) {
      const double z = static_cast<double>(__ldg(xp + c)) - mx;
      y[p * ys + c] = static_cast<float>(log ? z - lse : exp(z - lse));
    }
    __syncthreads();  // before the next pixel reuses the partials
  }
}

// Block per pixel, as softmax: the mean, then the squared deviations, each summed in double.
__device__ double block_sum(double v, double* part) {
  const int tid = static_cast<int>(threadIdx.x);
  part[tid] = v;
  __syncthreads();
  for (int half = kSoftmaxThreads / 2; half > 0; half /= 2) {
    if (tid < half) part[tid] += part[tid + half];
    __syncthreads();
  }
  const double total = part[0];
  __syncthreads();  // before the next call reuses the partials
  return total;
}

__global__ void layer_norm_kernel(const float* x, index_t xs, float* y, index_t ys, index_t pixels, index_t C,
                                  const float* scale, const float* shift, float eps, Epilogue e) {
  __shared__ double part[kSoftmaxThreads];
  const int tid = static_cast<int>(threadIdx.x);
  for (index_t p = blockIdx.x; p < pixels; p += gridDim.x) {  // uniform over the block
    const float* xp = x + p * xs;
    double s = 0.0;
    for (index_t c = tid; c < C; c += kSoftmaxThreads) s += __ldg(xp + c);
    const double mean = block_sum(s, part) / static_cast<double>(C);
    double q = 0.0;
    for (index_t c = tid; c < C; c += kSoftmaxThreads) {
      const double d = __ldg(xp + c) - mean;
      q += d * d;
    }
    const double rstd = 1.0 / sqrt(block_sum(q, part) / static_cast<double>(C) + eps);
    for (index_t c = tid; c < C; c += kSoftmaxThreads) {
      double v = (__ldg(xp + c) - mean) * rstd;
      if (scale != nullptr) v *= __ldg(scale + c);
      if (shift != nullptr) v += __ldg(shift + c);
      y[p * ys + c] = activate(static_cast<float>(v), e);
    }
  }
}

__global__ void lrn_kernel(const float* x, index_t xs, float* y, index_t ys, index_t pixels, index_t C, index_t size,
                           float alpha, float beta, float k) {
  const index_t total = pixels * C, lo = size / 2, hi = (size - 1) / 2;
  for (index_t i = grid_first(); i < total; i += grid_step()) {
    const index_t c = i % C, p = i / C;
    const float* xp = x + p * xs;
    double sq = 0.0;
    for (index_t j = imax(0, c - lo); j <= imin(C - 1, c + hi); ++j) {
      const double v = __ldg(xp + j);
      sq += v * v;
    }
    y[p * ys + c] = static_cast<float>(__ldg(xp + c) / pow(static_cast<double>(k) + alpha / static_cast<double>(size) * sq, static_cast<double>(beta)));
  }
}

__global__ void resample_kernel(ResampleArgs a) {
  const index_t total = a.N * a.OH * a.OW * a.C;
  for (index_t i = grid_first(); i < total; i += grid_step()) {
    const index_t c = i % a.C, p = i / a.C, ow = p % a.OW, t = p / a.OW, oh = t % a.OH, n = t / a.OH;
    const index_t* ih = a.index_h + oh * a.taps_h;
    const index_t* iw = a.index_w + ow * a.taps_w;
    float v = a.fill;
    if (ih[0] >= 0 && iw[0] >= 0) {
      const float* xn = a.x + n * a.ximage + c;
      v = 0.0f;
      for (index_t u = 0; u < a.taps_h; ++u) {
        float row = 0.0f;
        for (index_t q = 0; q < a.taps_w; ++q)
          row = fmaf(__ldg(a.weight_w + ow * a.taps_w + q), __ldg(xn + (ih[u] * a.W + iw[q]) * a.xs), row);
        v = fmaf(__ldg(a.weight_h + oh * a.taps_h + u), row, v);
      }
    }
    a.y[n * a.yimage + (oh * a.OW + ow) * a.ys + c] = v;
  }
}

__global__ void flatten_nchw_kernel(const float* x, index_t xs, float* y, index_t N, index_t HW, index_t C) {
  const index_t total = N * C * HW;
  for (index_t i = grid_first(); i < total; i += grid_step()) {  // i runs over y: (n, c, pixel)
    const index_t p = i % HW, t = i / HW, c = t % C, n = t / C;
    y[i] = __ldg(x + (n * HW + p) * xs + c);
  }
}

__global__ void nchw_to_nhwc_kernel(const float* src, float* y, index_t ys, index_t N, index_t C, index_t HW) {
  const index_t total = N * C * HW;
  for (index_t i = grid_first(); i < total; i += grid_step()) {  // i runs over the source: reads are coalesced
    const index_t p = i % HW, t = i / HW, c = t % C, n = t / C;
    y[(n * HW + p) * ys + c] = __ldg(src + i);
  }
}

__global__ void nhwc_to_output_kernel(const float* x, index_t xs, float* dst, index_t N, index_t C, index_t HW,
                                      bool nchw) {
  const index_t total = N * C * HW;
  for (index_t i = grid_first(); i < total; i += grid_step()) {  // i runs over the destination
    if (nchw) {
      const index_t p = i % HW, t = i / HW, c = t % C, n = t / C;
      dst[i] = __ldg(x + (n * HW + p) * xs + c);
    } else {
      const index_t c = i % C, p = i / C;
      dst[i] = __ldg(x + p * xs + c);
    }
  }
}

}  // namespace

void launch_dwconv(const DwArgs& a, cudaStream_t s) {
  const index_t total = a.N * a.OH * a.OW * a.C;
  if (total == 0) return;
  auto* k = &dwconv_kernel;
  CC_LAUNCH(k, dim3(grid_blocks(total, kThreads)), dim3(kThreads), s, a);
}

void launch_pool(const PoolArgs& a, cudaStream_t s) {
  const index_t total = a.N * a.OH * a.OW * a.C;
  if (total == 0) return;
  auto* k = &pool_kernel;
  CC_LAUNCH(k, dim3(grid_blocks(total, kThreads)), dim3(kThreads), s, a);
}

void launch_global_pool(const float* x, index_t xs, float* y, index_t ys, index_t N, index_t HW, index_t C,
                        bool is_max, cudaStream_t s) {
  if (N == 0 || C == 0) return;
  if (N > 65535) throw std::invalid_argument("global pool: a batch of at most 65535 images");
  const index_t tiles = std::min<index_t>((C + kGpChannels - 1) / kGpChannels, 65535);
  auto* k = &global_pool_kernel;
  CC_LAUNCH(k, dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(N)), dim3(kGpChannels, kGpLanes), s, x, xs, y,
            ys, HW, C, is_max);
}

void launch_adaptive_pool(const float* x, index_t xs, float* y, index_t ys, index_t N, index_t H, index_t W,
                          index_t C, index_t OH, index_t OW, bool is_max, cudaStream_t s) {
  const index_t total = N * OH * OW * C;
  if (total == 0) return;
  auto* k = &adaptive_pool_kernel;
  CC_LAUNCH(k, dim3(grid_blocks(total, kThreads)), dim3(kThreads), s, x, xs, y, ys, N, H, W, C, OH, OW, is_max);
}

void launch_affine(const float* x, index_t xs, float* y, index_t ys, index_t pixels, index_t C, const float* scale,
                   const float* shift, const Epilogue& e, cudaStream_t s) {
  if (pixels * C == 0) return;
  auto* k = &affine_kernel;
  CC_LAUNCH(k, dim3(grid_blocks(pixels * C, kThreads)), dim3(kThreads), s, x, xs, y, ys, pixels, C, scale, shift, e);
}

void launch_binary(const BinaryArgs& a, cudaStream_t s) {
  const index_t total = a.N * a.H * a.W * a.C;
  if (total == 0) return;
  auto* k = &binary_kernel;
  CC_LAUNCH(k, dim3(grid_blocks(total, kThreads)), dim3(kThreads), s, a);
}

void launch_copy_channels(const float* x, index_t xs, float* y, index_t ys, index_t pixels, index_t C, cudaStream_t s) {
  if (pixels * C == 0) return;
  auto* k = &copy_channels_kernel;
  CC_LAUNCH(k, dim3(grid_blocks(pixels * C, kThreads)), dim3(kThreads), s, x, xs, y, ys, pixels, C);
}

void launch_gather_channels(const float* x, index_t xs, float* y, index_t ys, index_t pixels, index_t C,
                            const index_t* index, cudaStream_t s) {
  if (pixels * C == 0) return;
  auto* k = &gather_channels_kernel;
  CC_LAUNCH(k, dim3(grid_blocks(pixels * C, kThreads)), dim3(kThreads), s, x, xs, y, ys, pixels, C, index);
}

void launch_softmax(const float* x, index_t xs, float* y, index_t ys, index_t pixels, index_t C, bool log,
                    cudaStream_t s) {
  if (pixels * C == 0) return;
  auto* k = &softmax_kernel;
  CC_LAUNCH(k, dim3(static_cast<unsigned>(std::min<index_t>(pixels, 65536))), dim3(kSoftmaxThreads), s, x, xs, y, ys,
            pixels, C, log);
}

void launch_layer_norm(const float* x, index_t xs, float* y, index_t ys, index_t pixels, index_t C, const float* scale,
                       const float* shift, float eps, const Epilogue& e, cudaStream_t s) {
  if (pixels * C == 0) return;
  auto* k = &layer_norm_kernel;
  CC_LAUNCH(k, dim3(static_cast<unsigned>(std::min<index_t>(pixels, 65536))), dim3(kSoftmaxThreads), s, x, xs, y, ys,
            pixels, C, scale, shift, eps, e);
}

void launch_lrn(const float* x, index_t xs, float* y, index_t ys, index_t pixels, index_t C, index_t size, float alpha,
                float beta, float k_, cudaStream_t s) {
  if (pixels * C == 0) return;
  auto* k = &lrn_kernel;
  CC_LAUNCH(k, dim3(grid_blocks(pixels * C, kThreads)), dim3(kThreads), s, x, xs, y, ys, pixels, C, size, alpha, beta,
            k_);
}

void launch_resample(const ResampleArgs& a, cudaStream_t s) {
  const index_t total = a.N * a.OH * a.OW * a.C;
  if (total == 0) return;
  auto* k = &resample_kernel;
  CC_LAUNCH(k, dim3(grid_blocks(total, kThreads)), dim3(kThreads), s, a);
}

void launch_flatten_nchw(const float* x, index_t xs, float* y, index_t N, index_t H, index_t W, index_t C,
                         cudaStream_t s) {
  if (N * H * W * C == 0) return;
  auto* k = &flatten_nchw_kernel;
  CC_LAUNCH(k, dim3(grid_blocks(N * H * W * C, kThreads)), dim3(kThreads), s, x, xs, y, N, H * W, C);
}

void launch_nchw_to_nhwc(const float* src, float* y, index_t ys, index_t N, index_t C, index_t H, index_t W,
                         cudaStream_t s) {
  if (N * C * H * W == 0) return;
  auto* k = &nchw_to_nhwc_kernel;
  CC_LAUNCH(k, dim3(grid_blocks(N * C * H * W, kThreads)), dim3(kThreads), s, src, y, ys, N, C, H * W);
}

void launch_nhwc_to_output(const float* x, index_t xs, float* dst, index_t N, index_t C, index_t H, index_t W,
                           bool nchw, cudaStream_t s) {
  if (N * C * H * W == 0) return;
  auto* k = &nhwc_to_output_kernel;
  CC_LAUNCH(k, dim3(grid_blocks(N * C * H * W, kThreads)), dim3(kThreads), s, x, xs, dst, N, C, H * W, nchw);
}

}  // namespace convcore::cuda
