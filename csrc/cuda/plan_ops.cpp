// The GPU Plan's ops: each fills its kernel's argument struct (cuda/kernels.h) from the run's tensors and launches it
// on the plan's stream. The builder hooks below create them; the checks and shapes are the shared builder's.
#include "cuda/plan.h"

namespace convcore::cuda {
namespace {

struct InputOp : GpuOp {
  int y, index;
  index_t C, H, W;
  void run(const Exec& ex) const override {
    const TensorView out = ex.at(y);
    launch_nchw_to_nhwc(ex.inputs[index], out.base, out.stride, ex.N, C, H, W, ex.stream);
  }
};

struct OutputOp : GpuOp {
  int x, index;
  bool nchw;
  index_t C, H, W;
  void run(const Exec& ex) const override {
    const TensorView in = ex.at(x);
    launch_nhwc_to_output(in.base, in.stride, ex.outputs[index], ex.N, C, H, W, nchw, ex.stream);
  }
};

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
  PoolArgs args;
  int x, y;
  void run(const Exec& ex) const override {
    PoolArgs a = args;
    a.N = ex.N;
    const TensorView in = ex.at(x), out = ex.at(y);
    a.x = in.base, a.xs = in.stride, a.y = out.base, a.ys = out.stride;
    launch_pool(a, ex.stream);
  }
};

struct GlobalPoolOp : GpuOp {
  index_t HW, C;
  bool is_max;
  int x, y;
  void run(const Exec& ex) const override {
    const TensorView in = ex.at(x), out = ex.at(y);
    launch_global_pool(in.base, in.stride, out.base, out.stride, ex.N, HW, C, is_max, ex.stream);
  }
};

struct AdaptivePoolOp : GpuOp {
  index_t H, W, C, OH, OW;
  bool is_max;
  int x, y;
  void run(const Exec& ex) const override {
    const TensorView in = ex.at(x), out = ex.at(y);
    launch_adaptive_pool(in.base, in.stride, out.base, out.stride, ex.N, H, W, C, OH, OW, is_max, ex.stream);
  }
};

struct AffineOp : GpuOp {
  index_t pixels, C;
  const float* scale = nullptr;
  const float* shift = nullptr;
  Epilogue e;
  int x, y;
  void run(const Exec& ex) const override {
    const TensorView in = ex.at(x), out = ex.at(y);
    launch_affine(in.base, in.stride, out.base, out.stride, ex.N * pixels, C, scale, shift, e, ex.stream);
  }
};

struct BinaryOpNode : GpuOp {
  BinaryArgs args;
  int a, b, y;
  static void strides(const TensorDesc& d, const TensorView& v, index_t* s) {
    s[0] = v.image;
    s[1] = d.H > 1 ? d.W * v.stride : 0;
    s[2] = d.W > 1 ? v.stride : 0;
    s[3] = d.C > 1 ? 1 : 0;
  }
  void run(const Exec& ex) const override {
    BinaryArgs g = args;
    g.N = ex.N;
    const TensorView va = ex.at(a), vb = ex.at(b), out = ex.at(y);
    strides(ex.plan->tensor(a), va, g.as);
    strides(ex.plan->tensor(b), vb, g.bs);
    g.a = va.base, g.b = vb.base, g.y = out.base, g.ys = out.stride;
    launch_binary(g, ex.stream);
  }
};

struct CopyOp : GpuOp {
  index_t pixels, C, c0;
  int x, y;
  void run(const Exec& ex) const override {
    const TensorView in = ex.at(x), out = ex.at(y);
    launch_copy_channels(in.base, in.stride, out.base + c0, out.stride, ex.N * pixels, C, ex.stream);
  }
};

struct SoftmaxOp : GpuOp {
  index_t pixels, C;
  bool log;
  int x, y;
  void run(const Exec& ex) const override {
    const TensorView in = ex.at(x), out = ex.at(y);
    launch_softmax(in.base, in.stride, out.base, out.stride, ex.N * pixels, C, log, ex.stream);
  }
};

struct LrnOp : GpuOp {
  index_t pixels, C, size;
  float alpha, beta, k;
  int x, y;
  void run(const Exec& ex) const override {
    const TensorView in = ex.at(x), out = ex.at(y);
    launch_lrn(in.base, in.stride, out.base, out.stride, ex.N * pixels, C, size, alpha, beta, k, ex.stream);
  }
};

struct FlattenOp : GpuOp {
  index_t H, W, C;
  int x, y;
  void run(const Exec& ex) const override {
    const TensorView in = ex.at(x), out = ex.at(y);
    launch_flatten_nchw(in.base, in.stride, out.base, ex.N, H, W, C, ex.stream);
  }
};

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

std::vector<float> copy_of(const float* p, index_t n) {
  return p ? std::vector<float>(p, p + n) : std::vector<float>();
}

template <class T>
std::unique_ptr<T> make() {
  return std::make_unique<T>();
}

}  // namespace

std::unique_ptr<PlanOp> Plan::input_op(int y, int index) {
  const TensorDesc& d = tensor(y);
  auto op = make<InputOp>();
  op->y = y, op->index = index, op->C = d.C, op->H = d.H, op->W = d.W;
  return op;
}

std::unique_ptr<PlanOp> Plan::output_op(int x, int index, bool nchw) {
  const TensorDesc& d = tensor(x);
  auto op = make<OutputOp>();
  op->x = x, op->index = index, op->nchw = nchw, op->C = d.C, op->H = d.H, op->W = d.W;
  return op;
}

// Winograd (a CPU algorithm) runs as the direct convolution here: the same result within fp32 rounding.
void Plan::add_conv(const ConvCall& c) {
  require(c.scale < 0 && c.mask < 0, "plan.conv: GPU plans have no input gate or mask (capabilities)");
  const ConvGeom& g = c.geom;
  std::vector<int> reads{c.x};
  if (c.residual >= 0) reads.push_back(c.residual);
  if (c.depthwise && (c.algo == ConvAlgo::automatic || c.algo == ConvAlgo::depthwise)) {
    auto op = make<DwConvOp>();
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
  auto op = make<ConvOp>();
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

std::unique_ptr<PlanOp> Plan::pool_op(const PoolGeom& g, int x, int y) {
  auto op = make<PoolOp>();
  op->args = PoolArgs{nullptr, 0,    nullptr, 0,    0,    g.H,  g.W,  g.C,  g.OH,     g.OW,
                      g.kh,    g.kw, g.sh,    g.sw, g.dh, g.dw, g.pt, g.pb, g.pl,     g.pr,
                      g.is_max, g.count_include_pad};
  op->x = x, op->y = y;
  return op;
}

std::unique_ptr<PlanOp> Plan::global_pool_op(index_t HW, index_t C, bool is_max, int x, int y) {
  auto op = make<GlobalPoolOp>();
  op->HW = HW, op->C = C, op->is_max = is_max, op->x = x, op->y = y;
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
  op->pixels = pixels, op->C = C, op->e = e, op->x = x, op->y = y;
  op->scale = upload(copy_of(scale, C));
  op->shift = upload(copy_of(shift, C));
  return op;
}

std::unique_ptr<PlanOp> Plan::binary_op(index_t H, index_t W, index_t C, BinaryOp bop, const Epilogue& e, int a,
                                        int b, int y) {
  auto op = make<BinaryOpNode>();
  op->args = {};
  op->args.H = H, op->args.W = W, op->args.C = C, op->args.op = bop, op->args.e = e;
  op->a = a, op->b = b, op->y = y;
  return op;
}

std::unique_ptr<PlanOp> Plan::copy_op(index_t pixels, index_t C, index_t c0, int x, int y) {
  auto op = make<CopyOp>();
  op->pixels = pixels, op->C = C, op->c0 = c0, op->x = x, op->y = y;
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
  op->H = H, op->W = W, op->C = C, op->x = x, op->y = y;
  return op;
}

}  // namespace convcore::cuda
