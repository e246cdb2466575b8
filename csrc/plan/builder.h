// The Plan builder, written once for every backend: each method checks its arguments (std::invalid_argument), works
// out the output's shape, adds the tensor and asks the backend for the op that computes it (packed and ready: no
// checks or allocations are left for run time), naming it for summary(). python/convcore/plan's lowering calls these
// through the bindings in the order of the graph; the same calls build a CPU Plan (plan/plan.h) or a GPU Plan
// (cuda/plan.h).
//
// A backend B derives from PlanBuilder<B> and provides:
//   std::string kind(const std::string& base, bool simd) const    the kernel name summary() shows
//   std::unique_ptr<PlanOp> make_op(const step::Any&)             the op computing one step (below)
//   int add_constant(index_t H, index_t W, index_t C, const float* nhwc)
//   void add_conv(const ConvCall&)                                 one or more ops computing call.y
//   static constexpr bool kFusedMBConv                              whether add_mbconv exists (else three convs)
//   std::vector<std::string> capabilities() const                  what the lowering may ask beyond the common set
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "kernels/kernels.h"
#include "plan/core.h"

namespace convcore {

// The ops a backend makes from one description each, checked by the builder: tensors by id (x, y, ...), sizes per
// image, NHWC. Each backend has one op type per step; the step is the op's whole configuration.
namespace step {
struct Input {  // input `index` (NCHW, or NHWC: (N, H, W, C) as stored) -> y
  int y, index;
  index_t H, W, C;
  bool nhwc;
};
struct Output {  // x -> output `index`: NCHW, or (N, H * W * C) as stored
  int x, index;
  bool nchw;
  index_t H, W, C;
};
struct Pool {
  PoolGeom g;  // N = 0: set per run
  int x, y;
};
struct GlobalPool {
  index_t HW, C;
  bool is_max;
  int x, y;
};
struct AdaptivePool {  // torch's windows [floor(o * H / OH), ceil((o + 1) * H / OH))
  index_t H, W, C, OH, OW;
  bool is_max;
  int x, y;
};
struct Affine {  // y = act(x * scale + shift) per channel; scale / shift (C floats, or null) are read by make_op only
  index_t pixels, C;
  const float* scale;
  const float* shift;
  Epilogue e;
  int x, y;
};
struct Binary {  // y = act(a op b), a and b broadcast to (H, W, C)
  index_t H, W, C;
  BinaryOp op;
  Epilogue e;
  int a, b, y;
};
struct Copy {  // x into channels [c0, c0 + C) of y
  index_t pixels, C, c0;
  int x, y;
};
struct CopyPixels {  // x's pixels into pixels [p0, p0 + pixels) of y, image by image (a concatenation along them)
  index_t pixels, C, p0;
  int x, y;
};
struct GatherChannels {  // y[p, c] = x[p, index[c]] for c < C (a channel shuffle; read by make_op only)
  index_t pixels, C;
  const index_t* index;
  int x, y;
};
struct Softmax {  // along the channels
  index_t pixels, C;
  bool log;
  int x, y;
};
struct LayerNorm {  // y = act(normalised over the channels * scale + shift), per pixel (scale / shift may be null)
  index_t pixels, C;
  float eps;
  const float* scale;
  const float* shift;
  Epilogue e;
  int x, y;
};
struct Lrn {  // torch's window [c - size / 2, c + (size - 1) / 2] across channels
  index_t pixels, C, size;
  float alpha, beta, k;
  int x, y;
};
struct Flatten {  // (H, W, C) -> one row of C * H * W in NCHW order
  index_t H, W, C;
  int x, y;
};
// y[oh, ow] = sum_a sum_b wh[oh][a] ww[ow][b] x[ih[oh][a], iw[ow][b]] per channel: a separable resize, one table per
// axis (OH x taps_h, OW x taps_w); an index < 0 in a row's first tap marks an output outside a crop region (`fill`).
// The tables are read by make_op only.
struct Resample {
  index_t H, W, C, OH, OW, taps_h, taps_w;
  const index_t* index_h;
  const float* weight_h;
  const index_t* index_w;
  const float* weight_w;
  float fill;
  int x, y;
};
using Any =
    std::variant<Input, Output, Pool, GlobalPool, AdaptivePool, Affine, Binary, Copy, CopyPixels, GatherChannels, Softmax, LayerNorm,
                 Lrn, Flatten, Resample>;
}  // namespace step

// Everything a backend needs to add a convolution (checked by the builder).
struct ConvCall {
  std::string name, detail;
  int x = -1, y = -1;
  int residual = -1;  // a tensor of y's shape added before the activation, or -1
  int scale = -1;     // a per image, per input channel gate (N x 1 x 1 x C) for 1x1 convolutions (CPU), or -1
  int mask = -1;      // a tensor of y's shape the epilogue masks y with (Epilogue::mask_lo / mask_hi) (CPU), or -1
  ConvSpec spec;
  ConvGeom geom;  // N = 0: set per run
  const float* w = nullptr;
  const float* bias = nullptr;
  Epilogue e;
  ConvAlgo algo = ConvAlgo::automatic;
  bool depthwise = false;  // groups == C == K > 1
  double flops = 0;        // per image
};

// An inverted-residual block: [1x1 expand ->] depthwise -> [1x1 project] [+ residual], each step with its epilogue.
struct MBConvCall {
  std::string name;
  int x = -1, y = -1, residual = -1;
  const float* we = nullptr;  // (E, C, 1, 1), or null: no expansion
  const float* be = nullptr;
  Epilogue ee;
  ConvSpec dw;  // K = C = groups = E
  const float* wd = nullptr;
  const float* bd = nullptr;
  Epilogue ed;
  const float* wp = nullptr;  // (K, E, 1, 1), or null: the block stops after the depthwise step
  const float* bp = nullptr;
  Epilogue ep;
  index_t C = 0, E = 0, K = 0, OH = 0, OW = 0;
};

template <class B>
class PlanBuilder : public PlanCore {
 public:
  // An NCHW input (N, C, H, W), or (N, C) with H = W = 1; nhwc: an (N, H, W, C) input, copied as it is (the NHWC
  // inputs of TensorFlow / Keras graphs). Returns its NHWC tensor. Inputs come before other ops.
  int add_input(index_t C, index_t H, index_t W, bool nhwc = false) {
    const int y = register_input(C, H, W);
    const int index = static_cast<int>(inputs().size()) - 1;
    const TensorDesc& d = tensor(y);
    finish(self().make_op(step::Input{y, index, d.H, d.W, d.C, nhwc}), "input" + std::to_string(index),
           self().kind(nhwc ? "copy_in" : "nchw_to_nhwc", false), dims(y), {}, {y});
    return y;
  }

  // nchw: a 4-D (N, C, H, W) output; else (N, H * W * C) as stored.
  void add_output(int t, bool nchw) {
    check(t, "t");
    require(!is_constant(t), "plan: an output must be computed");
    const int index = static_cast<int>(outputs().size());
    const TensorDesc& d = tensor(t);
    std::unique_ptr<PlanOp> op = self().make_op(step::Output{t, index, nchw, d.H, d.W, d.C});
    op->name = "output" + std::to_string(index);
    op->kind = self().kind(nchw ? "nhwc_to_nchw" : "copy_out", false);
    op->detail = dims(t);
    op->reads = {t};
    register_output(t, nchw, std::move(op));
  }

  // y = act(conv(x [* scale], w) + bias [+ residual]) [masked]. Returns y, a new tensor.
  int conv(const std::string& name, int x, const ConvSpec& s, const float* w, const float* bias, const Epilogue& e,
           int residual = -1, ConvAlgo algo = ConvAlgo::automatic, int scale = -1, int mask = -1) {
    const TensorDesc in = tensor(check(x, "x"));
    const auto [OH, OW] = conv_output(in, s, "plan.conv");
    ConvCall c;
    c.name = name, c.x = x, c.spec = s, c.w = w, c.bias = bias, c.e = e, c.algo = algo;
    c.y = add_tensor(OH, OW, s.K);
    check_like(residual, OH, OW, s.K, "residual");
    check_like(mask, OH, OW, s.K, "mask");
    c.residual = residual, c.mask = mask, c.scale = scale;
    c.geom = ConvGeom{0, in.H, in.W, in.C, OH, OW, s.K, s.R, s.S, s.sh, s.sw, s.dh, s.dw, s.pt, s.pl,
                      s.groups, in.C / s.groups, s.K / s.groups};
    c.depthwise = s.groups == in.C && s.groups == s.K && s.groups > 1;
    c.flops = 2.0 * OH * OW * s.K * c.geom.Cg * s.R * s.S;
    if (scale >= 0) {
      const TensorDesc& sd = tensor(check(scale, "scale"));
      require(s.R == 1 && s.S == 1 && s.groups == 1 && sd.H == 1 && sd.W == 1 && sd.C == in.C && !is_constant(scale),
              "plan.conv: an input gate needs a 1x1 ungrouped convolution and a computed (N, C, 1, 1) gate");
      require(mask < 0, "plan.conv: a mask and an input gate together are not supported");
      require(algo == ConvAlgo::automatic || algo == ConvAlgo::igemm, "plan.conv: an input gate needs the igemm kernel");
    }
    require(algo != ConvAlgo::depthwise || c.depthwise, "plan.conv: the depthwise kernel needs groups == C == K");
    require(algo != ConvAlgo::winograd || winograd_eligible(s),
            "plan.conv: winograd needs a 3x3, stride 1, undilated, ungrouped convolution");
    c.detail = dims(x) + " -> " + dims(c.y) + " k" + std::to_string(s.R) + "x" + std::to_string(s.S) + " s" +
               std::to_string(s.sh) + (s.groups > 1 ? " g" + std::to_string(s.groups) : "") +
               (residual >= 0 ? " +res" : "") + epilogue_suffix(e) + (mask >= 0 ? " +mask" : "");
    self().add_conv(c);
    return c.y;
  }

  // An inverted-residual block (MBConvCall). Backends without the fused op run it as its convolutions.
  int mbconv(const std::string& name, int x, const float* we, const float* be, index_t E, const Epilogue& ee,
             const ConvSpec& dw, const float* wd, const float* bd, const Epilogue& ed, const float* wp,
             const float* bp, index_t K, const Epilogue& ep, int residual) {
    const TensorDesc in = tensor(check(x, "x"));
    if (we == nullptr) E = in.C;
    if (wp == nullptr) K = E;
    require(we != nullptr || wp != nullptr, "plan.mbconv: expected an expand or a project step");
    require(E >= 1 && K >= 1 && dw.K == E && dw.C == 1 && dw.groups == E, "plan.mbconv: inconsistent channel counts");
    if constexpr (!B::kFusedMBConv) {
      require(wp != nullptr, "plan.mbconv: this backend needs the project step");
      int t = x;
      if (we != nullptr) t = conv(name + ".expand", t, ConvSpec{E, in.C, 1, 1}, we, be, ee);
      t = conv(name + ".depthwise", t, dw, wd, bd, ed);
      return conv(name + ".project", t, ConvSpec{K, E, 1, 1}, wp, bp, ep, residual);
    } else {
      TensorDesc expanded = in;
      expanded.C = E;
      const auto [OH, OW] = conv_output(expanded, dw, "plan.mbconv");
      MBConvCall c;
      c.name = name, c.x = x, c.residual = residual, c.we = we, c.be = be, c.ee = ee, c.dw = dw, c.wd = wd, c.bd = bd;
      c.ed = ed, c.wp = wp, c.bp = bp, c.ep = ep, c.C = in.C, c.E = E, c.K = K, c.OH = OH, c.OW = OW;
      c.y = add_tensor(OH, OW, K);
      check_like(residual, OH, OW, K, "residual");
      self().add_mbconv(c);
      return c.y;
    }
  }

  int pool(const std::string& name, int x, const PoolSpec& s) {
    const TensorDesc in = tensor(check(x, "x"));
    require(s.kh >= 1 && s.kw >= 1 && s.sh >= 1 && s.sw >= 1 && s.dh >= 1 && s.dw >= 1 && s.OH >= 1 && s.OW >= 1,
            "plan.pool: bad window geometry");
    require(s.pt >= 0 && s.pb >= 0 && s.pl >= 0 && s.pr >= 0, "plan.pool: negative padding");
    require((s.OH - 1) * s.sh < in.H + s.pt && (s.OW - 1) * s.sw < in.W + s.pl,
            "plan.pool: output larger than the input allows");
    const int y = add_tensor(s.OH, s.OW, in.C);
    const PoolGeom g{0,    in.H, in.W, in.C, s.OH, s.OW, s.kh, s.kw, s.sh,     s.sw,
                     s.dh, s.dw, s.pt, s.pb, s.pl, s.pr, s.is_max, s.count_include_pad};
    finish(self().make_op(step::Pool{g, x, y}), name, self().kind(s.is_max ? "maxpool" : "avgpool", true),
           dims(x) + " -> " + dims(y) + " k" + std::to_string(s.kh) + "x" + std::to_string(s.kw) + " s" +
               std::to_string(s.sh),
           {x}, {y});
    return y;
  }

  int global_pool(const std::string& name, int x, bool is_max) {
    const TensorDesc in = tensor(check(x, "x"));
    const int y = add_tensor(1, 1, in.C);
    finish(self().make_op(step::GlobalPool{in.H * in.W, in.C, is_max, x, y}), name,
           self().kind(is_max ? "global_maxpool" : "global_avgpool", true), dims(x) + " -> " + dims(y), {x}, {y});
    return y;
  }

  int adaptive_pool(const std::string& name, int x, bool is_max, index_t OH, index_t OW) {
    const TensorDesc in = tensor(check(x, "x"));
    require(OH >= 1 && OW >= 1, "plan.adaptive_pool: output size must be positive");
    const int y = add_tensor(OH, OW, in.C);
    finish(self().make_op(step::AdaptivePool{in.H, in.W, in.C, OH, OW, is_max, x, y}), name,
           self().kind(is_max ? "adaptive_maxpool" : "adaptive_avgpool", false), dims(x) + " -> " + dims(y), {x},
           {y});
    return y;
  }

  // y = act(x * scale + shift) per channel (scale / shift may be null: 1 / 0).
  int affine(const std::string& name, int x, const float* scale, const float* shift, const Epilogue& e) {
    const TensorDesc in = tensor(check(x, "x"));
    const int y = add_tensor(in.H, in.W, in.C);
    finish(self().make_op(step::Affine{in.H * in.W, in.C, scale, shift, e, x, y}), name,
           self().kind(std::string(scale || shift ? "scale_shift" : "activation") + epilogue_suffix(e), true), dims(x),
           {x}, {y});
    return y;
  }

  int binary(const std::string& name, int a, int b, BinaryOp op, const Epilogue& e) {
    const TensorDesc ta = tensor(check(a, "a")), tb = tensor(check(b, "b"));
    auto bdim = [](index_t u, index_t v) {
      require(u == v || u == 1 || v == 1, "plan.binary: shapes do not broadcast");
      return std::max(u, v);
    };
    const index_t H = bdim(ta.H, tb.H), W = bdim(ta.W, tb.W), C = bdim(ta.C, tb.C);
    require(!is_constant(a) || !is_constant(b), "plan.binary: at least one operand must be computed");
    const int y = add_tensor(H, W, C);
    finish(self().make_op(step::Binary{H, W, C, op, e, a, b, y}), name,
           self().kind(std::string(binary_name(op)) + epilogue_suffix(e), true), dims(a) + " , " + dims(b), {a, b},
           {y});
    return y;
  }

  // Copies x into channels [c0, c0 + x.C) of y (a concatenation that could not be written in place).
  void copy_into(const std::string& name, int x, int y, index_t c0) {
    const TensorDesc in = tensor(check(x, "x")), out = tensor(check(y, "y"));
    require(in.H == out.H && in.W == out.W && c0 >= 0 && c0 + in.C <= out.C, "plan.copy_into: the slice does not fit");
    require(!is_constant(y), "plan.copy_into: cannot write into a constant");
    finish(self().make_op(step::Copy{in.H * in.W, in.C, c0, x, y}), name, self().kind("copy_channels", false),
           dims(x) + " -> " + dims(y), {x}, {y});
  }

  // Copies x's pixels into pixels [p0, p0 + x.H * x.W) of y, which has x's channels (a concatenation of sequences
  // stored as H x 1 maps, or of whole maps' pixel lists); x may be a constant (the same for every image).
  void copy_pixels_into(const std::string& name, int x, int y, index_t p0) {
    const TensorDesc in = tensor(check(x, "x")), out = tensor(check(y, "y"));
    require(in.C == out.C && p0 >= 0 && p0 + in.H * in.W <= out.H * out.W,
            "plan.copy_pixels_into: the pixels do not fit");
    require(!is_constant(y), "plan.copy_pixels_into: cannot write into a constant");
    finish(self().make_op(step::CopyPixels{in.H * in.W, in.C, p0, x, y}), name, self().kind("concat_pixels", false),
           dims(x) + " -> " + dims(y), {x}, {y});
  }

  // y[p, c] = x[p, index[c]] for c < C: channels picked in any order (each index in [0, x.C)).
  int gather_channels(const std::string& name, int x, const index_t* index, index_t C) {
    const TensorDesc in = tensor(check(x, "x"));
    require(C >= 1, "plan.gather_channels: expected at least one index");
    for (index_t c = 0; c < C; ++c)
      require(index[c] >= 0 && index[c] < in.C,
              "plan.gather_channels: indices must lie in [0, " + std::to_string(in.C) + ")");
    const int y = add_tensor(in.H, in.W, C);
    finish(self().make_op(step::GatherChannels{in.H * in.W, C, index, x, y}), name,
           self().kind("gather_channels", false), dims(x) + " -> " + dims(y), {x}, {y});
    return y;
  }

  int softmax(const std::string& name, int x, bool log) {
    const TensorDesc in = tensor(check(x, "x"));
    const int y = add_tensor(in.H, in.W, in.C);
    finish(self().make_op(step::Softmax{in.H * in.W, in.C, log, x, y}), name, self().kind(log ? "log_softmax" : "softmax", false),
           dims(x), {x}, {y});
    return y;
  }

  // A layer norm over each pixel's channels (step::LayerNorm): scale / shift hold C values or are null.
  int layer_norm(const std::string& name, int x, const float* scale, const float* shift, float eps, const Epilogue& e) {
    const TensorDesc in = tensor(check(x, "x"));
    require(eps >= 0.0f, "plan.layer_norm: eps must be >= 0");
    const int y = add_tensor(in.H, in.W, in.C);
    finish(self().make_op(step::LayerNorm{in.H * in.W, in.C, eps, scale, shift, e, x, y}), name,
           self().kind("layer_norm" + epilogue_suffix(e), true), dims(x), {x}, {y});
    return y;
  }

  int lrn(const std::string& name, int x, index_t size, float alpha, float beta, float k) {
    const TensorDesc in = tensor(check(x, "x"));
    require(size >= 1, "plan.lrn: size must be >= 1");
    const int y = add_tensor(in.H, in.W, in.C);
    finish(self().make_op(step::Lrn{in.H * in.W, in.C, size, alpha, beta, k, x, y}), name, self().kind("lrn", false),
           dims(x), {x}, {y});
    return y;
  }

  // A separable resize of x to OH x OW (step::Resample): index_h / weight_h hold OH x taps_h entries, index_w /
  // weight_w OW x taps_w; indices lie in [0, H) / [0, W), or are -1 in every tap of an output to fill.
  int resample(const std::string& name, int x, index_t OH, index_t OW, index_t taps_h, const index_t* index_h,
               const float* weight_h, index_t taps_w, const index_t* index_w, const float* weight_w, float fill) {
    const TensorDesc in = tensor(check(x, "x"));
    require(OH >= 1 && OW >= 1 && taps_h >= 1 && taps_w >= 1, "plan.resample: sizes and taps must be positive");
    auto check_table = [](const index_t* index, index_t rows, index_t taps, index_t len, const char* what) {
      for (index_t r = 0; r < rows; ++r) {
        const bool fill_row = index[r * taps] < 0;
        for (index_t t = 0; t < taps; ++t) {
          const index_t i = index[r * taps + t];
          require(fill_row ? i < 0 : (i >= 0 && i < len), std::string("plan.resample: ") + what +
                                                              " indices must lie in [0, " + std::to_string(len) +
                                                              ") (or be -1 for a whole output)");
        }
      }
    };
    check_table(index_h, OH, taps_h, in.H, "row");
    check_table(index_w, OW, taps_w, in.W, "column");
    const int y = add_tensor(OH, OW, in.C);
    finish(self().make_op(step::Resample{in.H, in.W, in.C, OH, OW, taps_h, taps_w, index_h, weight_h, index_w, weight_w,
                                         fill, x, y}),
           name, self().kind(taps_h == 1 && taps_w == 1 ? "copy_pixels" : "resample", true),
           dims(x) + " -> " + dims(y) + " taps " + std::to_string(taps_h) + "x" + std::to_string(taps_w), {x}, {y});
    return y;
  }

  // Channels [c0, c0 + C) of a computed x as a tensor of their own: a view into x, no op and no copy (a Split's
  // parts); into a copy of x where x is a reshaped view, which slices cannot look into.
  int channel_slice(const std::string& name, int x, index_t c0, index_t C) {
    const TensorDesc in = tensor(check(x, "x"));
    require(!is_constant(x), "plan.channel_slice: x must be computed");
    require(c0 >= 0 && C >= 1 && c0 + C <= in.C,
            "plan.channel_slice: channels [c0, c0 + C) must lie within x's " + std::to_string(in.C));
    if (in.reshaped) x = affine(name + ".copy", x, nullptr, nullptr, Epilogue{});
    const int y = add_tensor(in.H, in.W, C);
    alias(y, x, c0);
    return y;
  }

  // (N, H, W, C) -> (N, 1, 1, C * H * W) in NCHW flatten order.
  int flatten_nchw(const std::string& name, int x) {
    const TensorDesc in = tensor(check(x, "x"));
    const int y = add_tensor(1, 1, in.H * in.W * in.C);
    finish(self().make_op(step::Flatten{in.H, in.W, in.C, x, y}), name, self().kind("flatten_nchw", false), dims(x), {x}, {y});
    return y;
  }

 // Names op, records what it reads and writes, and adds it (the backends' own builders use it too).
  void finish(std::unique_ptr<PlanOp> op, const std::string& name, const std::string& kind, const std::string& detail,
              std::vector<int> reads, std::vector<int> writes) {
    op->name = name, op->kind = kind, op->detail = detail;
    op->reads = std::move(reads), op->writes = std::move(writes);
    add_op(std::move(op));
  }

 private:
  B& self() { return static_cast<B&>(*this); }
};

}  // namespace convcore
