#include "kernels/pack.h"

#include <algorithm>

#include "core/pool.h"

namespace convcore {

ConvPacked pack_conv(const Kernels& k, const ConvGeom& g, const float* w, const float* bias, int threads) {
  ConvPacked pk;
  const index_t taps = g.R * g.S;
  k.conv_tile(g.Kg, g.Cg, taps, pk.t);
  pk.t.blocks_per_group = ceil_div(g.Kg, pk.t.nr);
  const index_t blocks = g.groups * pk.t.blocks_per_group;
  pk.t.panel = taps * g.Cg * pk.t.nr;
  pk.w.assign(static_cast<size_t>(blocks * pk.t.panel), 0.0f);
  pk.bias.assign(static_cast<size_t>(blocks * pk.t.nr), 0.0f);
  run_chunks(blocks, threads, [&](index_t b) {
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
  });
  return pk;
}

void pack_depthwise(const Kernels& k, index_t C, index_t G, index_t taps, const float* w, const float* bias,
                    AlignedVector& wp, AlignedVector& bp) {
  const index_t Cp = ceil_div(C, k.lanes) * k.lanes;
  wp.assign(static_cast<size_t>(taps * G * Cp), 0.0f);
  bp.assign(static_cast<size_t>(Cp), 0.0f);
  for (index_t c = 0; c < C; ++c) {
    for (index_t t = 0; t < taps; ++t)
      for (index_t j = 0; j < G; ++j) wp[static_cast<size_t>((t * G + j) * Cp + c)] = w[(c * G + j) * taps + t];
    if (bias) bp[static_cast<size_t>(c)] = bias[c];
  }
}

std::vector<float> winograd_filters(const float* w, index_t K, index_t C) {
  static constexpr double G[6][3] = {{1.0 / 4, 0, 0},           {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                     {-1.0 / 6, 1.0 / 6, -1.0 / 6}, {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                     {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1}};
  std::vector<float> u(static_cast<size_t>(36 * K * C));
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
  return u;
}

}  // namespace convcore
