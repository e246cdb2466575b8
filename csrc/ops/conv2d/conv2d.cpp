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

void pad_into_phases(const float* x, index_t H, index_t W, index_t pad_t, index_t pad_l, index_t stride_w,
                     index_t rows, index_t row_w, index_t phase_stride, float* dst) {
  for (index_t phase = 0; phase < stride_w; ++phase) {
    float* d = dst + phase * phase_stride;
    std::fill(d, d + rows * row_w, 0.0f);
    // The first padded column of this phase at or after pad_l, then every stride_w-th one, while inside the row.
    const index_t pc0 = phase + ceil_div(std::max<index_t>(pad_l - phase, 0), stride_w) * stride_w;
    const index_t iw0 = pc0 - pad_l, col0 = pc0 / stride_w;
    const index_t count = std::min(iw0 < W ? ceil_div(W - iw0, stride_w) : 0, std::max<index_t>(row_w - col0, 0));
    if (count <= 0) continue;
    for (index_t ph = std::max<index_t>(pad_t, 0); ph < std::min(rows, H + pad_t); ++ph) {
      const float* src = x + (ph - pad_t) * W + iw0;
      float* out = d + ph * row_w + col0;
      if (stride_w == 1) {
        std::memcpy(out, src, sizeof(float) * count);
      } else {
        for (index_t i = 0; i < count; ++i) out[i] = src[i * stride_w];
      }
    }
  }
}

namespace {

// Writes B rows [k0, k0+kc) x columns [n0, n0+ncols) of the implicit im2col matrix of one image and group, as
// NR-wide panels: row k = (c, r, q) tap, column j = output pixel. A run of pixels on one output row reads one input
// row, so each run is a zero fill, a (strided) copy and a zero fill, split where it crosses a panel boundary.
struct Im2colPacker {
  const Conv2dShape& s;
  const float* x;  // first channel of this image and group
  index_t nr;

  void operator()(index_t k0, index_t kc, index_t n0, index_t ncols, float* dst) const {
    const index_t RS = s.R * s.S, HW = s.H * s.W, sw = s.stride_w;
    const index_t padded = ceil_div(ncols, nr) * nr;
    for (index_t kk = 0; kk < kc; ++kk) {
      const index_t k = k0 + kk, c = k / RS, r = (k % RS) / s.S, q = k % s.S;
      const float* xc = x + c * HW;
      // Output columns ow in [ow_lo, ow_hi) read inside the row: 0 <= ow*stride - pad_l + q*dil < W.
      const index_t shift = q * s.dil_w - s.pad_l;
      const index_t ow_lo = shift >= 0 ? 0 : ceil_div(-shift, sw);
      const index_t last = s.W - 1 - shift;  // floor division below needs last >= 0
      const index_t ow_hi = last < 0 ? ow_lo : std::max<index_t>(ow_lo, std::min<index_t>(s.OW, last / sw + 1));
      index_t oh = n0 / s.OW, ow0 = n0 % s.OW, j = 0;
      while (j < ncols) {
        const index_t ih = oh * s.stride_h - s.pad_t + r * s.dil_h;
        const bool row_ok = ih >= 0 && ih < s.H;
        const float* row = xc + (row_ok ? ih * s.W : 0);
        const index_t run_end = std::min<index_t>(ncols, j + s.OW - ow0);  // columns [j, run_end) share this row
        while (j < run_end) {
          const index_t piece_end = std::min<index_t>(run_end, (j / nr + 1) * nr);  // stay inside one panel
          float* d = dst + (j / nr) * kc * nr + kk * nr + j % nr;  // d[i]: output column ow_a + i
          const index_t ow_a = ow0, ow_b = ow0 + (piece_end - j);  // output columns of this piece
          const index_t a = row_ok ? std::clamp(ow_lo, ow_a, ow_b) : ow_b, b = row_ok ? std::clamp(ow_hi, a, ow_b) : ow_b;
          for (index_t ow = ow_a; ow < a; ++ow) d[ow - ow_a] = 0.0f;
          if (sw == 1) {
            if (b > a) std::memcpy(d + (a - ow_a), row + a + shift, sizeof(float) * (b - a));
          } else {
            for (index_t ow = a; ow < b; ++ow) d[ow - ow_a] = row[ow * sw + shift];
          }
          for (index_t ow = b; ow < ow_b; ++ow) d[ow - ow_a] = 0.0f;
          ow0 = ow_b;
          j = piece_end;
        }
        ++oh;
        ow0 = 0;
      }
      for (; j < padded; ++j) dst[(j / nr) * kc * nr + kk * nr + j % nr] = 0.0f;
    }
  }
};

void conv2d_gemm(const GemmConfig& cfg, const Conv2dShape& s, const float* x, const float* w, const float* bias,
                 float* y, Clamp clamp) {
  const index_t G = s.groups, Cg = s.C / G, Kg = s.K / G, KD = Cg * s.R * s.S, P = s.OH * s.OW;
  const index_t problems = s.N * G, nr = cfg.nr, padded_p = ceil_div(P, nr) * nr;
  const int threads = threads_for(2.0 * s.N * s.K * P * KD, 1 << 21);
  // A = the weights as given: group g is rows [g*Kg, (g+1)*Kg) of a K x KD row-major matrix.
  const std::vector<GemmTask> blocks = gemm_tasks(Kg, P, cfg, problems, threads);
  const index_t nblocks = static_cast<index_t>(blocks.size()), ntasks = problems * nblocks;
  // Small im2col matrices (late, narrow layers, where tasks split the output channels) are packed once and shared;
  // large ones are packed block by block inside each task so the panels stay in cache.
  const bool shared = KD * padded_p * problems <= (index_t{1} << 22);
  std::vector<float> packed(shared ? KD * padded_p * problems : 0);
  const index_t kblocks = ceil_div(KD, kGemmKC), npanels = padded_p / nr;
  index_t max_cols = 0;
  for (const GemmTask& b : blocks) max_cols = std::max(max_cols, b.j1 - b.j0);
#pragma omp parallel num_threads(std::min<index_t>(threads, shared ? std::max(ntasks, problems * kblocks * npanels) : ntasks))
  {
    std::vector<float> bbuf(shared ? 0 : kGemmKC * ceil_div(max_cols, nr) * nr);
    if (shared) {
      // Layout per problem: k-block by k-block, each kc x padded_p as npanels panels of kc x NR.
#pragma omp for schedule(static)
      for (index_t item = 0; item < problems * kblocks * npanels; ++item) {
        const index_t p = item % npanels, kb = (item / npanels) % kblocks, ng = item / npanels / kblocks;
        const index_t n = ng / G, g = ng % G, k0 = kb * kGemmKC, kc = std::min(kGemmKC, KD - k0);
        const Im2colPacker pack{s, x + (n * s.C + g * Cg) * s.H * s.W, nr};
        pack(k0, kc, p * nr, std::min(nr, P - p * nr), packed.data() + ng * KD * padded_p + k0 * padded_p + p * kc * nr);
      }
    }
#pragma omp for schedule(dynamic, 1)
    for (index_t t = 0; t < ntasks; ++t) {
      const index_t ng = t / nblocks, n = ng / G, g = ng % G;
      const GemmTask& b = blocks[t % nblocks];
      const Im2colPacker pack{s, x + (n * s.C + g * Cg) * s.H * s.W, nr};
      auto panels = [&](index_t k0, index_t kc) -> const float* {
        if (shared) return packed.data() + ng * KD * padded_p + k0 * padded_p + (b.j0 / nr) * kc * nr;
        pack(k0, kc, b.j0, b.j1 - b.j0, bbuf.data());
        return bbuf.data();
      };
      gemm_block(cfg, Kg, KD, w + g * Kg * KD, KD, panels, b.j0, b.j1, b.mp0, b.mp1, y + (n * s.K + g * Kg) * P, P,
                 bias ? bias + g * Kg : nullptr, nullptr, clamp);
    }
  }
}

// Direct convolution: no im2col panels. Each tap (c, r, q) of an output row is a contiguous run of a (padded, and for
// stride_w > 1 column-phased) copy of the input, so the micro-kernel reads B rows in place through a per-tap offset
// table, one output row at a time. Used when output rows are wide enough to fill the tiles.
void conv2d_direct(const GemmConfig& cfg, const Conv2dShape& s, const float* x, const float* w, const float* bias,
                   float* y, Clamp clamp) {
  const index_t G = s.groups, Cg = s.C / G, Kg = s.K / G, KD = Cg * s.R * s.S, P = s.OH * s.OW;
  const index_t sw = s.stride_w;
  // A 1x1 / stride-1 / unpadded convolution reads the input as it is, all output rows as one long row.
  const bool in_place = s.R == 1 && s.S == 1 && s.stride_h == 1 && sw == 1 && s.pad_t == 0 && s.pad_b == 0 &&
                        s.pad_l == 0 && s.pad_r == 0;
  const index_t rows = in_place ? 1 : s.OH, cols = in_place ? P : s.OW;
  // Layout of the copy: [image][channel][column phase][PH rows][PWp columns].
  const index_t PH = (s.OH - 1) * s.stride_h + (s.R - 1) * s.dil_h + 1;
  const index_t PWp = s.OW + ((s.S - 1) * s.dil_w) / sw;
  const index_t row_stride = in_place ? 0 : PWp, phase_stride = PH * PWp, chan_stride = in_place ? s.H * s.W : sw * phase_stride;
  std::vector<index_t> boff(KD);  // tap -> offset from the first channel of the group, output row 0
  for (index_t k = 0; k < KD; ++k) {
    const index_t c = k / (s.R * s.S), r = (k / s.S) % s.R, q = k % s.S, col = q * s.dil_w;
    boff[k] = c * chan_stride + (col % sw) * phase_stride + r * s.dil_h * row_stride + col / sw;
  }
  const int threads = threads_for(2.0 * s.N * s.K * P * KD, 1 << 21);
  std::vector<float> copy(in_place ? 0 : s.N * s.C * chan_stride);
  const float* src = in_place ? x : copy.data();

  // Tasks: blocks of output rows of one image and group; row panels split too when that leaves threads idle.
  const index_t problems = s.N * G, mpanels = ceil_div(Kg, cfg.mr);
  const index_t row_blocks = std::min(rows, std::max<index_t>(1, ceil_div(2 * threads, problems)));
  const index_t rows_per_block = ceil_div(rows, row_blocks);
  const index_t msplit = problems * row_blocks >= threads ? 1 : std::min(mpanels, ceil_div(threads, problems * row_blocks));
  const index_t ntasks = problems * row_blocks * msplit;
#pragma omp parallel num_threads(threads)
  {
    if (!in_place) {
#pragma omp for schedule(static)
      for (index_t nc = 0; nc < s.N * s.C; ++nc)
        pad_into_phases(x + nc * s.H * s.W, s.H, s.W, s.pad_t, s.pad_l, sw, PH, PWp, phase_stride,
                        copy.data() + nc * chan_stride);
    }
#pragma omp for schedule(dynamic, 1)
    for (index_t t = 0; t < ntasks; ++t) {
      const index_t ms = t % msplit, rb = (t / msplit) % row_blocks, ng = t / msplit / row_blocks;
      const index_t n = ng / G, g = ng % G;
      const index_t oh0 = rb * rows_per_block, oh1 = std::min(rows, oh0 + rows_per_block);
      const index_t mp0 = mpanels * ms / msplit, mp1 = mpanels * (ms + 1) / msplit;
      const float* xg = src + (n * s.C + g * Cg) * chan_stride;
      float* yg = y + (n * s.K + g * Kg) * P;
      const float* bg = bias ? bias + g * Kg : nullptr;
      for (index_t k0 = 0; k0 < KD; k0 += kGemmKC) {
        const index_t kc = std::min(kGemmKC, KD - k0);
        for (index_t mp = mp0; mp < mp1; ++mp) {
          const index_t m0 = mp * cfg.mr;
          const float* a = w + (g * Kg + m0) * KD + k0;
          const int m_valid = static_cast<int>(std::min<index_t>(cfg.mr, Kg - m0));
          for (index_t oh = oh0; oh < oh1; ++oh)
            for (index_t j0 = 0; j0 < cols; j0 += cfg.nr) {
              const int n_valid = static_cast<int>(std::min<index_t>(cfg.nr, cols - j0));
              cfg.ukernel(kc, a, KD, xg + oh * s.stride_h * row_stride + j0, boff.data() + k0,
                          yg + m0 * P + oh * cols + j0, P, m_valid, n_valid, k0 > 0, k0 + kc == KD,
                          bg ? bg + m0 : nullptr, nullptr, clamp);
            }
        }
      }
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
  // Measured on Zen 5 (bench_ops.py shapes): the direct path wins when few output channels share each im2col element
  // (packing dominates) or when output rows are long enough to fill whole tiles; otherwise the aligned im2col panels
  // win (shifted in-place rows make most vector loads straddle cache lines).
  if (s.K / s.groups <= 32 || s.OW >= 48) return conv2d_direct(*cfg, s, x, w, bias, y, clamp);
  conv2d_gemm(*cfg, s, x, w, bias, y, clamp);
}

}  // namespace convcore
