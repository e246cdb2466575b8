// The GPU Plan's ops: each fills its kernel's argument struct (cuda/kernels.h) from the run's tensors and launches it
// on the plan's stream. The builder hooks below create them; the checks and shapes are the shared builder's.
#include <type_traits>

#include "cuda/plan.h"

namespace convcore::cuda {
namespace {

// Each op keeps its step (plan/builder.h); make(plan, step) after each builds it (Plan::make_op picks by type).
template <class Op, class Step>
std::unique_ptr<PlanOp> make(Plan& p, const Step& s) {
  if constexpr (std::is_constructible_v<Op, Plan&, const Step&>) return std::make_unique<Op>(p, s);
  else return std::make_unique<Op>(s);
}

struct InputOp : GpuOp {
  step::Input s;
  explicit InputOp(const step::Input& s) : s(s) {}
  void run(const Exec& ex) const override {
    const TensorView out = ex.at(s.y);
    if (s.nhwc)
      launch_copy_channels(ex.inputs[s.index], s.C, out.base, out.stride, ex.N * s.H * s.W, s.C, ex.stream);
    else
      launch_nchw_to_nhwc(ex.inputs[s.index], out.base, out.stride, ex.N, s.C, s.H, s.W, ex.stream);
  }
};
std::unique_ptr<PlanOp> make(Plan& p, const step::Input& s) { return make<InputOp>(p, s); }

struct OutputOp : GpuOp {
  step::Output s;
  explicit OutputOp(const step::Output& s) : s(s) {}
  void run(const Exec& ex) const override {
    const TensorView in = ex.at(s.x);
    launch_nhwc_to_output(in.base, in.stride, ex.outputs[s.index], ex.N, s.C, s.H, s.W, s.nchw, ex.stream);
  }
};
std::unique_ptr<PlanOp> make(Plan& p, const step::Output& s) { return make<OutputOp>(p, s); }

const char* precision_name(Precision p) {
  return p == Precision::fp32 ? "f32" : p == Precision::tf32 ? "tf32" : "bf16";
}

// The tensors an op reads besides its input, filled per run (null and 0 when absent).
void residual_at(const Exec& ex, int res, const float*& base, index_t& stride) {
  if (res < 0) {
    base = nullptr, stride = 0;
    return;
  }
  const TensorView r = ex.at(res);
  base = r.base, stride = r.stride;
}

struct ConvOp : GpuOp {
  ConvArgs args;  // pointers to x / y / res filled per run
  int x, y, res;
  Precision precision;
  int sms;
  ConvArgs at(const Exec& ex) const {
    ConvArgs a = args;
    a.N = ex.N;
    const TensorView in = ex.at(x), out = ex.at(y);
    a.x = in.base, a.xs = in.stride, a.y = out.base, a.ys = out.stride;
    residual_at(ex, res, a.res, a.rs);
    return a;
  }
  ConvLaunch choice(index_t N) const {
    ConvArgs a = args;
    a.N = N;
    return plan_conv_launch(a, precision, sms);
  }
  void run(const Exec& ex) const override {
    const ConvArgs a = at(ex);
    launch_conv(a, plan_conv_launch(a, precision, sms), ex.workspace, ex.stream);
  }
  index_t workspace_floats(index_t N) const override { return choice(N).workspace_floats; }
  std::string kernel(index_t N) const override {
    const ConvLaunch l = choice(N);
    return std::string(l.name) + (l.splits > 1 ? " split-k " + std::to_string(l.splits) : "");
  }
};

struct DwConvOp : GpuOp {
  DwArgs args;
  int x, y, res;
  void run(const Exec& ex) const override {
    DwArgs a = args;
    a.N = ex.N;
    const TensorView in = ex.at(x), out = ex.at(y);
    a.x = in.base, a.xs = in.stride, a.y = out.base, a.ys = out.stride;
    residual_at(ex, res, a.res, a.rs);
    launch_dwconv(a, ex.stream);
  }
};

struct PoolOp : GpuOp {
  PoolArgs args;  // pointers filled per run
  int x, y;
  explicit PoolOp(const step::Pool& s) : x(s.x), y(s.y) {
    const PoolGeom& g = s.g;
    args = PoolArgs{nullptr, 0,    nullptr, 0,    0,    g.H,  g.W,  g.C,  g.OH,     g.OW,
                    g.kh,    g.kw, g.sh,    g.sw, g.dh, g.dw, g.pt, g.pb, g.pl,     g.pr,
                    g.is_max, g.count_include_pad};
  }
  void run(const Exec& ex) const override {
    PoolArgs a = args;
    a.N = ex.N;
    const TensorView in = ex.at(x), out = ex.at(y);
    a.x = in.base, a.xs = in.stride, a.y = out.base, a.ys = out.stride;
    launch_pool(a, ex.stream);
  }
};
std::unique_ptr<PlanOp> make(Plan& p, const step::Pool& s) { return make<PoolOp>(p, s); }

struct GlobalPoolOp : GpuOp {
  step::GlobalPool s;
  explicit GlobalPoolOp(const step::GlobalPool& s) : s(s) {}
  void run(const Exec& ex) const override {
    const TensorView in = ex.at(s.x), out = ex.at(s.y);
    launch_global_pool(in.base, in.stride, out.base, out.stride, ex.N, s.HW, s.C, s.is_max, ex.stream);
  }
};
std::unique_ptr<PlanOp> make(Plan& p, const step::GlobalPool& s) { return make<GlobalPoolOp>(p, s); }

struct AdaptivePoolOp : GpuOp {
  step::AdaptivePool s;
  explicit AdaptivePoolOp(const step::AdaptivePool& s) : s(s) {}
  void run(const Exec& ex) const override {
    const TensorView in = ex.at(s.x), out = ex.at(s.y);
    launch_adaptive_pool(in.base, in.stride, out.base, out.stride, ex.N, s.H, s.W, s.C, s.OH, s.OW, s.is_max,
                         ex.stream);
  }
};
std::unique_ptr<PlanOp> make(Plan& p, const step::AdaptivePool& s) { return make<AdaptivePoolOp>(p, s); }

std::vector<float> copy_of(const float* p, index_t n) {
  return p ? std::vector<float>(p, p + n) : std::vector<float>();
}

struct AffineOp : GpuOp {
  step::Affine s;  // scale / shift: device copies
  AffineOp(Plan& p, const step::Affine& st) : s(st) {
    s.scale = p.upload(copy_of(st.scale, st.C));
    s.shift = p.upload(copy_of(st.shift, st.C));
  }
  void run(const Exec& ex) const override {
    const TensorView in = ex.at(s.x), out = ex.at(s.y);
    launch_affine(in.base, in.stride, out.base, out.stride, ex.N * s.pixels, s.C, s.scale, s.shift, s.e, ex.stream);
  }
};
std::unique_ptr<PlanOp> make(Plan& p, const step::Affine& s) { return make<AffineOp>(p, s); }

struct BinaryOpNode : GpuOp {
  step::Binary s;
  explicit BinaryOpNode(const step::Binary& s) : s(s) {}
  static void strides(const TensorDesc& d, const TensorView& v, index_t* st) {
    st[0] = v.image;
    st[1] = d.H > 1 ? d.W * v.stride : 0;
    st[2] = d.W > 1 ? v.stride : 0;
    st[3] = d.C > 1 ? 1 : 0;
  }
  void run(const Exec& ex) const override {
    BinaryArgs g{};
    g.N = ex.N, g.H = s.H, g.W = s.W, g.C = s.C, g.op = s.op, g.e = s.e;
    const TensorView va = ex.at(s.a), vb = ex.at(s.b), out = ex.at(s.y);
    strides(ex.plan->tensor(s.a), va, g.as);
    strides(ex.plan->tensor(s.b), vb, g.bs);
    g.a = va.base, g.b = vb.base, g.y = out.base, g.ys = out.stride;
    launch_binary(g, ex.stream);
  }
};
std::unique_ptr<PlanOp> make(Plan& p, const step::Binary& s) { return make<BinaryOpNode>(p, s); }

struct CopyOp : GpuOp {
  step::Copy s;
  explicit CopyOp(const step::Copy& s) : s(s) {}
  void run(const Exec& ex) const override {
    const TensorView in = ex.at(s.x), out = ex.at(s.y);
    if (in.image == 0) {  // a constant: the same for every image
      for (index_t n = 0; n < ex.N; ++n)
        launch_copy_channels(in.base, in.stride, out.base + n * out.image + s.c0, out.stride, s.pixels, s.C,
                             ex.stream);
      return;
    }
    launch_copy_channels(in.base, in.stride, out.base + s.c0, out.stride, ex.N * s.pixels, s.C, ex.stream);
  }
};
std::unique_ptr<PlanOp> make(Plan& p, const step::Copy& s) { return make<CopyOp>(p, s); }

struct CopyPixelsOp : GpuOp {
  step::CopyPixels s;
  explicit CopyPixelsOp(const step::CopyPixels& s) : s(s) {}
  void run(const Exec& ex) const override {
    const TensorView in = ex.at(s.x), out = ex.at(s.y);
    for (index_t n = 0; n < ex.N; ++n)  // image by image: x and y differ in pixels per image
      launch_copy_channels(in.base + n * in.image, in.stride, out.base + n * out.image + s.p0 * out.stride,
                           out.stride, s.pixels, s.C, ex.stream);
  }
};
std::unique_ptr<PlanOp> make(Plan& p, const step::CopyPixels& s) { return make<CopyPixelsOp>(p, s); }

struct GatherChannelsOp : GpuOp {
  step::GatherChannels s;  // index: a device copy
  GatherChannelsOp(Plan& p, const step::GatherChannels& st) : s(st) {
    s.index = p.upload(std::vector<index_t>(st.index, st.index + st.C));
  }
  void run(const Exec& ex) const override {
    const TensorView in = ex.at(s.x), out = ex.at(s.y);
    launch_gather_channels(in.base, in.stride, out.base, out.stride, ex.N * s.pixels, s.C, s.index, ex.stream);
  }
};
std::unique_ptr<PlanOp> make(Plan& p, const step::GatherChannels& s) { return make<GatherChannelsOp>(p, s); }

struct SoftmaxOp : GpuOp {
  step::Softmax s;
  explicit SoftmaxOp(const step::Softmax& s) : s(s) {}
  void run(const Exec& ex) const override {
    const TensorView in = ex.at(s.x), out = ex.at(s.y);
    launch_softmax(in.base, in.stride, out.base, out.stride, ex.N * s.pixels, s.C, s.log, ex.stream);
  }
};
std::unique_ptr<PlanOp> make(Plan& p, const step::Softmax& s) { return make<SoftmaxOp>(p, s); }

struct LayerNormOp : GpuOp {
  step::LayerNorm s;  // scale / shift: device copies
  LayerNormOp(Plan& p, const step::LayerNorm& st) : s(st) {
    s.scale = p.upload(copy_of(st.scale, st.C));
    s.shift = p.upload(copy_of(st.shift, st.C));
  }
  void run(const Exec& ex) const override {
    const TensorView in = ex.at(s.x), out = ex.at(s.y);
    launch_layer_norm(in.base, in.stride, out.base, out.stride, ex.N * s.pixels, s.C, s.scale, s.shift, s.eps, s.e,
                      ex.stream);
  }
};
std::unique_ptr<PlanOp> make(Plan& p, const step::LayerNorm& s) { return make<LayerNormOp>(p, s); }

struct LrnOp : GpuOp {
  step::Lrn s;
  explicit LrnOp(const step::Lrn& s) : s(s) {}
  void run(const Exec& ex) const override {
    const TensorView in = ex.at(s.x), out = ex.at(s.y);
    launch_lrn(in.base, in.stride, out.base, out.stride, ex.N * s.pixels, s.C, s.size, s.alpha, s.beta, s.k,
               ex.stream);
  }
};
std::unique_ptr<PlanOp> make(Plan& p, const step::Lrn& s) { return make<LrnOp>(p, s); }

struct ResampleOp : GpuOp {
  ResampleArgs args;  // the tables: device copies; x / y filled per run
  int x, y;
  ResampleOp(Plan& p, const step::Resample& s) : x(s.x), y(s.y) {
    args = {};
    args.H = s.H, args.W = s.W, args.C = s.C, args.OH = s.OH, args.OW = s.OW, args.taps_h = s.taps_h;
    args.taps_w = s.taps_w, args.fill = s.fill;
    args.index_h = p.upload(std::vector<index_t>(s.index_h, s.index_h + s.OH * s.taps_h));
    args.weight_h = p.upload(std::vector<float>(s.weight_h, s.weight_h + s.OH * s.taps_h));
    args.index_w = p.upload(std::vector<index_t>(s.index_w, s.index_w + s.OW * s.taps_w));
    args.weight_w = p.upload(std::vector<float>(s.weight_w, s.weight_w + s.OW * s.taps_w));
  }
  void run(const Exec& ex) const override {
    ResampleArgs a = args;
    const TensorView in = ex.at(x), out = ex.at(y);
    a.N = ex.N, a.x = in.base, a.xs = in.stride, a.ximage = in.image, a.y = out.base, a.ys = out.stride;
    a.yimage = out.image;
    launch_resample(a, ex.stream);
  }
};
std::unique_ptr<PlanOp> make(Plan& p, const step::Resample& s) { return make<ResampleOp>(p, s); }

struct FlattenOp : GpuOp {
  step::Flatten s;
  explicit FlattenOp(const step::Flatten& s) : s(s) {}
  void run(const Exec& ex) const override {
    const TensorView in = ex.at(s.x), out = ex.at(s.y);
    launch_flatten_nchw(in.base, in.stride, out.base, ex.N, s.H, s.W, s.C, ex.stream);
  }
};
std::unique_ptr<PlanOp> make(Plan& p, const step::Flatten& s) { return make<FlattenOp>(p, s); }

// OIHW (K, Cg, R, S) -> [group][(r * S + s) * Cg + c][Kg]: the B matrix of each group's implicit GEMM.
std::vector<float> pack_conv(const float* w, index_t K, index_t Cg, index_t R, index_t S, index_t groups) {
  const index_t Kg = K / groups, taps = R * S, kred = taps * Cg;
  std::vector<float> out(static_cast<size_t>(K * kred));
  for (index_t g = 0; g < groups; ++g)
    for (index_t col = 0; col < Kg; ++col) {
      const float* src = w + (g * Kg + col) * Cg * taps;
      for (index_t c = 0; c < Cg; ++c)
        for (index_t t = 0; t < taps; ++t)
          out[static_cast<size_t>((g * kred + t * Cg + c) * Kg + col)] = src[c * taps + t];
    }
  return out;
}

}  // namespace

std::unique_ptr<PlanOp> Plan::make_op(const step::Any& any) {
  return std::visit([this](const auto& s) { return make(*this, s); }, any);
}

// Winograd (a CPU algorithm) runs as the direct convolution here: the same result within fp32 rounding.
void Plan::add_conv(const ConvCall& c) {
  require(c.scale < 0 && c.mask < 0, "plan.conv: GPU plans have no input gate or mask (capabilities)");
  const ConvGeom& g = c.geom;
  std::vector<int> reads{c.x};
  if (c.residual >= 0) reads.push_back(c.residual);
  if (c.depthwise && (c.algo == ConvAlgo::automatic || c.algo == ConvAlgo::depthwise)) {
    auto op = std::make_unique<DwConvOp>();
    const index_t taps = g.R * g.S;
    std::vector<float> wd(static_cast<size_t>(taps * g.C));
    for (index_t ch = 0; ch < g.C; ++ch)
      for (index_t t = 0; t < taps; ++t) wd[static_cast<size_t>(t * g.C + ch)] = c.w[ch * taps + t];
    DwArgs& a = op->args;
    a = {};
    a.w = upload(wd);
    a.bias = upload(copy_of(c.bias, g.C));
    a.H = g.H, a.W = g.W, a.C = g.C, a.OH = g.OH, a.OW = g.OW, a.R = g.R, a.S = g.S, a.sh = g.sh, a.sw = g.sw;
    a.dh = g.dh, a.dw = g.dw, a.pt = g.pt, a.pl = g.pl, a.e = c.e;
    op->x = c.x, op->y = c.y, op->res = c.residual, op->flops_per_image = c.flops;
    return finish(std::move(op), c.name, kind("dwconv_f32", false), c.detail, reads, {c.y});
  }
  auto op = std::make_unique<ConvOp>();
  ConvArgs& a = op->args;
  a = {};
  a.w = upload(pack_conv(c.w, g.K, g.Cg, g.R, g.S, g.groups));
  a.bias = upload(copy_of(c.bias, g.K));
  a.H = g.H, a.W = g.W, a.C = g.C, a.OH = g.OH, a.OW = g.OW, a.K = g.K, a.R = g.R, a.S = g.S, a.sh = g.sh;
  a.sw = g.sw, a.dh = g.dh, a.dw = g.dw, a.pt = g.pt, a.pl = g.pl, a.groups = g.groups, a.Cg = g.Cg, a.Kg = g.Kg;
  a.e = c.e;
  op->x = c.x, op->y = c.y, op->res = c.residual, op->precision = precision(), op->sms = multiprocessors();
  op->flops_per_image = c.flops;
  finish(std::move(op), c.name, kind(std::string("conv_") + precision_name(precision()), false), c.detail, reads,
         {c.y});
}

}  // namespace convcore::cuda
