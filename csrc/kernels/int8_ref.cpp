// The reference int8 kernels (int8.h): plain loops, the oracle the SIMD ones are tested against; the weight packing
// and the choice of kernels.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "kernels/int8.h"

namespace convcore {

QConvPacked pack_qconv(const Int8Kernels& k, const ConvGeom& g, const int8_t* w, const float* scale,
                       const float* bias, int o) {
  QConvPacked pk;
  const index_t taps = g.R * g.S;
  k.conv_tile(g.Kg, pk.t);
  pk.quads = ceil_div(g.Cg, 4);
  pk.t.blocks_per_group = ceil_div(g.Kg, pk.t.nr);
  const index_t blocks = g.groups * pk.t.blocks_per_group, nr = pk.t.nr;
  pk.t.panel = taps * pk.quads * nr * 4;
  pk.w.assign(static_cast<size_t>(blocks * pk.t.panel), 0);
  pk.corr.assign(static_cast<size_t>(blocks * nr), 0);
  pk.scale.assign(static_cast<size_t>(blocks * nr), 0.0f);
  pk.bias.assign(static_cast<size_t>(blocks * nr), 0.0f);
  for (index_t b = 0; b < blocks; ++b) {
    const index_t grp = b / pk.t.blocks_per_group, kb = b % pk.t.blocks_per_group;
    const index_t jn = std::min<index_t>(nr, g.Kg - kb * nr);
    int8_t* panel = pk.w.data() + b * pk.t.panel;
    for (index_t j = 0; j < jn; ++j) {
      const index_t oc = grp * g.Kg + kb * nr + j;
      const int8_t* src = w + oc * g.Cg * taps;
      int64_t sum = 0;
      for (index_t c = 0; c < g.Cg; ++c)
        for (index_t t = 0; t < taps; ++t) {
          const int8_t v = src[c * taps + t];
          panel[((t * pk.quads + c / 4) * nr + j) * 4 + c % 4] = v;
          sum += v;
        }
      pk.corr[static_cast<size_t>(b * nr + j)] = static_cast<int32_t>(sum * o);
      pk.scale[static_cast<size_t>(b * nr + j)] = scale[oc];
      pk.bias[static_cast<size_t>(b * nr + j)] = bias ? bias[oc] : 0.0f;
    }
  }
  return pk;
}

namespace ref {
namespace {

void conv_tile(index_t, ConvTile& t) { t.mr = 1, t.nv = 1, t.nr = 16; }

void quantize(const float* x, index_t xs, const QuantLayout& l, float scale, int zero, int lo, int hi, int offset,
              uint8_t* q, index_t p0, index_t p1) {
  for (index_t p = p0; p < p1; ++p)
    for (index_t grp = 0; grp < l.groups; ++grp) {
      const float* src = x + p * xs + grp * l.Cg;
      uint8_t* dst = q + p * l.stride + grp * l.quads * 4;
      for (index_t j = 0; j < l.quads * 4; ++j) {
        float v = static_cast<float>(zero);
        if (j < l.Cg) {  // NaN saturates to the zero point's value: it has no integer
          const float r = std::nearbyint(src[j] / scale) + static_cast<float>(zero);
          v = r != r ? static_cast<float>(zero) : std::min(static_cast<float>(hi), std::max(static_cast<float>(lo), r));
        }
        dst[j] = static_cast<uint8_t>(static_cast<int>(v) + offset);
      }
    }
}

void conv(const ConvGeom& g, const QConvPacked& p, const QConvIO& io, const QuantEpilogue& qe, index_t p0,
          index_t p1, index_t b0, index_t b1) {
  const Epilogue& e = qe.e;
  const index_t nr = p.t.nr, taps = g.R * g.S;
  std::vector<uint8_t> row(static_cast<size_t>(p.quads * 4));
  for (index_t px = p0; px < p1; ++px) {
    if (io.xf)  // a pointwise conv on its float input: this pixel quantized first
      quantize(io.xf + px * io.xfs, 0, QuantLayout{1, g.Cg, p.quads, 0}, io.qp.scale, io.qp.zero, io.qp.lo, io.qp.hi,
               io.qp.offset, row.data(), 0, 1);
    const index_t n = px / (g.OH * g.OW), oh = px / g.OW % g.OH, ow = px % g.OW;
    for (index_t b = b0; b < b1; ++b) {
      const index_t grp = b / p.t.blocks_per_group, kb = b % p.t.blocks_per_group;
      const index_t jn = std::min<index_t>(nr, g.Kg - kb * nr);
      const int8_t* panel = p.w.data() + b * p.t.panel;
      for (index_t j = 0; j < jn; ++j) {
        int32_t acc = 0;
        for (index_t t = 0; t < taps; ++t) {
          const index_t ih = oh * g.sh - g.pt + t / g.S * g.dh, iw = ow * g.sw - g.pl + t % g.S * g.dw;
          const bool inside = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W;
          const uint8_t* a = io.xf ? row.data()
                             : inside ? io.x + ((n * g.H + ih) * g.W + iw) * io.xs + grp * p.quads * 4 : io.pad;
          for (index_t c = 0; c < p.quads * 4; ++c)
            acc += static_cast<int32_t>(a[c]) * panel[((t * p.quads + c / 4) * nr + j) * 4 + c % 4];
        }
        const index_t k = b * nr + j, oc = grp * g.Kg + kb * nr + j;
        float v = std::fma(static_cast<float>(acc - p.corr[static_cast<size_t>(k)]), p.scale[static_cast<size_t>(k)],
                           p.bias[static_cast<size_t>(k)]);
        v = fake_quant(v, qe.sum);
        if (io.res) v += io.res[px * io.rs + oc];
        v = static_cast<float>(activate<double>(e.act, v, e.alpha, e.beta));
        if (qe.bytes.inv != 0.0f)
          reinterpret_cast<uint8_t*>(io.y)[px * io.ys + oc] = store_byte(v, qe.bytes);
        else
          io.y[px * io.ys + oc] = fake_quant(v, qe.out);
      }
    }
  }
}

}  // namespace

extern const Int8Kernels kInt8Kernels = {"ref", 1, conv_tile, quantize, conv};
}  // namespace ref

const Int8Kernels& int8_kernels_for(Isa isa) {
  if (isa == Isa::scalar) return ref::kInt8Kernels;
  if (isa == Isa::avx2) return avx2::kInt8Kernels;
  const char* env = std::getenv("CONVCORE_INT8");
  const std::string force = env != nullptr ? env : "";
  const CpuFeatures& f = cpu_features();
  if (force.empty() && f.amx_tile && f.amx_int8 && f.avx512_vnni && amx::amx_permitted()) return amx::kInt8Kernels;
  return f.avx512_vnni && force != "madd" ? avx512vnni::kInt8Kernels : avx512::kInt8Kernels;
}

}  // namespace convcore
