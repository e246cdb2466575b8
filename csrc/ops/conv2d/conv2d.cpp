#include "ops/conv2d/conv2d.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/cpu.h"
#include "core/threads.h"
#include "ops/dwconv2d/dwconv2d.h"
#include "ops/gemm/gemm.h"

namespace convcore {

void conv2d_check(const Conv2dShape& s) {
  require(s.N >= 1 && s.C >= 1 && s.H >= 1 && s.W >= 1 && s.K >= 1 && s.R >= 1 && s.S >= 1, "conv2d: sizes must be positive");
  require(s.stride_h >= 1 && s.stride_w >= 1 && s.dil_h >= 1 && s.dil_w >= 1, "conv2d: stride and dilation must be >= 1");
  require(s.pad_t >= 0 && s.pad_b >= 0 && s.pad_l >= 0 && s.pad_r >= 0, "conv2d: padding must be >= 0");
  require(s.groups >= 1 && s.C % s.groups == 0 && s.K % s.groups == 0, "conv2d: groups must divide both channel counts");
  require(s.OH >= 1 && s.OW >= 1 && s.OH == conv_out_size(s.H, s.R, s.stride_h, s.dil_h, s.pad_t, s.pad_b) &&
              s.OW == conv_out_size(s.W, s.S, s.stride_w, s.dil_w, s.pad_l, s.pad_r),
          "conv2d: output size does not match input, kernel, stride, dilation and padding");
}

namespace {

// Writes a kc x nr panel of the implicit im2col matrix of one image and group: row k = (c, r, q) tap, column j =
// output pixel. Runs of pixels on one output row read one input row, so the inner loops are plain (strided) copies.
struct Im2colPacker {
  const Conv2dShape& s;
  const float* x;  // first channel of this image and group
  int nr;

  void operator()(index_t k0, index_t kc, index_t n0, index_t ncols, float* dst) const {
    const index_t RS = s.R * s.S, HW = s.H * s.W;
    for (index_t kk = 0; kk < kc; ++kk) {
      const index_t k = k0 + kk, c = k / RS, r = (k % RS) / s.S, q = k % s.S;
      const float* xc = x + c * HW;
      float* d = dst + kk * nr;
      // Output columns ow in [ow_lo, ow_hi) read inside the row: 0 <= ow*stride - pad_l + q*dil < W.
      const index_t shift = q * s.dil_w - s.pad_l;
      const index_t ow_lo = shift >= 0 ? 0 : ceil_div(-shift, s.stride_w);
      const index_t last = s.W - 1 - shift;  // floor division below needs last >= 0
      const index_t ow_hi = last < 0 ? ow_lo : std::max<index_t>(ow_lo, std::min<index_t>(s.OW, last / s.stride_w + 1));
      index_t j = 0;
      while (j < ncols) {
        const index_t p = n0 + j, oh = p / s.OW, ow0 = p % s.OW;
        const index_t len = std::min<index_t>(ncols - j, s.OW - ow0);
        const index_t ih = oh * s.stride_h - s.pad_t + r * s.dil_h;
        float* out = d + j;
        if (ih < 0 || ih >= s.H) {
          std::memset(out, 0, sizeof(float) * len);
        } else {
          const float* row = xc + ih * s.W;
          const index_t a = std::clamp(ow_lo, ow0, ow0 + len), b = std::clamp(ow_hi, a, ow0 + len);
          for (index_t ow = ow0; ow < a; ++ow) out[ow - ow0] = 0.0f;
          if (s.stride_w == 1)
            std::memcpy(out + (a - ow0), row + a + shift, sizeof(float) * (b - a));
          else
            for (index_t ow = a; ow < b; ++ow) out[ow - ow0] = row[ow * s.stride_w + shift];
          for (index_t ow = b; ow < ow0 + len; ++ow) out[ow - ow0] = 0.0f;
        }
        j += len;
      }
      for (; j < nr; ++j) d[j] = 0.0f;
    }
  }
};

void conv2d_gemm(const GemmConfig& cfg, const Conv2dShape& s, const float* x, const float* w, const float* bias,
                 float* y, Clamp clamp) {
  const index_t G = s.groups, Cg = s.C / G, Kg = s.K / G, KD = Cg * s.R * s.S, P = s.OH * s.OW;
  const int threads = num_threads();
  // Weights of group g are rows [g*Kg, (g+1)*Kg) of a K x KD row-major matrix: pack each group's rows.
  const index_t a_size = gemm_packed_a_size(Kg, KD, cfg.mr);
  std::vector<float> packed_a(a_size * G);
#pragma omp parallel for num_threads(std::min<index_t>(threads, G))
  for (index_t g = 0; g < G; ++g) gemm_pack_a(w + g * Kg * KD, KD, Kg, KD, cfg.mr, packed_a.data() + g * a_size);

  const std::vector<GemmTask> blocks = gemm_tasks(Kg, P, cfg, s.N * G, threads);
  index_t max_cols = 0;
  for (const GemmTask& b : blocks) max_cols = std::max(max_cols, b.j1 - b.j0);
  const index_t nblocks = static_cast<index_t>(blocks.size()), ntasks = s.N * G * nblocks;
#pragma omp parallel num_threads(std::min<index_t>(threads, ntasks))
  {
    std::vector<float> bbuf(kGemmKC * ceil_div(max_cols, cfg.nr) * cfg.nr);
#pragma omp for schedule(dynamic, 1)
    for (index_t t = 0; t < ntasks; ++t) {
      const index_t ng = t / nblocks, n = ng / G, g = ng % G;
      const GemmTask& b = blocks[t % nblocks];
      const Im2colPacker pack{s, x + (n * s.C + g * Cg) * s.H * s.W, cfg.nr};
      gemm_block(cfg, Kg, KD, packed_a.data() + g * a_size, pack, b.j0, b.j1, b.mp0, b.mp1,
                 y + (n * s.K + g * Kg) * P, P, bias ? bias + g * Kg : nullptr, nullptr, clamp, bbuf.data());
    }
  }
}

}  // namespace

void conv2d(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y, Clamp clamp) {
  conv2d_check(s);
  const Isa isa = active_isa();
  if (s.groups == s.C && s.groups > 1) return dwconv2d(s, x, w, bias, y, clamp);  // one input channel per group
  const GemmConfig* cfg = gemm_config(isa);
  if (cfg == nullptr) return conv2d_ref(s, x, w, bias, y, clamp);
  conv2d_gemm(*cfg, s, x, w, bias, y, clamp);
}

}  // namespace convcore
