// The CPU Plan's ops other than convolutions (conv_ops.cpp): the layout conversions at its edges, pooling,
// elementwise ops, channel copies, softmax, LRN and flatten. Each is a thin loop over the shared kernels.
#include <cmath>
#include <cstring>
#include <limits>

#include "plan/op_util.h"

namespace convcore {
using namespace planop;
namespace {

// ------------------------------------------------------------------------------------------------ input / output
struct InputOp : CpuOp {
  int y, index;
  index_t C, HW;
  const Kernels* k;
  int parallelism(index_t N, int threads) const override { return parts_for(8.0 * N * C * HW, kByteGrain, threads); }
  void run(const Exec& ex, int part, int parts) const override {
    const TensorView out = ex.at(y);
    const auto [lo, hi] = share(ex.N * HW, part, parts, 16);
    for_image_pixels(HW, lo, hi, [&](index_t n, index_t p0, index_t p1) {
      k->nchw_to_nhwc(ex.inputs[index] + n * C * HW, C, HW, out.base + n * out.image, out.stride, p0, p1);
    });
  }
};

struct OutputOp : CpuOp {
  int x, index;
  bool nchw;
  index_t C, HW;
  const Kernels* k;
  int parallelism(index_t N, int threads) const override { return parts_for(8.0 * N * C * HW, kByteGrain, threads); }
  void run(const Exec& ex, int part, int parts) const override {
    const TensorView in = ex.at(x);
    float* dst = ex.outputs[index];
    const auto [lo, hi] = share(ex.N * HW, part, parts, 16);
    for_image_pixels(HW, lo, hi, [&](index_t n, index_t p0, index_t p1) {
      const float* src = in.base + n * in.image;
      if (nchw) {
        k->nhwc_to_nchw(src, in.stride, C, HW, dst + n * C * HW, p0, p1);
      } else {
        for (index_t p = p0; p < p1; ++p) std::memcpy(dst + (n * HW + p) * C, src + p * in.stride, sizeof(float) * C);
      }
    });
  }
};

// --------------------------------------------------------------------------------------------------- pooling
struct PoolOp : CpuOp {
  PoolGeom g;
  int x, y;
  const Kernels* k;
  int parallelism(index_t N, int threads) const override {
    return parts_for(4.0 * N * g.OH * g.OW * g.C * g.kh * g.kw, kByteGrain, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    PoolGeom geo = g;
    geo.N = ex.N;
    const TensorView in = ex.at(x), out = ex.at(y);
    const auto [r0, r1] = share(ex.N * g.OH, part, parts);
    if (r0 < r1) k->pool(geo, in.base, in.stride, out.base, out.stride, r0, r1);
  }
};

struct GlobalPoolOp : CpuOp {
  index_t HW, C;
  bool is_max;
  int x, y;
  const Kernels* k;
  int parallelism(index_t N, int threads) const override {
    return parts_for(4.0 * N * HW * C, kByteGrain, std::min<index_t>(threads, N));
  }
  void run(const Exec& ex, int part, int parts) const override {
    const TensorView in = ex.at(x), out = ex.at(y);
    const auto [n0, n1] = share(ex.N, part, parts);
    if (n0 < n1) k->global_pool(HW, C, is_max, in.base, in.stride, out.base, out.stride, n0, n1);
  }
};

struct AdaptivePoolOp : CpuOp {  // the general case (unequal windows): plain loops, rare and small
  index_t H, W, C, OH, OW;
  bool is_max;
  int x, y;
  int parallelism(index_t, int) const override { return 1; }
  void run(const Exec& ex, int, int) const override {
    const TensorView in = ex.at(x), out = ex.at(y);
    for (index_t n = 0; n < ex.N; ++n)
      for (index_t oh = 0; oh < OH; ++oh) {
        const index_t hs = oh * H / OH, he = ceil_div((oh + 1) * H, OH);
        for (index_t ow = 0; ow < OW; ++ow) {
          const index_t ws = ow * W / OW, we = ceil_div((ow + 1) * W, OW);
          float* yp = out.base + n * out.image + (oh * OW + ow) * out.stride;
          for (index_t c = 0; c < C; ++c) {
            double acc = is_max ? -std::numeric_limits<double>::infinity() : 0.0;
            for (index_t ih = hs; ih < he; ++ih)
              for (index_t iw = ws; iw < we; ++iw) {
                const double v = in.base[n * in.image + (ih * W + iw) * in.stride + c];
                acc = is_max ? (std::isnan(acc) ? acc : (v > acc || std::isnan(v) ? v : acc)) : acc + v;
              }
            yp[c] = static_cast<float>(is_max ? acc : acc / static_cast<double>((he - hs) * (we - ws)));
          }
        }
      }
  }
};

// ----------------------------------------------------------------------------------------------- elementwise
struct AffineOp : CpuOp {
  index_t pixels, C;  // per image
  AlignedVector scale, shift;
  Epilogue e;
  int x, y;
  const Kernels* k;
  int parallelism(index_t N, int threads) const override {
    return parts_for(8.0 * N * pixels * C, kByteGrain, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    const TensorView in = ex.at(x), out = ex.at(y);
    const auto [p0, p1] = share(ex.N * pixels, part, parts);
    if (p0 < p1)
      k->affine(C, in.base, in.stride, out.base, out.stride, scale.empty() ? nullptr : scale.data(),
                shift.empty() ? nullptr : shift.data(), e, p0, p1);
  }
};

struct BinaryOpNode : CpuOp {
  BinaryGeom g;  // strides of a and b filled per run
  BinaryOp op;
  Epilogue e;
  int a, b, y;
  const Kernels* k;
  int parallelism(index_t N, int threads) const override {
    return parts_for(12.0 * N * g.H * g.W * g.C, kByteGrain, threads);
  }
  static void strides(const TensorDesc& d, const TensorView& r, index_t* s) {
    s[0] = r.image;
    s[1] = d.H > 1 ? d.W * r.stride : 0;
    s[2] = d.W > 1 ? r.stride : 0;
    s[3] = d.C > 1 ? 1 : 0;
  }
  void run(const Exec& ex, int part, int parts) const override {
    BinaryGeom geo = g;
    geo.N = ex.N;
    const TensorView ra = ex.at(a), rb = ex.at(b), out = ex.at(y);
    strides(ex.plan->tensor(a), ra, geo.a_s);
    strides(ex.plan->tensor(b), rb, geo.b_s);
    geo.ys = out.stride;
    const auto [r0, r1] = share(ex.N * g.H, part, parts);
    if (r0 < r1) k->binary(geo, op, ra.base, rb.base, out.base, e, r0, r1);
  }
};

struct CopyOp : CpuOp {
  index_t pixels, C;
  int x, y;
  index_t c0;
  int parallelism(index_t N, int threads) const override {
    return parts_for(8.0 * N * pixels * C, kByteGrain, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    const TensorView in = ex.at(x), out = ex.at(y);
    const auto [p0, p1] = share(ex.N * pixels, part, parts);
    for (index_t p = p0; p < p1; ++p)
      std::memcpy(out.base + p * out.stride + c0, in.base + p * in.stride, sizeof(float) * C);
  }
};

struct SoftmaxOp : CpuOp {  // along channels, per pixel
  index_t pixels, C;
  bool log;
  int x, y;
  int parallelism(index_t N, int threads) const override {
    return parts_for(40.0 * N * pixels * C, kByteGrain, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    const TensorView in = ex.at(x), out = ex.at(y);
    const auto [p0, p1] = share(ex.N * pixels, part, parts);
    for (index_t p = p0; p < p1; ++p) {
      const float* xp = in.base + p * in.stride;
      float* yp = out.base + p * out.stride;
      float mx = -std::numeric_limits<float>::infinity();
      for (index_t c = 0; c < C; ++c) mx = std::max(mx, xp[c]);
      double sum = 0;
      for (index_t c = 0; c < C; ++c) sum += std::exp(static_cast<double>(xp[c]) - mx);
      const double lse = std::log(sum);
      for (index_t c = 0; c < C; ++c) {
        const double z = static_cast<double>(xp[c]) - mx;
        yp[c] = static_cast<float>(log ? z - lse : std::exp(z - lse));
      }
    }
  }
};

struct LrnOp : CpuOp {  // torch's window [c - size/2, c + (size-1)/2] across channels
  index_t pixels, C, size;
  float alpha, beta, k;
  int x, y;
  int parallelism(index_t N, int threads) const override {
    return parts_for(4.0 * N * pixels * C * size, kByteGrain, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    const TensorView in = ex.at(x), out = ex.at(y);
    const auto [p0, p1] = share(ex.N * pixels, part, parts);
    const index_t lo = size / 2, hi = (size - 1) / 2;
    for (index_t p = p0; p < p1; ++p) {
      const float* xp = in.base + p * in.stride;
      float* yp = out.base + p * out.stride;
      for (index_t c = 0; c < C; ++c) {
        double sq = 0;
        for (index_t j = std::max<index_t>(0, c - lo); j <= std::min(C - 1, c + hi); ++j)
          sq += static_cast<double>(xp[j]) * xp[j];
        yp[c] = static_cast<float>(xp[c] / std::pow(k + alpha / static_cast<double>(size) * sq, beta));
      }
    }
  }
};

struct FlattenOp : CpuOp {  // NHWC -> NCHW order, as one (N, C*H*W) row per image
  index_t HW, C;
  int x, y;
  const Kernels* k;
  int parallelism(index_t N, int threads) const override { return parts_for(8.0 * N * HW * C, kByteGrain, threads); }
  void run(const Exec& ex, int part, int parts) const override {
    const TensorView in = ex.at(x), out = ex.at(y);
    const auto [lo, hi] = share(ex.N * HW, part, parts, 16);
    for_image_pixels(HW, lo, hi, [&](index_t n, index_t p0, index_t p1) {
      k->nhwc_to_nchw(in.base + n * in.image, in.stride, C, HW, out.base + n * out.image, p0, p1);
    });
  }
};

template <class T>
std::unique_ptr<T> make() {
  return std::make_unique<T>();
}

}  // namespace

std::unique_ptr<PlanOp> Plan::input_op(int y, int index) {
  const TensorDesc& d = tensor(y);
  auto op = make<InputOp>();
  op->y = y, op->index = index, op->C = d.C, op->HW = d.H * d.W, op->k = kernels_;
  op->writes = {y};
  return op;
}

std::unique_ptr<PlanOp> Plan::output_op(int x, int index, bool nchw) {
  const TensorDesc& d = tensor(x);
  auto op = make<OutputOp>();
  op->x = x, op->index = index, op->nchw = nchw, op->C = d.C, op->HW = d.H * d.W, op->k = kernels_;
  return op;
}

std::unique_ptr<PlanOp> Plan::pool_op(const PoolGeom& g, int x, int y) {
  auto op = make<PoolOp>();
  op->g = g, op->x = x, op->y = y, op->k = kernels_;
  return op;
}

std::unique_ptr<PlanOp> Plan::global_pool_op(index_t HW, index_t C, bool is_max, int x, int y) {
  auto op = make<GlobalPoolOp>();
  op->HW = HW, op->C = C, op->is_max = is_max, op->x = x, op->y = y, op->k = kernels_;
  return op;
}

std::unique_ptr<PlanOp> Plan::adaptive_pool_op(index_t H, index_t W, index_t C, index_t OH, index_t OW, bool is_max,
                                               int x, int y) {
  auto op = make<AdaptivePoolOp>();
  op->H = H, op->W = W, op->C = C, op->OH = OH, op->OW = OW, op->is_max = is_max, op->x = x, op->y = y;
  return op;
}

std::unique_ptr<PlanOp> Plan::affine_op(index_t pixels, index_t C, const float* scale, const float* shift,
                                        const Epilogue& e, int x, int y) {
  auto op = make<AffineOp>();
  op->pixels = pixels, op->C = C, op->e = e, op->x = x, op->y = y, op->k = kernels_;
  if (scale) op->scale.assign(scale, scale + C);
  if (shift) op->shift.assign(shift, shift + C);
  add_weight_bytes(static_cast<index_t>(op->scale.size() + op->shift.size()) * 4);
  return op;
}

std::unique_ptr<PlanOp> Plan::binary_op(index_t H, index_t W, index_t C, BinaryOp bop, const Epilogue& e, int a,
                                        int b, int y) {
  auto op = make<BinaryOpNode>();
  op->g = BinaryGeom{0, H, W, C, {0, 0, 0, 0}, {0, 0, 0, 0}, 0};
  op->op = bop, op->e = e, op->a = a, op->b = b, op->y = y, op->k = kernels_;
  return op;
}

std::unique_ptr<PlanOp> Plan::copy_op(index_t pixels, index_t C, index_t c0, int x, int y) {
  auto op = make<CopyOp>();
  op->pixels = pixels, op->C = C, op->x = x, op->y = y, op->c0 = c0;
  return op;
}

std::unique_ptr<PlanOp> Plan::softmax_op(index_t pixels, index_t C, bool log, int x, int y) {
  auto op = make<SoftmaxOp>();
  op->pixels = pixels, op->C = C, op->log = log, op->x = x, op->y = y;
  return op;
}

std::unique_ptr<PlanOp> Plan::lrn_op(index_t pixels, index_t C, index_t size, float alpha, float beta, float k,
                                     int x, int y) {
  auto op = make<LrnOp>();
  op->pixels = pixels, op->C = C, op->size = size, op->alpha = alpha, op->beta = beta, op->k = k, op->x = x, op->y = y;
  return op;
}

std::unique_ptr<PlanOp> Plan::flatten_op(index_t H, index_t W, index_t C, int x, int y) {
  auto op = make<FlattenOp>();
  op->HW = H * W, op->C = C, op->x = x, op->y = y, op->k = kernels_;
  return op;
}

}  // namespace convcore
