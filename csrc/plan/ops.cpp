#include "plan/ops.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "core/threads.h"
#include "plan/op_util.h"

namespace convcore {
using namespace planop;
namespace {

// ------------------------------------------------------------------------------------------------ input / output
struct InputOp : PlanOp {
  int y, index;
  index_t C, H, W;
  int parallelism(index_t N, int threads) const override {
    return parts_for(4.0 * N * C * H * W, kByteGrain, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    const Resolved out = ex.at(y);
    const auto [r0, r1] = share(ex.N * H, part, parts);
    for (index_t row = r0; row < r1; ++row) {  // one image row: C planes -> interleaved pixels
      const index_t n = row / H, h = row % H;
      float* yrow = out.base + row * W * out.stride;
      for (index_t c = 0; c < C; ++c) {
        const float* src = ex.inputs[index] + ((n * C + c) * H + h) * W;
        for (index_t w = 0; w < W; ++w) yrow[w * out.stride + c] = src[w];
      }
    }
  }
};

struct OutputOp : PlanOp {
  int x, index;
  bool nchw;
  index_t C, H, W;
  int parallelism(index_t N, int threads) const override {
    return parts_for(4.0 * N * C * H * W, kByteGrain, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    const Resolved in = ex.at(x);
    float* dst = ex.outputs[index];
    const auto [r0, r1] = share(ex.N * H, part, parts);
    for (index_t row = r0; row < r1; ++row) {
      const index_t n = row / H, h = row % H;
      const float* xrow = in.base + n * in.image + h * W * in.stride;
      if (nchw) {
        for (index_t c = 0; c < C; ++c) {
          float* d = dst + ((n * C + c) * H + h) * W;
          for (index_t w = 0; w < W; ++w) d[w] = xrow[w * in.stride + c];
        }
      } else {
        float* d = dst + (n * H + h) * W * C;
        for (index_t w = 0; w < W; ++w) std::memcpy(d + w * C, xrow + w * in.stride, sizeof(float) * C);
      }
    }
  }
};

// ----------------------------------------------------------------------------------------------- convolution
struct ConvOp : PlanOp {
  ConvGeom g;  // N set per run
  ConvPacked packed;
  Epilogue e;
  int x, y, res;
  int scale = -1;  // per image input-channel scale (N x 1 x 1 x C, a squeeze-excitation gate), or -1
  int mask = -1;   // the epilogue's mask tensor (y's shape), or -1
  const PlanKernels* k;
  bool split_blocks;  // threads share the output channel blocks (each reads all the input) rather than the pixels

  int parallelism(index_t N, int threads) const override {
    return parts_for(flops_per_image * N, kFlopGrain, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    ConvGeom geo = g;
    geo.N = ex.N;
    const Resolved in = ex.at(x), out = ex.at(y);
    const Resolved r = res >= 0 ? ex.at(res) : Resolved{nullptr, 0, 0};
    const Resolved mk = mask >= 0 ? ex.at(mask) : Resolved{nullptr, 0, 0};
    const ConvIO io{in.base, in.stride, out.base, out.stride, r.base, r.stride, ex.plan->zeros(), mk.base, mk.stride};
    const index_t blocks = g.groups * packed.t.blocks_per_group, P = geo.pixels();
    if (scale >= 0) return run_scaled(ex, io, part, parts);
    if (split_blocks && parts > 1) {
      const auto [b0, b1] = share(blocks, part, parts);
      if (b0 < b1) k->conv(geo, packed.view(), io, e, 0, P, b0, b1);
    } else {
      const auto [p0, p1] = share(P, part, parts, packed.t.mr);
      if (p0 < p1) k->conv(geo, packed.view(), io, e, p0, p1, 0, blocks);
    }
  }

  // conv(x * s[n, c]) = conv_{w * s[n, c]}(x): the gate multiplies the packed weights of each image (K x C values)
  // instead of every pixel of x (a pass over the whole tensor). The lowering uses it when K < H * W.
  void run_scaled(const Exec& ex, const ConvIO& io, int part, int parts) const {
    thread_local AlignedVector scaled;
    const ConvTile& t = packed.t;
    const index_t blocks = g.groups * t.blocks_per_group, per_image = g.OH * g.OW;
    if (static_cast<index_t>(scaled.size()) < blocks * t.panel) scaled.assign(static_cast<size_t>(blocks * t.panel), 0);
    const Resolved s = ex.at(scale);
    ConvGeom geo = g;
    geo.N = ex.N;
    const auto [p0, p1] = share(ex.N * per_image, part, parts, t.mr);
    for (index_t n = p0 / per_image; n * per_image < p1; ++n) {
      const float* gate = s.base + n * s.image;
      for (index_t b = 0; b < blocks; ++b) {  // panel rows are input channels (one tap: 1x1, one group)
        const float* src = packed.w.data() + b * t.panel;
        float* dst = scaled.data() + b * t.panel;
        for (index_t c = 0; c < g.Cg; ++c)
          for (int j = 0; j < t.nr; ++j) dst[c * t.nr + j] = src[c * t.nr + j] * gate[c];
      }
      const ConvWeights w{t, scaled.data(), packed.bias.data()};
      k->conv(geo, w, io, e, std::max(p0, n * per_image), std::min(p1, (n + 1) * per_image), 0, blocks);
    }
  }
};

struct DwConvOp : PlanOp {
  ConvGeom g;
  AlignedVector w, bias;  // [tap][Cpad], [Cpad]
  Epilogue e;
  int x, y, res, mask = -1;
  const PlanKernels* k;
  int parallelism(index_t N, int threads) const override {
    return parts_for(flops_per_image * N, kFlopGrain / 4, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    ConvGeom geo = g;
    geo.N = ex.N;
    const Resolved in = ex.at(x), out = ex.at(y);
    const Resolved r = res >= 0 ? ex.at(res) : Resolved{nullptr, 0, 0};
    const Resolved mk = mask >= 0 ? ex.at(mask) : Resolved{nullptr, 0, 0};
    const ConvIO io{in.base, in.stride, out.base, out.stride, r.base, r.stride, ex.plan->zeros(), mk.base, mk.stride};
    const auto [r0, r1] = share(ex.N * g.OH, part, parts);
    if (r0 < r1) k->dwconv(geo, w.data(), bias.data(), io, e, r0, r1);
  }
};

// --------------------------------------------------------------------------------------------------- pooling
struct PoolOp : PlanOp {
  PoolGeom g;
  int x, y;
  const PlanKernels* k;
  int parallelism(index_t N, int threads) const override {
    return parts_for(4.0 * N * g.OH * g.OW * g.C * g.kh * g.kw, kByteGrain, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    PoolGeom geo = g;
    geo.N = ex.N;
    const Resolved in = ex.at(x), out = ex.at(y);
    const auto [r0, r1] = share(ex.N * g.OH, part, parts);
    if (r0 < r1) k->pool(geo, in.base, in.stride, out.base, out.stride, r0, r1);
  }
};

struct GlobalPoolOp : PlanOp {
  index_t HW, C;
  bool is_max;
  int x, y;
  const PlanKernels* k;
  int parallelism(index_t N, int threads) const override {
    return parts_for(4.0 * N * HW * C, kByteGrain, std::min<index_t>(threads, N));
  }
  void run(const Exec& ex, int part, int parts) const override {
    const Resolved in = ex.at(x), out = ex.at(y);
    const auto [n0, n1] = share(ex.N, part, parts);
    if (n0 < n1) k->global_pool(HW, C, is_max, in.base, in.stride, out.base, out.stride, n0, n1);
  }
};

struct AdaptivePoolOp : PlanOp {  // the general case (unequal windows): plain loops, rare and small
  index_t H, W, C, OH, OW;
  bool is_max;
  int x, y;
  int parallelism(index_t, int) const override { return 1; }
  void run(const Exec& ex, int, int) const override {
    const Resolved in = ex.at(x), out = ex.at(y);
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
struct AffineOp : PlanOp {
  index_t pixels, C;  // per image
  AlignedVector scale, shift;
  Epilogue e;
  int x, y;
  const PlanKernels* k;
  int parallelism(index_t N, int threads) const override {
    return parts_for(8.0 * N * pixels * C, kByteGrain, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    const Resolved in = ex.at(x), out = ex.at(y);
    const auto [p0, p1] = share(ex.N * pixels, part, parts);
    if (p0 < p1)
      k->affine(C, in.base, in.stride, out.base, out.stride, scale.empty() ? nullptr : scale.data(),
                shift.empty() ? nullptr : shift.data(), e, p0, p1);
  }
};

struct BinaryOpNode : PlanOp {
  BinaryGeom g;  // strides of a and b filled per run
  BinaryOp op;
  Epilogue e;
  int a, b, y;
  const PlanKernels* k;
  int parallelism(index_t N, int threads) const override {
    return parts_for(12.0 * N * g.H * g.W * g.C, kByteGrain, threads);
  }
  static void strides(const TensorDesc& d, const Resolved& r, index_t* s) {
    s[0] = r.image;
    s[1] = d.H > 1 ? d.W * r.stride : 0;
    s[2] = d.W > 1 ? r.stride : 0;
    s[3] = d.C > 1 ? 1 : 0;
  }
  void run(const Exec& ex, int part, int parts) const override {
    BinaryGeom geo = g;
    geo.N = ex.N;
    const Resolved ra = ex.at(a), rb = ex.at(b), out = ex.at(y);
    strides(ex.plan->tensor(a), ra, geo.a_s);
    strides(ex.plan->tensor(b), rb, geo.b_s);
    geo.ys = out.stride;
    const auto [r0, r1] = share(ex.N * g.H, part, parts);
    if (r0 < r1) k->binary(geo, op, ra.base, rb.base, out.base, e, r0, r1);
  }
};

struct CopyOp : PlanOp {
  index_t pixels, C;
  int x, y;
  index_t c0;
  int parallelism(index_t N, int threads) const override {
    return parts_for(8.0 * N * pixels * C, kByteGrain, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    const Resolved in = ex.at(x), out = ex.at(y);
    const auto [p0, p1] = share(ex.N * pixels, part, parts);
    for (index_t p = p0; p < p1; ++p)
      std::memcpy(out.base + p * out.stride + c0, in.base + p * in.stride, sizeof(float) * C);
  }
};

struct SoftmaxOp : PlanOp {  // along channels, per pixel
  index_t pixels, C;
  bool log;
  int x, y;
  int parallelism(index_t, int) const override { return 1; }
  void run(const Exec& ex, int, int) const override {
    const Resolved in = ex.at(x), out = ex.at(y);
    for (index_t p = 0; p < ex.N * pixels; ++p) {
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

struct LrnOp : PlanOp {  // torch's window [c - size/2, c + (size-1)/2] across channels
  index_t pixels, C, size;
  float alpha, beta, k;
  int x, y;
  int parallelism(index_t N, int threads) const override {
    return parts_for(4.0 * N * pixels * C * size, kByteGrain, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    const Resolved in = ex.at(x), out = ex.at(y);
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

struct FlattenOp : PlanOp {  // NHWC -> NCHW order, as one (N, C*H*W) row per image
  index_t H, W, C;
  int x, y;
  int parallelism(index_t, int) const override { return 1; }
  void run(const Exec& ex, int, int) const override {
    const Resolved in = ex.at(x), out = ex.at(y);
    for (index_t n = 0; n < ex.N; ++n) {
      float* d = out.base + n * out.image;
      for (index_t c = 0; c < C; ++c)
        for (index_t p = 0; p < H * W; ++p) d[c * H * W + p] = in.base[n * in.image + p * in.stride + c];
    }
  }
};

// An inverted-residual block in one op: [1x1 expand] -> depthwise -> 1x1 project [+ residual], over stripes of
// output rows. The expanded and depthwise tensors (6x the block's channels in MobileNet-style nets) live only in a
// per-thread scratch of a few stripe rows that stays in L2, instead of making a round trip through memory between
// three ops. Within a thread's rows, expanded rows shared by consecutive stripes are kept (moved to the front of the
// scratch), so only the rows at a thread's boundary are computed twice.
struct MBConvOp : PlanOp {
  bool has_expand, has_project;  // without a project step the depthwise output is the op's output
  ConvGeom ge, gd, gp;  // expand H x W x C -> E; depthwise H x W x E -> OH x OW x E; project OH x OW x E -> K
  ConvPacked pe, pp;
  AlignedVector dw_w, dw_b;
  Epilogue ee, ed, ep;
  int x, y, res;
  index_t stripe;  // output rows per stripe
  const PlanKernels* k;

  static float* shifted(float* base, index_t back) {  // base - back, as the kernels index it (never dereferenced)
    return reinterpret_cast<float*>(reinterpret_cast<std::uintptr_t>(base) - static_cast<std::uintptr_t>(back) * 4);
  }
  index_t expand_rows(index_t rows) const { return (rows - 1) * gd.sh + (gd.R - 1) * gd.dh + 1; }
  index_t scratch_floats() const {
    return (has_expand ? std::min(gd.H, expand_rows(stripe)) * gd.W * gd.C : 0) +
           (has_project ? stripe * gd.OW * gd.C : 0);
  }
  int parallelism(index_t N, int threads) const override {
    return std::min<index_t>(parts_for(flops_per_image * N, kFlopGrain, threads), N * gd.OH);
  }
  void run(const Exec& ex, int part, int parts) const override {
    thread_local AlignedVector scratch;
    if (static_cast<index_t>(scratch.size()) < scratch_floats()) scratch.assign(static_cast<size_t>(scratch_floats()), 0.0f);
    const index_t E = gd.C, H = gd.H, W = gd.W, OH = gd.OH, OW = gd.OW;
    float* se = scratch.data();                                               // expanded rows
    float* sd = se + (has_expand ? std::min(H, expand_rows(stripe)) * W * E : 0);  // depthwise output rows
    const Resolved in = ex.at(x), out = ex.at(y);
    const Resolved r = res >= 0 ? ex.at(res) : Resolved{nullptr, 0, 0};
    ConvGeom geo_e = ge, geo_d = gd, geo_p = gp;
    geo_e.N = geo_d.N = geo_p.N = ex.N;
    const auto [r0, r1] = share(ex.N * OH, part, parts);
    index_t have_n = -1, have_lo = 0, have_hi = 0;  // expanded rows [have_lo, have_hi) of image have_n in se
    for (index_t row = r0; row < r1;) {
      const index_t n = row / OH, oh0 = row % OH, oh1 = std::min(OH, oh0 + std::min(stripe, r1 - row));
      const index_t lo = std::max<index_t>(0, oh0 * gd.sh - gd.pt);
      const index_t hi = std::min(H, (oh1 - 1) * gd.sh - gd.pt + (gd.R - 1) * gd.dh + 1);
      ConvIO dio{nullptr, E, shifted(sd, (n * OH + oh0) * OW * E), E, nullptr, 0, ex.plan->zeros()};
      if (!has_project) dio.y = out.base, dio.ys = out.stride;
      if (has_expand) {
        index_t from = lo;
        if (have_n == n && have_lo <= lo && lo < have_hi) {  // keep the rows this stripe shares with the last
          std::memmove(se, se + (lo - have_lo) * W * E, sizeof(float) * (have_hi - lo) * W * E);
          from = have_hi;
        }
        if (from < hi) {
          const ConvIO eio{in.base, in.stride, shifted(se, (n * H + lo) * W * E), E, nullptr, 0, ex.plan->zeros()};
          k->conv(geo_e, pe.view(), eio, ee, (n * H + from) * W, (n * H + hi) * W, 0, pe.t.blocks_per_group);
        }
        have_n = n, have_lo = lo, have_hi = hi;
        dio.x = shifted(se, (n * H + lo) * W * E);
      } else {
        dio.x = in.base;
        dio.xs = in.stride;
      }
      k->dwconv(geo_d, dw_w.data(), dw_b.data(), dio, ed, n * OH + oh0, n * OH + oh1);
      if (!has_project) {
        row += oh1 - oh0;
        continue;
      }
      const ConvIO pio{shifted(sd, (n * OH + oh0) * OW * E), E, out.base, out.stride, r.base, r.stride,
                       ex.plan->zeros()};
      k->conv(geo_p, pp.view(), pio, ep, (n * OH + oh0) * OW, (n * OH + oh1) * OW, 0, pp.t.blocks_per_group);
      row += oh1 - oh0;
    }
  }
};

struct WinoInputOp : PlanOp {
  WinoGeom g;
  int x, v;
  const PlanKernels* k;
  int parallelism(index_t N, int threads) const override {
    return parts_for(36.0 * 4 * N * g.tiles_h * g.tiles_w * g.C, kByteGrain, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    WinoGeom geo = g;
    geo.N = ex.N;
    const Resolved in = ex.at(x), out = ex.at(v);
    const auto [t0, t1] = share(geo.tiles(), part, parts);
    if (t0 < t1) k->wino_input(geo, in.base, in.stride, out.base, t0, t1);
  }
};

struct WinoOutputOp : PlanOp {
  WinoGeom g;
  AlignedVector bias;  // padded to the lanes
  Epilogue e;
  int m, y, res, mask = -1;
  const PlanKernels* k;
  int parallelism(index_t N, int threads) const override {
    return parts_for(36.0 * 4 * N * g.tiles_h * g.tiles_w * g.K, kByteGrain, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    WinoGeom geo = g;
    geo.N = ex.N;
    const Resolved in = ex.at(m), out = ex.at(y);
    const Resolved r = res >= 0 ? ex.at(res) : Resolved{nullptr, 0, 0};
    const Resolved mk = mask >= 0 ? ex.at(mask) : Resolved{nullptr, 0, 0};
    const auto [t0, t1] = share(geo.tiles(), part, parts);
    if (t0 < t1)
      k->wino_output(geo, in.base, bias.data(), out.base, out.stride, r.base, r.stride, mk.base, mk.stride, e, t0, t1);
  }
};


void check_epilogue(const Epilogue& e) {
  require(static_cast<int>(e.act) >= 0 && static_cast<int>(e.act) <= static_cast<int>(Act::hardsigmoid),
          "plan: unknown activation");
}

const char* act_name(Act a) {
  switch (a) {
    case Act::none: return "";
    case Act::clamp: return "+clamp";
    case Act::leaky_relu: return "+leaky_relu";
    case Act::sigmoid: return "+sigmoid";
    case Act::silu: return "+silu";
    case Act::tanh: return "+tanh";
    case Act::hardswish: return "+hardswish";
    case Act::hardsigmoid: return "+hardsigmoid";
  }
  return "";
}

}  // namespace

int Plan::add_input(index_t C, index_t H, index_t W) {
  require(ops_.size() == inputs_.size(), "plan: inputs must be added before other ops");
  require(C >= 1 && H >= 1 && W >= 1, "plan: input dims must be positive");
  const int y = add_tensor(H, W, C);
  auto op = std::make_unique<InputOp>();
  op->name = "input" + std::to_string(inputs_.size()), op->kind = "nchw_to_nhwc", op->detail = dims(tensor(y));
  op->y = y, op->index = static_cast<int>(inputs_.size()), op->C = C, op->H = H, op->W = W;
  inputs_.push_back(y);
  op->writes = {y};
  add_op(std::move(op));
  return y;
}

void Plan::add_output(int t, bool nchw) {
  const TensorDesc& d = tensor(t);
  require(d.constant < 0, "plan: an output must be computed");
  auto op = std::make_unique<OutputOp>();
  op->name = "output" + std::to_string(outputs_.size());
  op->kind = nchw ? "nhwc_to_nchw" : "copy_out";
  op->detail = dims(d);
  op->x = t, op->index = static_cast<int>(outputs_.size()), op->nchw = nchw;
  op->C = d.C, op->H = d.H, op->W = d.W;
  op->reads = {t};
  add_op(std::move(op));
  outputs_.emplace_back(t, nchw);
}

namespace {

// Packs OIHW weights (K, Cg, R, S) for the register tile of this ISA (see ConvPacked).
ConvPacked pack_igemm(const PlanKernels& k, const ConvGeom& g, const float* w, const float* bias) {
  ConvPacked pk;
  const index_t taps = g.R * g.S;
  k.conv_tile(g.Kg, g.Cg, taps, pk.t);
  pk.t.blocks_per_group = ceil_div(g.Kg, pk.t.nr);
  const index_t blocks = g.groups * pk.t.blocks_per_group;
  pk.t.panel = taps * g.Cg * pk.t.nr;
  pk.w.assign(static_cast<size_t>(blocks * pk.t.panel), 0.0f);
  pk.bias.assign(static_cast<size_t>(blocks * pk.t.nr), 0.0f);
  for (index_t b = 0; b < blocks; ++b) {
    const index_t grp = b / pk.t.blocks_per_group, kb = b % pk.t.blocks_per_group;
    float* panel = pk.w.data() + b * pk.t.panel;
    const index_t jn = std::min<index_t>(pk.t.nr, g.Kg - kb * pk.t.nr);
    for (index_t j = 0; j < jn; ++j) {
      const index_t oc = grp * g.Kg + kb * pk.t.nr + j;
      if (bias) pk.bias[static_cast<size_t>(b * pk.t.nr + j)] = bias[oc];
    }
    // A blocked transpose: 64 input channels of every output channel of the block at a time, so reads run along
    // the weight rows and writes stay within a few KB (large FC layers pack 10x faster than column by column).
    for (index_t c0 = 0; c0 < g.Cg; c0 += 64) {
      const index_t c1 = std::min(g.Cg, c0 + 64);
      for (index_t j = 0; j < jn; ++j) {
        const float* src = w + (grp * g.Kg + kb * pk.t.nr + j) * g.Cg * taps;
        for (index_t c = c0; c < c1; ++c)
          for (index_t t = 0; t < taps; ++t) panel[(t * g.Cg + c) * pk.t.nr + j] = src[c * taps + t];
      }
    }
  }
  return pk;
}

// Depthwise weights (C, 1, R, S) as [tap][C padded to the lanes] and the bias padded the same way.
void pack_depthwise(const PlanKernels& k, index_t C, index_t taps, const float* w, const float* bias,
                    AlignedVector& wp, AlignedVector& bp) {
  const index_t Cp = ceil_div(C, k.lanes) * k.lanes;
  wp.assign(static_cast<size_t>(taps * Cp), 0.0f);
  bp.assign(static_cast<size_t>(Cp), 0.0f);
  for (index_t c = 0; c < C; ++c) {
    for (index_t t = 0; t < taps; ++t) wp[static_cast<size_t>(t * Cp + c)] = w[c * taps + t];
    if (bias) bp[static_cast<size_t>(c)] = bias[c];
  }
}

// Adds the IGEMM op computing y = conv(x) with packed weights.
void add_igemm(Plan& p, const std::string& name, int x, int y, const ConvGeom& g, const float* w, const float* bias,
               const Epilogue& e, int residual, const std::string& detail, double flops, int scale = -1,
               int mask = -1) {
  const PlanKernels& k = p.kernels();
  auto op = std::make_unique<ConvOp>();
  op->packed = pack_igemm(k, g, w, bias);
  const ConvPacked& pk = op->packed;
  const index_t taps = g.R * g.S, blocks = g.groups * pk.t.blocks_per_group;
  p.add_weight_bytes(static_cast<index_t>(pk.w.size() + pk.bias.size()) * 4);
  // Split output channels between threads when the weights outweigh the input (late layers, FC); else pixels.
  const double weight_bytes = 4.0 * g.K * g.Cg * taps, input_bytes = 4.0 * g.H * g.W * g.C;
  op->split_blocks = blocks >= 8 && weight_bytes > input_bytes;
  op->g = g, op->e = e, op->x = x, op->y = y, op->res = residual, op->scale = scale, op->mask = mask, op->k = &k;
  op->name = name;
  op->kind = std::string(k.isa) + "_conv_" + std::to_string(pk.t.mr) + "x" + std::to_string(pk.t.nr);
  op->detail = detail + (scale >= 0 ? " *gate" : ""), op->flops_per_image = flops;
  op->reads = {x};
  if (residual >= 0) op->reads.push_back(residual);
  if (scale >= 0) op->reads.push_back(scale);
  if (mask >= 0) op->reads.push_back(mask);
  op->writes = {y};
  add(p, std::move(op));
}

// Winograd F(4x4, 3x3): input transform -> 36 GEMMs as one grouped 1x1 convolution -> output transform with the
// epilogue. The filters are transformed once here, in double precision: U = G g G^T.
int add_winograd(Plan& p, const std::string& name, int x, int y, const ConvSpec& s, const ConvGeom& g,
                 const float* w, const float* bias, const Epilogue& e, int residual, const std::string& detail,
                 int mask) {
  static constexpr double G[6][3] = {{1.0 / 4, 0, 0},           {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                     {-1.0 / 6, 1.0 / 6, -1.0 / 6}, {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                     {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1}};
  const PlanKernels& k = p.kernels();
  const index_t C = g.C, K = g.K;
  WinoGeom wg{0, g.H, g.W, C, K, g.OH, g.OW, g.pt, g.pl, ceil_div(g.OH, 4), ceil_div(g.OW, 4)};
  const index_t tiles = wg.tiles_h * wg.tiles_w;
  const int v = p.add_tensor(1, tiles, 36 * C), m = p.add_tensor(1, tiles, 36 * K);
  std::vector<float> u(static_cast<size_t>(36 * K * C));  // (36 * K, C, 1, 1): group xi = position xi
  for (index_t oc = 0; oc < K; ++oc)
    for (index_t c = 0; c < C; ++c) {
      const float* f = w + (oc * C + c) * 9;
      double gg[6][3];
      for (int i = 0; i < 6; ++i)
        for (int j = 0; j < 3; ++j) gg[i][j] = G[i][0] * f[j] + G[i][1] * f[3 + j] + G[i][2] * f[6 + j];
      for (int i = 0; i < 6; ++i)
        for (int j = 0; j < 6; ++j)
          u[static_cast<size_t>(((i * 6 + j) * K + oc) * C + c)] =
              static_cast<float>(gg[i][0] * G[j][0] + gg[i][1] * G[j][1] + gg[i][2] * G[j][2]);
    }
  auto in = std::make_unique<WinoInputOp>();
  in->g = wg, in->x = x, in->v = v, in->k = &k;
  in->name = name, in->kind = std::string(k.isa) + "_winograd_input", in->detail = detail;
  in->reads = {x}, in->writes = {v};
  add(p, std::move(in));
  const ConvGeom gemm{0, 1, tiles, 36 * C, 1, tiles, 36 * K, 1, 1, 1, 1, 1, 1, 0, 0, 36, C, K};
  add_igemm(p, name, v, m, gemm, u.data(), nullptr, Epilogue{}, -1, detail, 2.0 * 36 * tiles * C * K);
  p.back_op().kind += " (winograd 36 x GEMM)";
  auto out = std::make_unique<WinoOutputOp>();
  out->g = wg, out->m = m, out->y = y, out->res = residual, out->mask = mask, out->e = e, out->k = &k;
  out->bias.assign(static_cast<size_t>(ceil_div(K, k.lanes) * k.lanes), 0.0f);
  if (bias) std::copy(bias, bias + K, out->bias.begin());
  out->name = name, out->kind = std::string(k.isa) + "_winograd_output", out->detail = detail;
  out->reads = {m};
  if (residual >= 0) out->reads.push_back(residual);
  if (mask >= 0) out->reads.push_back(mask);
  out->writes = {y};
  add(p, std::move(out));
  return y;
}

}  // namespace

bool winograd_eligible(const ConvSpec& s) {
  return s.R == 3 && s.S == 3 && s.sh == 1 && s.sw == 1 && s.dh == 1 && s.dw == 1 && s.groups == 1;
}

int plan_conv(Plan& p, const std::string& name, int x, const ConvSpec& s, const float* w, const float* bias,
              const Epilogue& e, int residual, ConvAlgo algo, int scale, int mask) {
  check_epilogue(e);
  const TensorDesc in = p.tensor(x);
  require(s.groups >= 1 && in.C % s.groups == 0 && s.K % s.groups == 0 && s.C * s.groups == in.C,
          "plan.conv: weight channels do not match the input and groups");
  require(s.R >= 1 && s.S >= 1 && s.sh >= 1 && s.sw >= 1 && s.dh >= 1 && s.dw >= 1, "plan.conv: bad kernel geometry");
  require(s.pt >= 0 && s.pb >= 0 && s.pl >= 0 && s.pr >= 0, "plan.conv: negative padding");
  const index_t OH = (in.H + s.pt + s.pb - s.dh * (s.R - 1) - 1) / s.sh + 1;
  const index_t OW = (in.W + s.pl + s.pr - s.dw * (s.S - 1) - 1) / s.sw + 1;
  require(in.H + s.pt + s.pb >= s.dh * (s.R - 1) + 1 && in.W + s.pl + s.pr >= s.dw * (s.S - 1) + 1,
          "plan.conv: the kernel is larger than the padded input");
  const int y = p.add_tensor(OH, OW, s.K);
  if (residual >= 0) {
    const TensorDesc& r = p.tensor(residual);
    require(r.H == OH && r.W == OW && r.C == s.K && r.constant < 0, "plan.conv: the residual must have y's shape");
  }
  if (mask >= 0) {
    const TensorDesc& m = p.tensor(mask);
    require(m.H == OH && m.W == OW && m.C == s.K && m.constant < 0, "plan.conv: the mask must have y's shape");
  }
  ConvGeom g{0, in.H, in.W, in.C, OH, OW, s.K, s.R, s.S, s.sh, s.sw, s.dh, s.dw, s.pt, s.pl,
             s.groups, in.C / s.groups, s.K / s.groups};
  const PlanKernels& k = p.kernels();
  p.reserve_zeros(in.C + 64);
  const double flops = 2.0 * OH * OW * s.K * g.Cg * s.R * s.S;
  const bool depthwise = s.groups == in.C && s.groups == s.K && s.groups > 1;
  if (algo == ConvAlgo::automatic) algo = depthwise && scale < 0 ? ConvAlgo::depthwise : ConvAlgo::igemm;
  require(mask < 0 || scale < 0, "plan.conv: a mask and an input gate together are not supported");
  require(algo != ConvAlgo::depthwise || depthwise, "plan.conv: the depthwise kernel needs groups == C == K");
  require(algo != ConvAlgo::winograd || winograd_eligible(s),
          "plan.conv: winograd needs a 3x3, stride 1, undilated, ungrouped convolution");
  const std::string detail = dims(in) + " -> " + dims(p.tensor(y)) + " k" + std::to_string(s.R) + "x" +
                             std::to_string(s.S) + " s" + std::to_string(s.sh) +
                             (s.groups > 1 ? " g" + std::to_string(s.groups) : "") + (residual >= 0 ? " +res" : "") +
                             act_name(e.act);
  if (algo == ConvAlgo::depthwise) {
    auto op = std::make_unique<DwConvOp>();
    const index_t Cp = ceil_div(in.C, k.lanes) * k.lanes, taps = s.R * s.S;
    pack_depthwise(k, in.C, taps, w, bias, op->w, op->bias);
    p.add_weight_bytes((taps + 1) * Cp * 4);
    op->g = g, op->e = e, op->x = x, op->y = y, op->res = residual, op->mask = mask, op->k = &k;
    op->name = name, op->kind = std::string(k.isa) + "_dwconv", op->detail = detail + (mask >= 0 ? " +mask" : "");
    op->flops_per_image = flops;
    op->reads = {x};
    if (residual >= 0) op->reads.push_back(residual);
    if (mask >= 0) op->reads.push_back(mask);
    op->writes = {y};
    add(p, std::move(op));
    return y;
  }
  if (scale >= 0) {
    const TensorDesc& sd = p.tensor(scale);
    require(algo == ConvAlgo::igemm && s.R == 1 && s.S == 1 && s.groups == 1 && sd.H == 1 && sd.W == 1 &&
                sd.C == in.C && sd.constant < 0,
            "plan.conv: an input gate needs a 1x1 ungrouped convolution and a computed (N, C, 1, 1) gate");
  }
  if (algo == ConvAlgo::winograd) return add_winograd(p, name, x, y, s, g, w, bias, e, residual, detail, mask);
  add_igemm(p, name, x, y, g, w, bias, e, residual, detail + (mask >= 0 ? " +mask" : ""), flops, scale, mask);
  return y;
}

int plan_pool(Plan& p, const std::string& name, int x, bool is_max, index_t kh, index_t kw, index_t sh, index_t sw,
              index_t dh, index_t dw, index_t pt, index_t pb, index_t pl, index_t pr, index_t OH, index_t OW,
              bool count_include_pad) {
  const TensorDesc in = p.tensor(x);
  require(kh >= 1 && kw >= 1 && sh >= 1 && sw >= 1 && dh >= 1 && dw >= 1 && OH >= 1 && OW >= 1,
          "plan.pool: bad window geometry");
  require(pt >= 0 && pb >= 0 && pl >= 0 && pr >= 0, "plan.pool: negative padding");
  require((OH - 1) * sh < in.H + pt && (OW - 1) * sw < in.W + pl, "plan.pool: output larger than the input allows");
  const int y = p.add_tensor(OH, OW, in.C);
  auto op = std::make_unique<PoolOp>();
  op->g = PoolGeom{0, in.H, in.W, in.C, OH, OW, kh, kw, sh, sw, dh, dw, pt, pb, pl, pr, is_max, count_include_pad};
  op->x = x, op->y = y, op->k = &p.kernels();
  op->name = name, op->kind = std::string(p.kernels().isa) + (is_max ? "_maxpool" : "_avgpool");
  op->detail = dims(in) + " -> " + dims(p.tensor(y)) + " k" + std::to_string(kh) + "x" + std::to_string(kw) + " s" +
               std::to_string(sh);
  op->reads = {x}, op->writes = {y};
  add(p, std::move(op));
  return y;
}

int plan_global_pool(Plan& p, const std::string& name, int x, bool is_max) {
  const TensorDesc in = p.tensor(x);
  const int y = p.add_tensor(1, 1, in.C);
  auto op = std::make_unique<GlobalPoolOp>();
  op->HW = in.H * in.W, op->C = in.C, op->is_max = is_max, op->x = x, op->y = y, op->k = &p.kernels();
  op->name = name, op->kind = std::string(p.kernels().isa) + (is_max ? "_global_maxpool" : "_global_avgpool");
  op->detail = dims(in) + " -> " + dims(p.tensor(y));
  op->reads = {x}, op->writes = {y};
  add(p, std::move(op));
  return y;
}

int plan_adaptive_pool(Plan& p, const std::string& name, int x, bool is_max, index_t OH, index_t OW) {
  const TensorDesc in = p.tensor(x);
  require(OH >= 1 && OW >= 1, "plan.adaptive_pool: output size must be positive");
  const int y = p.add_tensor(OH, OW, in.C);
  auto op = std::make_unique<AdaptivePoolOp>();
  op->H = in.H, op->W = in.W, op->C = in.C, op->OH = OH, op->OW = OW, op->is_max = is_max, op->x = x, op->y = y;
  op->name = name, op->kind = is_max ? "adaptive_maxpool" : "adaptive_avgpool";
  op->detail = dims(in) + " -> " + dims(p.tensor(y));
  op->reads = {x}, op->writes = {y};
  add(p, std::move(op));
  return y;
}

int plan_affine(Plan& p, const std::string& name, int x, const float* scale, const float* shift, const Epilogue& e) {
  check_epilogue(e);
  const TensorDesc in = p.tensor(x);
  const int y = p.add_tensor(in.H, in.W, in.C);
  auto op = std::make_unique<AffineOp>();
  op->pixels = in.H * in.W, op->C = in.C, op->e = e, op->x = x, op->y = y, op->k = &p.kernels();
  if (scale) op->scale.assign(scale, scale + in.C);
  if (shift) op->shift.assign(shift, shift + in.C);
  op->name = name;
  op->kind = std::string(p.kernels().isa) + (scale || shift ? "_scale_shift" : "_activation") + act_name(e.act);
  op->detail = dims(in);
  op->reads = {x}, op->writes = {y};
  add(p, std::move(op));
  return y;
}

int plan_binary(Plan& p, const std::string& name, int a, int b, BinaryOp bop, const Epilogue& e) {
  check_epilogue(e);
  const TensorDesc ta = p.tensor(a), tb = p.tensor(b);
  auto bdim = [](index_t u, index_t v) {
    require(u == v || u == 1 || v == 1, "plan.binary: shapes do not broadcast");
    return std::max(u, v);
  };
  const index_t H = bdim(ta.H, tb.H), W = bdim(ta.W, tb.W), C = bdim(ta.C, tb.C);
  require(ta.constant < 0 || tb.constant < 0, "plan.binary: at least one operand must be computed");
  const int y = p.add_tensor(H, W, C);
  auto op = std::make_unique<BinaryOpNode>();
  op->g = BinaryGeom{0, H, W, C, {0, 0, 0, 0}, {0, 0, 0, 0}, 0};
  op->op = bop, op->e = e, op->a = a, op->b = b, op->y = y, op->k = &p.kernels();
  static const char* names[] = {"_add", "_mul", "_sub", "_div", "_max", "_min"};
  op->name = name;
  op->kind = std::string(p.kernels().isa) + names[static_cast<int>(bop)] + act_name(e.act);
  op->detail = dims(ta) + " , " + dims(tb);
  op->reads = {a, b}, op->writes = {y};
  add(p, std::move(op));
  return y;
}

void plan_copy_into(Plan& p, const std::string& name, int x, int y, index_t c0) {
  const TensorDesc in = p.tensor(x), out = p.tensor(y);
  require(in.H == out.H && in.W == out.W && c0 >= 0 && c0 + in.C <= out.C, "plan.copy_into: the slice does not fit");
  auto op = std::make_unique<CopyOp>();
  op->pixels = in.H * in.W, op->C = in.C, op->x = x, op->y = y, op->c0 = c0;
  op->name = name, op->kind = "copy_channels", op->detail = dims(in) + " -> " + dims(out);
  op->reads = {x}, op->writes = {y};
  add(p, std::move(op));
}

int plan_softmax(Plan& p, const std::string& name, int x, bool log) {
  const TensorDesc in = p.tensor(x);
  const int y = p.add_tensor(in.H, in.W, in.C);
  auto op = std::make_unique<SoftmaxOp>();
  op->pixels = in.H * in.W, op->C = in.C, op->log = log, op->x = x, op->y = y;
  op->name = name, op->kind = log ? "log_softmax" : "softmax", op->detail = dims(in);
  op->reads = {x}, op->writes = {y};
  add(p, std::move(op));
  return y;
}

int plan_lrn(Plan& p, const std::string& name, int x, index_t size, float alpha, float beta, float k) {
  const TensorDesc in = p.tensor(x);
  require(size >= 1, "plan.lrn: size must be >= 1");
  const int y = p.add_tensor(in.H, in.W, in.C);
  auto op = std::make_unique<LrnOp>();
  op->pixels = in.H * in.W, op->C = in.C, op->size = size, op->alpha = alpha, op->beta = beta, op->k = k;
  op->x = x, op->y = y;
  op->name = name, op->kind = "lrn", op->detail = dims(in);
  op->reads = {x}, op->writes = {y};
  add(p, std::move(op));
  return y;
}

int plan_flatten_nchw(Plan& p, const std::string& name, int x) {
  const TensorDesc in = p.tensor(x);
  const int y = p.add_tensor(1, 1, in.H * in.W * in.C);
  auto op = std::make_unique<FlattenOp>();
  op->H = in.H, op->W = in.W, op->C = in.C, op->x = x, op->y = y;
  op->name = name, op->kind = "flatten_nchw", op->detail = dims(in);
  op->reads = {x}, op->writes = {y};
  add(p, std::move(op));
  return y;
}


int plan_mbconv(Plan& p, const std::string& name, int x, const float* we, const float* be, index_t E,
                const Epilogue& ee, const ConvSpec& dw, const float* wd, const float* bd, const Epilogue& ed,
                const float* wp, const float* bp, index_t K, const Epilogue& ep, int residual) {
  check_epilogue(ee), check_epilogue(ed), check_epilogue(ep);
  const TensorDesc in = p.tensor(x);
  const bool has_expand = we != nullptr, has_project = wp != nullptr;
  if (!has_expand) E = in.C;
  if (!has_project) K = E;
  require(has_expand || has_project, "plan.mbconv: expected an expand or a project step");
  require(E >= 1 && K >= 1 && dw.K == E && dw.C == 1 && dw.groups == E, "plan.mbconv: inconsistent channel counts");
  require(dw.R >= 1 && dw.S >= 1 && dw.sh >= 1 && dw.sw >= 1 && dw.dh >= 1 && dw.dw >= 1 && dw.pt >= 0 &&
              dw.pb >= 0 && dw.pl >= 0 && dw.pr >= 0,
          "plan.mbconv: bad depthwise geometry");
  const index_t OH = (in.H + dw.pt + dw.pb - dw.dh * (dw.R - 1) - 1) / dw.sh + 1;
  const index_t OW = (in.W + dw.pl + dw.pr - dw.dw * (dw.S - 1) - 1) / dw.sw + 1;
  require(in.H + dw.pt + dw.pb >= dw.dh * (dw.R - 1) + 1 && in.W + dw.pl + dw.pr >= dw.dw * (dw.S - 1) + 1,
          "plan.mbconv: the kernel is larger than the padded input");
  const int y = p.add_tensor(OH, OW, K);
  if (residual >= 0) {
    const TensorDesc& r = p.tensor(residual);
    require(r.H == OH && r.W == OW && r.C == K && r.constant < 0, "plan.mbconv: the residual must have y's shape");
  }
  const PlanKernels& k = p.kernels();
  auto op = std::make_unique<MBConvOp>();
  op->has_expand = has_expand, op->has_project = has_project;
  op->ge = ConvGeom{0, in.H, in.W, in.C, in.H, in.W, E, 1, 1, 1, 1, 1, 1, 0, 0, 1, in.C, E};
  op->gd = ConvGeom{0, in.H, in.W, E, OH, OW, E, dw.R, dw.S, dw.sh, dw.sw, dw.dh, dw.dw, dw.pt, dw.pl, E, 1, 1};
  op->gp = ConvGeom{0, OH, OW, E, OH, OW, K, 1, 1, 1, 1, 1, 1, 0, 0, 1, E, K};
  if (has_expand) op->pe = pack_igemm(k, op->ge, we, be);
  if (has_project) op->pp = pack_igemm(k, op->gp, wp, bp);
  pack_depthwise(k, E, dw.R * dw.S, wd, bd, op->dw_w, op->dw_b);
  p.add_weight_bytes(static_cast<index_t>(op->pe.w.size() + op->pp.w.size() + op->dw_w.size()) * 4);
  op->ee = ee, op->ed = ed, op->ep = ep, op->x = x, op->y = y, op->res = residual, op->k = &k;
  // The largest stripe whose scratch stays within ~384 KB (in L2 on every current x86 core).
  op->stripe = 1;
  while (op->stripe < OH) {
    ++op->stripe;
    if (op->scratch_floats() * 4 > (384 << 10)) {
      --op->stripe;
      break;
    }
  }
  const double flops = 2.0 * (has_expand ? in.H * in.W * in.C * E : 0) + 2.0 * OH * OW * E * dw.R * dw.S +
                       (has_project ? 2.0 * OH * OW * E * K : 0.0);
  op->name = name, op->kind = std::string(k.isa) + "_mbconv", op->flops_per_image = flops;
  op->detail = dims(in) + " -> " + std::to_string(E) + " k" + std::to_string(dw.R) + "x" + std::to_string(dw.S) +
               " s" + std::to_string(dw.sh) + " -> " + dims(p.tensor(y)) + " (" + std::to_string(op->stripe) +
               "-row stripes)" + (residual >= 0 ? " +res" : "");
  op->reads = {x};
  if (residual >= 0) op->reads.push_back(residual);
  op->writes = {y};
  add(p, std::move(op));
  return y;
}

}  // namespace convcore
