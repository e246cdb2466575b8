// The CPU Plan's ops other than convolutions (conv_ops.cpp): the layout conversions at its edges, pooling,
// elementwise ops, channel copies and gathers, softmax, layer norm, LRN, resize and flatten. Each is a thin loop over the shared kernels.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "plan/op_util.h"

namespace convcore {
using namespace planop;
namespace {

// Each op keeps its step (plan/builder.h); make(step, kernels) after each builds it (Plan::make_op picks by type).
template <class Op, class Step>
std::unique_ptr<PlanOp> make(const Step& s, const Kernels* k) {
  if constexpr (std::is_constructible_v<Op, const Step&, const Kernels*>) return std::make_unique<Op>(s, k);
  else return std::make_unique<Op>(s);
}

// ------------------------------------------------------------------------------------------------ input / output
struct InputOp : CpuOp {
  step::Input s;
  const Kernels* k;
  InputOp(const step::Input& s, const Kernels* k) : s(s), k(k) {}
  int parallelism(index_t N, int threads) const override {
    return parts_for(8.0 * N * s.C * s.H * s.W, kByteGrain, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    const TensorView out = ex.at(s.y);
    const index_t HW = s.H * s.W;
    const auto [lo, hi] = share(ex.N * HW, part, parts, 16);
    for_image_pixels(HW, lo, hi, [&](index_t n, index_t p0, index_t p1) {
      const float* src = ex.inputs[s.index] + n * s.C * HW;
      if (!s.nhwc) return k->nchw_to_nhwc(src, s.C, HW, out.base + n * out.image, out.stride, p0, p1);
      for (index_t p = p0; p < p1; ++p)
        std::memcpy(out.base + n * out.image + p * out.stride, src + p * s.C, sizeof(float) * s.C);
    });
  }
};
std::unique_ptr<PlanOp> make(const step::Input& s, const Kernels* k) { return make<InputOp>(s, k); }

struct OutputOp : CpuOp {
  step::Output s;
  const Kernels* k;
  OutputOp(const step::Output& s, const Kernels* k) : s(s), k(k) {}
  int parallelism(index_t N, int threads) const override {
    return parts_for(8.0 * N * s.C * s.H * s.W, kByteGrain, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    const TensorView in = ex.at(s.x);
    float* dst = ex.outputs[s.index];
    const index_t HW = s.H * s.W, C = s.C;
    const auto [lo, hi] = share(ex.N * HW, part, parts, 16);
    for_image_pixels(HW, lo, hi, [&](index_t n, index_t p0, index_t p1) {
      const float* src = in.base + n * in.image;
      if (s.nchw) {
        k->nhwc_to_nchw(src, in.stride, C, HW, dst + n * C * HW, p0, p1);
      } else {
        for (index_t p = p0; p < p1; ++p) std::memcpy(dst + (n * HW + p) * C, src + p * in.stride, sizeof(float) * C);
      }
    });
  }
};
std::unique_ptr<PlanOp> make(const step::Output& s, const Kernels* k) { return make<OutputOp>(s, k); }

// --------------------------------------------------------------------------------------------------- pooling
struct PoolOp : CpuOp {
  step::Pool s;
  const Kernels* k;
  PoolOp(const step::Pool& s, const Kernels* k) : s(s), k(k) {}
  int parallelism(index_t N, int threads) const override {
    const PoolGeom& g = s.g;
    return parts_for(4.0 * N * g.OH * g.OW * g.C * g.kh * g.kw, kByteGrain, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    PoolGeom geo = s.g;
    geo.N = ex.N;
    const TensorView in = ex.at(s.x), out = ex.at(s.y);
    const auto [r0, r1] = share(ex.N * geo.OH, part, parts);
    if (r0 < r1) k->pool(geo, in.base, in.stride, out.base, out.stride, r0, r1);
  }
};
std::unique_ptr<PlanOp> make(const step::Pool& s, const Kernels* k) { return make<PoolOp>(s, k); }

struct GlobalPoolOp : CpuOp {
  step::GlobalPool s;
  const Kernels* k;
  GlobalPoolOp(const step::GlobalPool& s, const Kernels* k) : s(s), k(k) {}
  // Images apart; a batch smaller than the threads splits its channels instead (16 at a time: whole vectors).
  int parallelism(index_t N, int threads) const override {
    return parts_for(4.0 * N * s.HW * s.C, kByteGrain, std::min<index_t>(threads, std::max(N, ceil_div(s.C, 16))));
  }
  void run(const Exec& ex, int part, int parts) const override {
    const TensorView in = ex.at(s.x), out = ex.at(s.y);
    if (ex.N >= parts) {
      const auto [n0, n1] = share(ex.N, part, parts);
      if (n0 < n1) k->global_pool(s.HW, s.C, s.is_max, in.base, in.stride, out.base, out.stride, n0, n1);
      return;
    }
    const auto [c0, c1] = share(s.C, part, parts, 16);
    if (c0 < c1)
      k->global_pool(s.HW, c1 - c0, s.is_max, in.base + c0, in.stride, out.base + c0, out.stride, 0, ex.N);
  }
};
std::unique_ptr<PlanOp> make(const step::GlobalPool& s, const Kernels* k) { return make<GlobalPoolOp>(s, k); }

struct AdaptivePoolOp : CpuOp {  // the general case (unequal windows): plain loops, rare and small
  step::AdaptivePool s;
  explicit AdaptivePoolOp(const step::AdaptivePool& s) : s(s) {}
  int parallelism(index_t, int) const override { return 1; }
  void run(const Exec& ex, int, int) const override {
    const TensorView in = ex.at(s.x), out = ex.at(s.y);
    const auto [H, W, C, OH, OW, is_max, x, y] = s;
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
std::unique_ptr<PlanOp> make(const step::AdaptivePool& s, const Kernels* k) { return make<AdaptivePoolOp>(s, k); }

// ----------------------------------------------------------------------------------------------- elementwise
// Few channels (a 1-channel probability map) would leave most vector lanes idle, pixel by pixel: a contiguous tensor
// then runs as groups of G pixels, one "pixel" of G * C channels with the scale and shift repeated G times.
struct AffineOp : CpuOp {
  step::Affine s;  // scale / shift point into the copies below
  AlignedVector scale, shift;
  index_t group = 1;
  AlignedVector group_scale, group_shift;
  const Kernels* k;
  AffineOp(const step::Affine& st, const Kernels* k) : s(st), k(k) {
    if (st.scale) scale.assign(st.scale, st.scale + st.C);
    if (st.shift) shift.assign(st.shift, st.shift + st.C);
    s.scale = st.scale ? scale.data() : nullptr;
    s.shift = st.shift ? shift.data() : nullptr;
    if (st.C < 16) {
      group = ceil_div(64, st.C);
      for (index_t i = 0; i < group; ++i) {
        if (st.scale) group_scale.insert(group_scale.end(), scale.begin(), scale.end());
        if (st.shift) group_shift.insert(group_shift.end(), shift.begin(), shift.end());
      }
    }
  }
  int parallelism(index_t N, int threads) const override {
    return parts_for(8.0 * N * s.pixels * s.C, kByteGrain, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    const TensorView in = ex.at(s.x), out = ex.at(s.y);
    const index_t P = ex.N * s.pixels;
    if (group > 1 && in.stride == s.C && out.stride == s.C) {
      const index_t GC = group * s.C, groups = P / group;
      const auto [g0, g1] = share(groups, part, parts);
      if (g0 < g1)
        k->affine(GC, in.base, GC, out.base, GC, s.scale ? group_scale.data() : nullptr,
                  s.shift ? group_shift.data() : nullptr, s.e, g0, g1);
      if (part == parts - 1 && groups * group < P)
        k->affine(s.C, in.base, s.C, out.base, s.C, s.scale, s.shift, s.e, groups * group, P);
      return;
    }
    const auto [p0, p1] = share(P, part, parts);
    if (p0 < p1) k->affine(s.C, in.base, in.stride, out.base, out.stride, s.scale, s.shift, s.e, p0, p1);
  }
};
std::unique_ptr<PlanOp> make(const step::Affine& s, const Kernels* k) { return make<AffineOp>(s, k); }

struct BinaryOpNode : CpuOp {
  step::Binary s;
  const Kernels* k;
  BinaryOpNode(const step::Binary& s, const Kernels* k) : s(s), k(k) {}
  int parallelism(index_t N, int threads) const override {
    return parts_for(12.0 * N * s.H * s.W * s.C, kByteGrain, threads);
  }
  static void strides(const TensorDesc& d, const TensorView& r, index_t* st) {
    st[0] = r.image;
    st[1] = d.H > 1 ? d.W * r.stride : 0;
    st[2] = d.W > 1 ? r.stride : 0;
    st[3] = d.C > 1 ? 1 : 0;
  }
  void run(const Exec& ex, int part, int parts) const override {
    BinaryGeom geo{ex.N, s.H, s.W, s.C, {0, 0, 0, 0}, {0, 0, 0, 0}, 0};
    const TensorView ra = ex.at(s.a), rb = ex.at(s.b), out = ex.at(s.y);
    strides(ex.plan->tensor(s.a), ra, geo.a_s);
    strides(ex.plan->tensor(s.b), rb, geo.b_s);
    geo.ys = out.stride;
    const auto [r0, r1] = share(ex.N * s.H, part, parts);
    if (r0 < r1) k->binary(geo, s.op, ra.base, rb.base, out.base, s.e, r0, r1);
  }
};
std::unique_ptr<PlanOp> make(const step::Binary& s, const Kernels* k) { return make<BinaryOpNode>(s, k); }

struct CopyOp : CpuOp {
  step::Copy s;
  explicit CopyOp(const step::Copy& s) : s(s) {}
  int parallelism(index_t N, int threads) const override {
    return parts_for(8.0 * N * s.pixels * s.C, kByteGrain, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    const TensorView in = ex.at(s.x), out = ex.at(s.y);  // x may be a constant: the same for every image
    const auto [p0, p1] = share(ex.N * s.pixels, part, parts);
    for (index_t p = p0; p < p1; ++p) {
      const index_t n = p / s.pixels, q = p % s.pixels;
      std::memcpy(out.base + n * out.image + q * out.stride + s.c0, in.base + n * in.image + q * in.stride,
                  sizeof(float) * s.C);
    }
  }
};
std::unique_ptr<PlanOp> make(const step::Copy& s, const Kernels* k) { return make<CopyOp>(s, k); }

struct CopyPixelsOp : CpuOp {
  step::CopyPixels s;
  explicit CopyPixelsOp(const step::CopyPixels& s) : s(s) {}
  int parallelism(index_t N, int threads) const override {
    return parts_for(8.0 * N * s.pixels * s.C, kByteGrain, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    const TensorView in = ex.at(s.x), out = ex.at(s.y);
    const auto [r0, r1] = share(ex.N * s.pixels, part, parts);
    for (index_t r = r0; r < r1; ++r) {
      const index_t n = r / s.pixels, p = r % s.pixels;
      std::memcpy(out.base + n * out.image + (s.p0 + p) * out.stride, in.base + n * in.image + p * in.stride,
                  sizeof(float) * s.C);
    }
  }
};
std::unique_ptr<PlanOp> make(const step::CopyPixels& s, const Kernels* k) { return make<CopyPixelsOp>(s, k); }

struct GatherChannelsOp : CpuOp {
  step::GatherChannels s;  // index points at the copy below
  std::vector<index_t> index;
  explicit GatherChannelsOp(const step::GatherChannels& st) : s(st), index(st.index, st.index + st.C) {
    s.index = index.data();
  }
  int parallelism(index_t N, int threads) const override {
    return parts_for(8.0 * N * s.pixels * s.C, kByteGrain, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {  // parts split the elements: a whole-value gather
    const TensorView in = ex.at(s.x), out = ex.at(s.y);            // (plan/permute.py) is one long pixel
    const auto [e0, e1] = share(ex.N * s.pixels * s.C, part, parts, 64);
    for (index_t e = e0; e < e1;) {
      const index_t p = e / s.C, c0 = e % s.C, c1 = std::min(s.C, c0 + (e1 - e));
      const float* xp = in.base + p * in.stride;
      float* yp = out.base + p * out.stride;
      for (index_t c = c0; c < c1; ++c) yp[c] = xp[s.index[c]];
      e += c1 - c0;
    }
  }
};
std::unique_ptr<PlanOp> make(const step::GatherChannels& s, const Kernels* k) { return make<GatherChannelsOp>(s, k); }

struct SoftmaxOp : CpuOp {
  step::Softmax s;
  const Kernels* k;
  SoftmaxOp(const step::Softmax& s, const Kernels* k) : s(s), k(k) {}
  int parallelism(index_t N, int threads) const override {
    return parts_for(40.0 * N * s.pixels * s.C, kByteGrain, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    const TensorView in = ex.at(s.x), out = ex.at(s.y);
    const auto [p0, p1] = share(ex.N * s.pixels, part, parts);
    if (p0 < p1) k->softmax(s.C, in.base, in.stride, out.base, out.stride, s.log, p0, p1);
  }
};
std::unique_ptr<PlanOp> make(const step::Softmax& s, const Kernels* k) { return make<SoftmaxOp>(s, k); }

struct LayerNormOp : CpuOp {
  step::LayerNorm s;  // scale / shift point into the copies below
  AlignedVector scale, shift;
  const Kernels* k;
  LayerNormOp(const step::LayerNorm& st, const Kernels* k) : s(st), k(k) {
    if (st.scale) scale.assign(st.scale, st.scale + st.C);
    if (st.shift) shift.assign(st.shift, st.shift + st.C);
    s.scale = st.scale ? scale.data() : nullptr;
    s.shift = st.shift ? shift.data() : nullptr;
  }
  int parallelism(index_t N, int threads) const override {
    return parts_for(16.0 * N * s.pixels * s.C, kByteGrain, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    const TensorView in = ex.at(s.x), out = ex.at(s.y);
    const auto [p0, p1] = share(ex.N * s.pixels, part, parts);
    if (p0 < p1) k->layer_norm(s.C, in.base, in.stride, out.base, out.stride, s.scale, s.shift, s.eps, s.e, p0, p1);
  }
};
std::unique_ptr<PlanOp> make(const step::LayerNorm& s, const Kernels* k) { return make<LayerNormOp>(s, k); }

struct LrnOp : CpuOp {
  step::Lrn s;
  explicit LrnOp(const step::Lrn& s) : s(s) {}
  int parallelism(index_t N, int threads) const override {
    return parts_for(4.0 * N * s.pixels * s.C * s.size, kByteGrain, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    const TensorView in = ex.at(s.x), out = ex.at(s.y);
    const index_t C = s.C, lo = s.size / 2, hi = (s.size - 1) / 2;
    const auto [p0, p1] = share(ex.N * s.pixels, part, parts);
    for (index_t p = p0; p < p1; ++p) {
      const float* xp = in.base + p * in.stride;
      float* yp = out.base + p * out.stride;
      for (index_t c = 0; c < C; ++c) {
        double sq = 0;
        for (index_t j = std::max<index_t>(0, c - lo); j <= std::min(C - 1, c + hi); ++j)
          sq += static_cast<double>(xp[j]) * xp[j];
        yp[c] = static_cast<float>(xp[c] / std::pow(s.k + s.alpha / static_cast<double>(s.size) * sq, s.beta));
      }
    }
  }
};
std::unique_ptr<PlanOp> make(const step::Lrn& s, const Kernels* k) { return make<LrnOp>(s, k); }

// ----------------------------------------------------------------------------------------------------- resize
// One output row at a time: its rows of x blended into a row of W pixels (or read in place for a single tap of
// weight 1, nearest), then each output pixel blended from that row's columns.
struct ResampleOp : CpuOp {
  step::Resample s;  // the tables point at the copies below
  const Kernels* k;
  std::vector<index_t> index_h, index_w;
  std::vector<float> weight_h, weight_w;
  ResampleOp(const step::Resample& st, const Kernels* k)
      : s(st),
        k(k),
        index_h(st.index_h, st.index_h + st.OH * st.taps_h),
        index_w(st.index_w, st.index_w + st.OW * st.taps_w),
        weight_h(st.weight_h, st.weight_h + st.OH * st.taps_h),
        weight_w(st.weight_w, st.weight_w + st.OW * st.taps_w) {
    s.index_h = index_h.data(), s.index_w = index_w.data(), s.weight_h = weight_h.data(), s.weight_w = weight_w.data();
  }

  int parallelism(index_t N, int threads) const override {
    return parts_for(4.0 * N * s.OH * (s.W * s.C * s.taps_h + s.OW * s.C * s.taps_w), kByteGrain, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    const TensorView in = ex.at(s.x), out = ex.at(s.y);
    const index_t C = s.C, W = s.W;
    thread_local AlignedVector row;  // grows once per thread
    if (static_cast<index_t>(row.size()) < W * C) row.assign(static_cast<size_t>(W * C), 0.0f);
    const auto [r0, r1] = share(ex.N * s.OH, part, parts);
    for (index_t r = r0; r < r1; ++r) {
      const index_t n = r / s.OH, oh = r % s.OH;
      float* y = out.base + n * out.image + oh * s.OW * out.stride;
      const index_t* ih = s.index_h + oh * s.taps_h;
      const float* wh = s.weight_h + oh * s.taps_h;
      if (ih[0] < 0) {
        for (index_t ow = 0; ow < s.OW; ++ow) std::fill(y + ow * out.stride, y + ow * out.stride + C, s.fill);
        continue;
      }
      const float* image = in.base + n * in.image;
      const float* src = row.data();  // the blended input row and its pixel stride
      index_t ps = C;
      if (s.taps_h == 1 && wh[0] == 1.0f) {
        src = image + ih[0] * W * in.stride, ps = in.stride;
      } else if (in.stride == C) {
        k->weighted_rows(W * C, s.taps_h, image, ih, W * C, wh, row.data());
      } else {
        for (index_t w = 0; w < W; ++w)
          k->weighted_rows(C, s.taps_h, image + w * in.stride, ih, W * in.stride, wh, row.data() + w * C);
      }
      for (index_t ow = 0; ow < s.OW; ++ow) {
        float* yp = y + ow * out.stride;
        const index_t* iw = s.index_w + ow * s.taps_w;
        const float* ww = s.weight_w + ow * s.taps_w;
        if (iw[0] < 0)
          std::fill(yp, yp + C, s.fill);
        else if (s.taps_w == 1 && ww[0] == 1.0f)
          std::memcpy(yp, src + iw[0] * ps, sizeof(float) * C);
        else
          k->weighted_rows(C, s.taps_w, src, iw, ps, ww, yp);
      }
    }
  }
};
std::unique_ptr<PlanOp> make(const step::Resample& s, const Kernels* k) { return make<ResampleOp>(s, k); }

struct FlattenOp : CpuOp {  // NHWC -> NCHW order
  step::Flatten s;
  const Kernels* k;
  FlattenOp(const step::Flatten& s, const Kernels* k) : s(s), k(k) {}
  int parallelism(index_t N, int threads) const override {
    return parts_for(8.0 * N * s.H * s.W * s.C, kByteGrain, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    const TensorView in = ex.at(s.x), out = ex.at(s.y);
    const index_t HW = s.H * s.W;
    const auto [lo, hi] = share(ex.N * HW, part, parts, 16);
    for_image_pixels(HW, lo, hi, [&](index_t n, index_t p0, index_t p1) {
      k->nhwc_to_nchw(in.base + n * in.image, in.stride, s.C, HW, out.base + n * out.image, p0, p1);
    });
  }
};
std::unique_ptr<PlanOp> make(const step::Flatten& s, const Kernels* k) { return make<FlattenOp>(s, k); }

// ---------------------------------------------------------------------------------------------------- attention
// One task per (sequence, head), as two GEMMs of the kernel table: scores = q (scale k)^T, with k copied transposed
// (and scaled) into a per-thread scratch; the bias rows added (Swin's relative positions and shifted-window mask);
// a softmax over each query's row (the table's kernel); then y = p v, v's rows read in place. An image holds one
// sequence, or several (a batch-1 plan stores Swin's windows as one image). The scratch is allocated on a thread's
// first use only.
struct AttentionOp : CpuOp {
  index_t L, H, D, S;              // sequence length, heads, head size, sequences per image
  float scale;
  std::vector<float> bias;         // empty, or `windows` x `bias_heads` x L x L
  index_t windows = 1, bias_heads = 1;
  int x, y;
  const Kernels* k;
  int parallelism(index_t N, int threads) const override {
    return std::min<int>(parts_for(4.0 * N * S * H * L * L * D, kFlopGrain, threads), static_cast<int>(N * S * H));
  }
  void run(const Exec& ex, int part, int parts) const override {
    const TensorView in = ex.at(x), out = ex.at(y);
    thread_local std::vector<float> scratch;
    thread_local std::vector<index_t> rows;
    const index_t need = L * L + D * L;
    if (static_cast<index_t>(scratch.size()) < need) scratch.resize(static_cast<size_t>(need));
    if (static_cast<index_t>(rows.size()) < std::max(L, D)) rows.resize(static_cast<size_t>(std::max(L, D)));
    float* scores = scratch.data();
    float* kt = scores + L * L;
    index_t* off = rows.data();
    const auto [t0, t1] = share(ex.N * S * H, part, parts);
    for (index_t t = t0; t < t1; ++t) {
      const index_t seq = t / H, h = t % H, n = seq / S, s = seq % S;
      const float* q = in.base + n * in.image + s * L * in.stride + h * D;
      const float* kp = q + H * D;
      const float* v = q + 2 * H * D;
      for (index_t j = 0; j < L; ++j)
        for (index_t d = 0; d < D; ++d) kt[d * L + j] = kp[j * in.stride + d] * scale;
      for (index_t d = 0; d < D; ++d) off[d] = d * L;
      k->gemm_rows(D, q, in.stride, nullptr, kt, off, scores, L, L, L, false);
      if (!bias.empty()) {  // window = the sequence's place among `windows` (torch's view (B, windows, ...))
        const float* b = bias.data() + ((seq % windows) * bias_heads + (bias_heads > 1 ? h : 0)) * L * L;
        for (index_t i = 0; i < L * L; ++i) scores[i] += b[i];
      }
      k->softmax(L, scores, L, scores, L, false, 0, L);
      for (index_t j = 0; j < L; ++j) off[j] = j * in.stride;
      k->gemm_rows(L, scores, L, nullptr, v, off, out.base + n * out.image + s * L * out.stride + h * D, out.stride,
                   L, D, false);
    }
  }
};

// ------------------------------------------------------------------------------------------- reduce, where
// A reduction over each pixel's channels, one channel per pixel out. The lowering lays any other reduction out so
// (the reduced axes last, by a gather) or reads a whole image as one pixel (plan/reduction.py).
struct ReduceChannelsOp : CpuOp {
  ReduceOp op;
  index_t pixels, C;
  int x, y;
  int parallelism(index_t N, int threads) const override {
    return parts_for(8.0 * N * pixels * C, kByteGrain, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    const TensorView in = ex.at(x), out = ex.at(y);
    const auto [p0, p1] = share(ex.N * pixels, part, parts);
    for (index_t p = p0; p < p1; ++p) {
      const index_t n = p / pixels, q = p % pixels;
      out.base[n * out.image + q * out.stride] = reduce_run(op, in.base + n * in.image + q * in.stride, C, 1);
    }
  }
};

// y = c != 0 ? a : b, numpy broadcasting over (H, W, C) as the binary ops (a comparison's mask and a constant: the
// divide-no-NaN TensorFlow writes).
struct WhereOp : CpuOp {
  index_t H, W, C;
  int c, a, b, y;
  int parallelism(index_t N, int threads) const override { return parts_for(16.0 * N * H * W * C, kByteGrain, threads); }
  void run(const Exec& ex, int part, int parts) const override {
    const int ids[3] = {c, a, b};
    const TensorView v[3] = {ex.at(c), ex.at(a), ex.at(b)}, out = ex.at(y);
    index_t st[3][4];
    for (int i = 0; i < 3; ++i) BinaryOpNode::strides(ex.plan->tensor(ids[i]), v[i], st[i]);
    const auto [r0, r1] = share(ex.N * H, part, parts);
    for (index_t r = r0; r < r1; ++r) {
      const index_t n = r / H, h = r % H;
      for (index_t w = 0; w < W; ++w)
        for (index_t ch = 0; ch < C; ++ch) {
          auto at = [&](int i) { return v[i].base[n * st[i][0] + h * st[i][1] + w * st[i][2] + ch * st[i][3]]; };
          out.base[n * out.image + (h * W + w) * out.stride + ch] = at(0) != 0.0f ? at(1) : at(2);
        }
    }
  }
};

}  // namespace

int Plan::attention(const std::string& name, int x, index_t heads, float scale, index_t length, const float* bias,
                    index_t windows, index_t bias_heads) {
  const TensorDesc in = tensor(check(x, "x"));
  require(heads >= 1 && in.C % (3 * heads) == 0, "plan.attention: x must hold 3 * heads * D channels");
  const index_t pixels = in.H * in.W, L = length > 0 ? length : pixels;
  require(pixels % L == 0, "plan.attention: the image must hold whole sequences of `length`");
  require(windows >= 1 && (bias_heads == 1 || bias_heads == heads), "plan.attention: bias must be (windows, 1 or "
          "heads, L, L)");
  auto op = std::make_unique<AttentionOp>();
  op->L = L, op->H = heads, op->D = in.C / (3 * heads), op->S = pixels / L, op->scale = scale, op->x = x;
  op->k = kernels_;
  if (bias != nullptr) {
    op->bias.assign(bias, bias + windows * bias_heads * L * L);
    op->windows = windows, op->bias_heads = bias_heads;
  }
  op->y = add_tensor(in.H, in.W, heads * op->D);
  op->flops_per_image = 4.0 * static_cast<double>(op->S * heads * L * L * op->D);
  const int y = op->y;
  finish(std::move(op), name, kind("attention", false), dims(x) + " -> " + dims(y), {x}, {y});
  return y;
}

int Plan::reduce(const std::string& name, int x, ReduceOp op) {
  const TensorDesc in = tensor(check(x, "x"));
  auto o = std::make_unique<ReduceChannelsOp>();
  o->op = op, o->pixels = in.H * in.W, o->C = in.C, o->x = x;
  o->y = add_tensor(in.H, in.W, 1);
  const int y = o->y;
  finish(std::move(o), name, kind("reduce", false), dims(x) + " -> " + dims(y), {x}, {y});
  return y;
}

int Plan::where(const std::string& name, int c, int a, int b) {
  const TensorDesc tc = tensor(check(c, "condition")), ta = tensor(check(a, "a")), tb = tensor(check(b, "b"));
  auto bdim = [](index_t u, index_t v, index_t w) {
    const index_t m = std::max({u, v, w});
    require((u == m || u == 1) && (v == m || v == 1) && (w == m || w == 1), "plan.where: shapes do not broadcast");
    return m;
  };
  auto o = std::make_unique<WhereOp>();
  o->H = bdim(tc.H, ta.H, tb.H), o->W = bdim(tc.W, ta.W, tb.W), o->C = bdim(tc.C, ta.C, tb.C);
  o->c = c, o->a = a, o->b = b;
  o->y = add_tensor(o->H, o->W, o->C);
  const int y = o->y;
  finish(std::move(o), name, kind("where", false), dims(c) + " , " + dims(a) + " , " + dims(b), {c, a, b}, {y});
  return y;
}

std::unique_ptr<PlanOp> Plan::make_op(const step::Any& any) {
  if (const auto* a = std::get_if<step::Affine>(&any))  // its scale and shift are copied into the op
    add_weight_bytes(((a->scale ? a->C : 0) + (a->shift ? a->C : 0)) * 4);
  if (const auto* g = std::get_if<step::GatherChannels>(&any)) add_weight_bytes(g->C * sizeof(index_t));
  if (const auto* l = std::get_if<step::LayerNorm>(&any))
    add_weight_bytes(((l->scale ? l->C : 0) + (l->shift ? l->C : 0)) * 4);
  if (const auto* r = std::get_if<step::Resample>(&any))  // so are a resize's tables
    add_weight_bytes((r->OH * r->taps_h + r->OW * r->taps_w) * static_cast<index_t>(sizeof(index_t) + 4));
  return std::visit([this](const auto& s) { return make(s, kernels_); }, any);
}

}  // namespace convcore
