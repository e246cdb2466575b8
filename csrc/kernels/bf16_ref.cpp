// The bf16 convolution's packing, its reference kernel (bf16-rounded inputs and weights, products summed in double:
// the oracle the AMX and AVX512-BF16 kernels are tested against) and the choice of kernels for this CPU.
#include <algorithm>
#include <cstdlib>
#include <string>

#include "kernels/bf16.h"

namespace convcore {

BConvPacked pack_bconv(const ConvGeom& g, const float* w, const float* bias) {
  BConvPacked p;
  const index_t taps = g.taps();
  p.depth = ceil_div(taps * g.Cg, kBf16Step) * kBf16Step;
  p.blocks_per_group = ceil_div(g.Kg, kBf16Block);
  const index_t blocks = g.groups * p.blocks_per_group;
  p.w.assign(static_cast<size_t>(blocks * p.panel()), 0);
  p.bias.assign(static_cast<size_t>(blocks * kBf16Block), 0.0f);
  for (index_t b = 0; b < blocks; ++b) {
    const index_t grp = b / p.blocks_per_group, k0 = b % p.blocks_per_group * kBf16Block;
    uint16_t* panel = p.w.data() + b * p.panel();
    for (index_t j = 0; j < kBf16Block && k0 + j < g.Kg; ++j) {
      const index_t oc = grp * g.Kg + k0 + j;
      if (bias) p.bias[static_cast<size_t>(b * kBf16Block + j)] = bias[oc];
      for (index_t c = 0; c < g.Cg; ++c)
        for (index_t t = 0; t < taps; ++t) {
          const index_t k = t * g.Cg + c;
          panel[(k / 2 * kBf16Block + j) * 2 + k % 2] = to_bf16(w[(oc * g.Cg + c) * taps + t]);
        }
    }
  }
  return p;
}

void gather_bf16_ref(const ConvGeom& g, const ConvIO& io, bool x_bf16, index_t depth, index_t grp, index_t px,
                     index_t rows, uint16_t* dst) {
  std::fill(dst, dst + 16 * depth, 0);
  for (index_t j = 0; j < rows; ++j) {
    const index_t q = px + j, n = q / (g.OH * g.OW), oh = q / g.OW % g.OH, ow = q % g.OW;
    for (index_t t = 0; t < g.taps(); ++t) {
      uint16_t* out = dst + j * depth + t * g.Cg;
      if (x_bf16) {
        const uint16_t* src = conv_tap_ptr_bf16(g, io, n, oh, ow, t / g.S, t % g.S, grp * g.Cg);
        std::copy(src, src + g.Cg, out);
        continue;
      }
      const float* src = conv_tap_ptr(g, io, n, oh, ow, t / g.S, t % g.S, grp * g.Cg);
      for (index_t c = 0; c < g.Cg; ++c) out[c] = to_bf16(src[c]);
    }
  }
}

namespace ref {
namespace {

void conv(const ConvGeom& g, const BConvPacked& p, const ConvIO& io, const Epilogue& e, const Bf16Storage& st,
          index_t p0, index_t p1, index_t b0, index_t b1) {
  std::vector<uint16_t> rows(static_cast<size_t>(16 * p.depth));
  for (index_t px = p0; px < p1; px += 16) {
    const index_t m = std::min<index_t>(16, p1 - px);
    for (index_t b = b0; b < b1; ++b) {
      const index_t grp = b / p.blocks_per_group, k0 = b % p.blocks_per_group * kBf16Block;
      gather_bf16_ref(g, io, st.x, p.depth, grp, px, m, rows.data());
      const uint16_t* panel = p.w.data() + b * p.panel();
      for (index_t i = 0; i < m; ++i)
        for (index_t j = 0; j < kBf16Block && k0 + j < g.Kg; ++j) {
          double acc = 0.0;
          for (index_t k = 0; k < p.depth; ++k)
            acc += static_cast<double>(from_bf16(rows[static_cast<size_t>(i * p.depth + k)])) *
                   from_bf16(panel[(k / 2 * kBf16Block + j) * 2 + k % 2]);
          const index_t q = px + i, oc = grp * g.Kg + k0 + j;
          acc = static_cast<float>(acc) + static_cast<double>(p.bias[static_cast<size_t>(b * kBf16Block + j)]);
          if (io.res)
            acc += st.res ? from_bf16(reinterpret_cast<const uint16_t*>(io.res)[q * io.rs + oc]) : io.res[q * io.rs + oc];
          const float v = masked(static_cast<float>(activate<double>(e.act, acc, e.alpha, e.beta)),
                                 io.mask ? io.mask + q * io.ms + oc : nullptr, e);
          if (st.y)
            reinterpret_cast<uint16_t*>(io.y)[q * io.ys + oc] = to_bf16(v);
          else
            io.y[q * io.ys + oc] = v;
        }
    }
  }
}

}  // namespace

extern const Bf16Kernels kBf16Kernels = {"ref_bf16", conv};
}  // namespace ref

const Bf16Kernels* bf16_kernels_for(Isa isa) {
  if (isa == Isa::scalar) return &ref::kBf16Kernels;
  const CpuFeatures& f = cpu_features();
  if (isa != Isa::avx512 || !f.avx512_bf16) return nullptr;
  const char* env = std::getenv("CONVCORE_BF16");
  const bool force_avx512 = env != nullptr && std::string(env) == "avx512bf16";
  if (!force_avx512 && f.amx_tile && f.amx_bf16 && amx::amx_permitted()) return &amx::kBf16Kernels;
  return &avx512bf16::kBf16Kernels;
}

}  // namespace convcore
