// The CPU Plan's int8 convolution (kernels/int8.h): the float input quantized once into a byte tensor of the arena,
// then the int8 kernel with its float epilogue (scales, bias, residual, activation, the output's requantization).
#include <algorithm>
#include <cstring>

#include "kernels/int8.h"
#include "plan/op_util.h"

namespace convcore {
using namespace planop;
namespace {

struct QuantizeOp : CpuOp {
  QuantLayout l;
  index_t pixels;  // per image
  float scale;
  int zero, lo, hi, offset;
  int x, q;
  const Int8Kernels* k;
  int parallelism(index_t N, int threads) const override {
    return parts_for(5.0 * static_cast<double>(N * pixels * l.groups * l.Cg), kByteGrain, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    const TensorView in = ex.at(x), out = ex.at(q);
    const auto [p0, p1] = share(ex.N * pixels, part, parts);
    if (p0 < p1)
      k->quantize(in.base, in.stride, l, scale, zero, lo, hi, offset, reinterpret_cast<uint8_t*>(out.base), p0, p1);
  }
};

struct QConvOp : CpuOp {
  ConvGeom g;  // N set per run
  QConvPacked packed;
  std::vector<uint8_t> pad;
  QuantEpilogue qe;
  QuantParams qp;  // a pointwise conv reading its float input x (q = -1)
  int x, q, y, res;
  const Int8Kernels* k;
  int parallelism(index_t N, int threads) const override {
    return parts_for(flops_per_image * N, kFlopGrain, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    ConvGeom geo = g;
    geo.N = ex.N;
    const TensorView in = ex.at(q >= 0 ? q : x), out = ex.at(y);
    const TensorView r = res >= 0 ? ex.at(res) : TensorView{nullptr, 0, 0};
    const index_t ys = qe.bytes.inv != 0.0f ? out.stride * 4 : out.stride;  // bytes for the next qconv, or floats
    const QConvIO io{q >= 0 ? reinterpret_cast<const uint8_t*>(in.base) : nullptr, in.stride * 4, q >= 0 ? nullptr
                     : in.base, in.stride, qp, pad.data(), out.base, ys, r.base, r.stride};
    const index_t blocks = g.groups * packed.t.blocks_per_group, P = geo.pixels();
    if (P < 4 * packed.t.mr * parts && blocks >= parts) {  // few pixels (late layers at batch 1): split the channels
      const auto [b0, b1] = share(blocks, part, parts);
      if (b0 < b1) k->conv(geo, packed, io, qe, 0, P, b0, b1);
    } else {
      const auto [p0, p1] = share(P, part, parts, packed.t.mr);
      const double in_per_px = (q >= 0 ? 1.0 : 4.0) * g.Cg * g.sh * g.sw;  // bytes, or floats (pointwise)
      const index_t chunk = pixel_chunk(p1 - p0, in_per_px, packed.t.blocks_per_group,
                                        static_cast<double>(packed.w.size()), packed.t.mr);
      for (index_t c = p0; c < p1; c += chunk) k->conv(geo, packed, io, qe, c, std::min(p1, c + chunk), 0, blocks);
    }
  }
};

}  // namespace

int Plan::qconv(const std::string& name, int x, const ConvSpec& s, const int8_t* w, const float* w_scale,
                const float* bias, const QuantParams& in, const QuantEpilogue& qe, int residual, bool x_bytes) {
  TensorDesc d = tensor(check(x, "x"));
  require(!is_constant(x), "plan.qconv: the input must be computed");
  if (x_bytes) {  // another qconv's bytes: (H, W, C / 4) floats hold C channels
    require(s.groups == 1, "plan.qconv: a byte input needs one group");
    d.C *= 4;
  }
  const auto [OH, OW] = conv_output(d, s, "plan.qconv");
  require(in.scale > 0.0f && in.lo < in.hi && in.zero >= in.lo && in.zero <= in.hi && (in.offset == 0 || in.offset == 128),
          "plan.qconv: expected a positive input scale and a zero point in the type's range");
  require(qe.sum.scale >= 0.0f && qe.out.scale >= 0.0f, "plan.qconv: expected output scales >= 0 (0: none)");
  require(qe.bytes.inv == 0.0f || (qe.bytes.inv > 0.0f && s.K % 4 == 0 && qe.bytes.lo < qe.bytes.hi),
          "plan.qconv: a byte output needs a positive scale and a multiple of 4 output channels");
  for (index_t i = 0; i < s.K; ++i)
    require(w_scale[i] > 0.0f && w_scale[i] < 3.4e38f, "plan.qconv: expected positive finite weight scales");
  const Int8Kernels& k = int8_kernels_for(isa());
  const ConvGeom g{0, d.H, d.W, d.C, OH, OW, s.K, s.R, s.S, s.sh, s.sw, s.dh, s.dw, s.pt, s.pl,
                   s.groups, d.C / s.groups, s.K / s.groups};
  const int o = in.zero + in.offset;
  std::vector<float> scale(static_cast<size_t>(s.K));
  for (index_t i = 0; i < s.K; ++i) scale[static_cast<size_t>(i)] = in.scale * w_scale[i];

  const index_t quads = ceil_div(g.Cg, 4);
  // A pointwise conv quantizes its float input a tile at a time (kernels/int8.h); others read a byte tensor that
  // one pass writes first, or another qconv wrote.
  const bool pointwise = s.R == 1 && s.S == 1 && s.sh == 1 && s.sw == 1 && s.pt == 0 && s.pl == 0 && s.pb == 0 &&
                         s.pr == 0 && s.groups == 1 && OH == d.H && OW == d.W && !x_bytes;
  int qt = x_bytes ? x : -1;
  if (!pointwise && !x_bytes) {
    auto quant = std::make_unique<QuantizeOp>();
    quant->l = QuantLayout{s.groups, g.Cg, quads, s.groups * quads * 4};
    quant->pixels = d.H * d.W, quant->scale = in.scale, quant->zero = in.zero, quant->lo = in.lo, quant->hi = in.hi;
    quant->offset = in.offset, quant->x = x, quant->k = &k;
    quant->q = add_tensor(d.H, d.W, s.groups * quads);  // bytes, 4 per float
    qt = quant->q;
    finish(std::move(quant), name, std::string(k.name) + "_quantize_u8", dims(x), {x}, {qt});
  }

  auto op = std::make_unique<QConvOp>();
  op->g = g, op->qe = qe, op->qp = in, op->x = x, op->q = qt, op->res = residual, op->k = &k;
  op->packed = pack_qconv(k, g, w, scale.data(), bias, o);
  op->pad.assign(static_cast<size_t>(quads * 4 + 64), static_cast<uint8_t>(o));
  add_weight_bytes(static_cast<index_t>(op->packed.w.size() + 12 * op->packed.scale.size()));
  const bool y_bytes = qe.bytes.inv != 0.0f;
  op->y = add_tensor(OH, OW, y_bytes ? s.K / 4 : s.K);
  check_like(residual, OH, OW, s.K, "residual");
  op->flops_per_image = 2.0 * OH * OW * s.K * g.Cg * s.R * s.S;
  const int y = op->y;
  const std::string detail = dims(x) + (x_bytes ? " (bytes)" : pointwise ? " (quantized per tile)" : "") + " -> " +
                             std::to_string(OH) + "x" + std::to_string(OW) + "x" + std::to_string(s.K) + " k" +
                             std::to_string(s.R) + "x" + std::to_string(s.S) + " s" + std::to_string(s.sh) +
                             (s.groups > 1 ? " g" + std::to_string(s.groups) : "") +
                             (qe.sum.scale > 0 ? " +requant" : "") + (residual >= 0 ? " +res" : "") +
                             epilogue_suffix(qe.e) + (qe.out.scale > 0 ? " +requant" : "") + (y_bytes ? " (bytes)" : "");
  std::vector<int> reads = {qt >= 0 ? qt : x};
  if (residual >= 0) reads.push_back(residual);
  finish(std::move(op), name, std::string(k.name) + "_qconv", detail, reads, {y});
  return y;
}

}  // namespace convcore
