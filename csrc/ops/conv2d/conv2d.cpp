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

// Where the im2col matrix of a convolution lives without being built: tap k = (c, r, q) of output pixel (oh, ow) of
// image n, group g is the float at  source + (n * C + g * Cg) * chan_stride + tap[k] + oh * row_step + ow.
// The source is the input itself for a 1x1 / stride-1 / unpadded convolution, else a zero-padded copy split into
// stride_w column phases (pad_into_phases), so that every run of pixels on one output row is contiguous.
struct TapLayout {
  bool in_place;
  index_t rows, row_w, phase_stride, chan_stride, row_step;
  std::vector<index_t> tap;

  explicit TapLayout(const Conv2dShape& s)
      : in_place(s.R == 1 && s.S == 1 && s.stride_h == 1 && s.stride_w == 1 && s.pad_t == 0 && s.pad_b == 0 &&
                 s.pad_l == 0 && s.pad_r == 0),
        rows((s.OH - 1) * s.stride_h + (s.R - 1) * s.dil_h + 1),  // padded rows any window reads
        row_w(in_place ? s.W : s.OW + ((s.S - 1) * s.dil_w) / s.stride_w),
        phase_stride(rows * row_w),
        chan_stride(in_place ? s.H * s.W : s.stride_w * phase_stride),
        row_step(s.stride_h * row_w),
        tap((s.C / s.groups) * s.R * s.S) {
    for (index_t k = 0; k < static_cast<index_t>(tap.size()); ++k) {
      const index_t c = k / (s.R * s.S), r = (k / s.S) % s.R, col = (k % s.S) * s.dil_w;
      tap[k] = c * chan_stride + (col % s.stride_w) * phase_stride + r * s.dil_h * row_w + col / s.stride_w;
    }
  }

  index_t copy_size(const Conv2dShape& s) const { return in_place ? 0 : s.N * s.C * chan_stride; }

  // copy_size in floating point, computed from the shape alone (before any index_t product can overflow).
  static double copy_size_estimate(const Conv2dShape& s) {
    if (s.R == 1 && s.S == 1 && s.stride_h == 1 && s.stride_w == 1 && s.pad_t == 0 && s.pad_b == 0 && s.pad_l == 0 &&
        s.pad_r == 0)
      return 0.0;
    const double rows = double(s.OH - 1) * s.stride_h + double(s.R - 1) * s.dil_h + 1;
    const double row_w = double(s.OW) + double((s.S - 1) * s.dil_w / s.stride_w);
    return double(s.N) * s.C * s.stride_w * rows * row_w;
  }

  // Fills channel nc (image-major) of the copy; call for every channel before reading taps.
  void fill(const Conv2dShape& s, const float* x, index_t nc, float* copy) const {
    pad_into_phases(x + nc * s.H * s.W, s.H, s.W, s.pad_t, s.pad_l, s.stride_w, rows, row_w, phase_stride,
                    copy + nc * chan_stride);
  }
};

// Packs B rows [k0, k0+kc) x pixels [n0, n0+ncols) of one image and group into NR-wide panels: one memcpy per run of
// pixels that shares an output row and a panel.
struct TapPacker {
  const float* base;  // source of this image and group
  const index_t* tap;
  index_t row_step, OW, nr;

  void operator()(index_t k0, index_t kc, index_t n0, index_t ncols, float* dst) const {
    const index_t padded = ceil_div(ncols, nr) * nr;
    for (index_t kk = 0; kk < kc; ++kk) {
      const float* src = base + tap[k0 + kk];
      index_t oh = n0 / OW, ow = n0 % OW, j = 0;
      while (j < ncols) {
        const index_t len = std::min({ncols - j, OW - ow, nr - j % nr});
        std::memcpy(dst + (j / nr) * kc * nr + kk * nr + j % nr, src + oh * row_step + ow, sizeof(float) * len);
        j += len;
        ow += len;
        if (ow == OW) ow = 0, ++oh;
      }
      for (; j < padded; ++j) dst[(j / nr) * kc * nr + kk * nr + j % nr] = 0.0f;
    }
  }
};

// im2col GEMM: B packed into aligned NR-wide panels, tiles spanning output rows. Small matrices (late, narrow layers,
// where tasks split the output channels) are packed once and shared; large ones block by block inside each task.
void conv2d_gemm(const GemmConfig& cfg, const Conv2dShape& s, const float* x, const float* w, const float* bias,
                 float* y, Clamp clamp) {
  const index_t G = s.groups, Cg = s.C / G, Kg = s.K / G, KD = Cg * s.R * s.S, P = s.OH * s.OW;
  const index_t problems = s.N * G, nr = cfg.nr, padded_p = ceil_div(P, nr) * nr;
  const int threads = threads_for(2.0 * s.N * s.K * P * KD, 1 << 21);
  const TapLayout taps(s);
  std::vector<float> copy(taps.copy_size(s));
  const float* source = taps.in_place ? x : copy.data();
  // A = the weights as given: group g is rows [g*Kg, (g+1)*Kg) of a K x KD row-major matrix.
  const std::vector<GemmTask> blocks = gemm_tasks(Kg, P, cfg, problems, threads);
  const index_t nblocks = static_cast<index_t>(blocks.size()), ntasks = problems * nblocks;
  const bool shared = KD * padded_p * problems <= (index_t{1} << 22);
  std::vector<float> packed(shared ? KD * padded_p * problems : 0);
  const index_t kblocks = ceil_div(KD, kGemmKC), npanels = padded_p / nr;
  index_t max_cols = 0;
  for (const GemmTask& b : blocks) max_cols = std::max(max_cols, b.j1 - b.j0);
  // Every thread's panel buffer, allocated here: an exception (std::bad_alloc) must not leave an OpenMP region.
  const index_t bbuf_size = shared ? 0 : kGemmKC * ceil_div(max_cols, nr) * nr;
  std::vector<float> bbufs(bbuf_size * threads);
  auto packer = [&](index_t ng) {
    return TapPacker{source + (ng / G * s.C + ng % G * Cg) * taps.chan_stride, taps.tap.data(), taps.row_step, s.OW, nr};
  };
#pragma omp parallel num_threads(threads)
  {
    float* const bbuf = bbufs.data() + bbuf_size * omp_get_thread_num();
    if (!taps.in_place) {
#pragma omp for schedule(static)
      for (index_t nc = 0; nc < s.N * s.C; ++nc) taps.fill(s, x, nc, copy.data());
    }
    if (shared) {
      // Layout per problem: k-block by k-block, each kc x padded_p as npanels panels of kc x NR.
#pragma omp for schedule(static)
      for (index_t item = 0; item < problems * kblocks * npanels; ++item) {
        const index_t p = item % npanels, kb = (item / npanels) % kblocks, ng = item / npanels / kblocks;
        const index_t k0 = kb * kGemmKC, kc = std::min(kGemmKC, KD - k0);
        packer(ng)(k0, kc, p * nr, std::min(nr, P - p * nr), packed.data() + ng * KD * padded_p + k0 * padded_p + p * kc * nr);
      }
    }
#pragma omp for schedule(dynamic, 1)
    for (index_t t = 0; t < ntasks; ++t) {
      const index_t ng = t / nblocks, n = ng / G, g = ng % G;
      const GemmTask& b = blocks[t % nblocks];
      const TapPacker pack = packer(ng);
      auto panels = [&](index_t k0, index_t kc) -> const float* {
        if (shared) return packed.data() + ng * KD * padded_p + k0 * padded_p + (b.j0 / nr) * kc * nr;
        pack(k0, kc, b.j0, b.j1 - b.j0, bbuf);
        return static_cast<const float*>(bbuf);
      };
      gemm_block(cfg, Kg, KD, w + g * Kg * KD, KD, panels, b.j0, b.j1, b.mp0, b.mp1, y + (n * s.K + g * Kg) * P, P,
                 bias ? bias + g * Kg : nullptr, nullptr, clamp);
    }
  }
}

// Direct convolution: no panels at all. The micro-kernel reads each tap's run of pixels in place (through the tap
// offset table), one output row at a time, or all rows at once when the source is the input itself.
void conv2d_direct(const GemmConfig& cfg, const Conv2dShape& s, const float* x, const float* w, const float* bias,
                   float* y, Clamp clamp) {
  const index_t G = s.groups, Cg = s.C / G, Kg = s.K / G, KD = Cg * s.R * s.S, P = s.OH * s.OW;
  const TapLayout taps(s);
  const index_t rows = taps.in_place ? 1 : s.OH, cols = taps.in_place ? P : s.OW;  // in place: one long row
  const int threads = threads_for(2.0 * s.N * s.K * P * KD, 1 << 21);
  std::vector<float> copy(taps.copy_size(s));
  const float* source = taps.in_place ? x : copy.data();

  // Tasks: blocks of output rows of one image and group; row panels split too when that leaves threads idle.
  const index_t problems = s.N * G, mpanels = ceil_div(Kg, cfg.mr);
  const index_t row_blocks = std::min(rows, std::max<index_t>(1, ceil_div(2 * threads, problems)));
  const index_t rows_per_block = ceil_div(rows, row_blocks);
  const index_t msplit = problems * row_blocks >= threads ? 1 : std::min(mpanels, ceil_div(threads, problems * row_blocks));
  const index_t ntasks = problems * row_blocks * msplit;
#pragma omp parallel num_threads(threads)
  {
    if (!taps.in_place) {
#pragma omp for schedule(static)
      for (index_t nc = 0; nc < s.N * s.C; ++nc) taps.fill(s, x, nc, copy.data());
    }
#pragma omp for schedule(dynamic, 1)
    for (index_t t = 0; t < ntasks; ++t) {
      const index_t ms = t % msplit, rb = (t / msplit) % row_blocks, ng = t / msplit / row_blocks;
      const index_t n = ng / G, g = ng % G;
      const index_t oh0 = rb * rows_per_block, oh1 = std::min(rows, oh0 + rows_per_block);
      const index_t mp0 = mpanels * ms / msplit, mp1 = mpanels * (ms + 1) / msplit;
      const float* xg = source + (n * s.C + g * Cg) * taps.chan_stride;
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
              cfg.ukernel(kc, a, KD, xg + oh * taps.row_step + j0, taps.tap.data() + k0, yg + m0 * P + oh * cols + j0,
                          P, m_valid, n_valid, k0 > 0, k0 + kc == KD, bg ? bg + m0 : nullptr, nullptr, clamp);
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
  if (!padded_copy_pays(TapLayout::copy_size_estimate(s), double(s.N) * s.C * s.H * s.W,
                        double(s.N) * s.K * s.OH * s.OW))
    return conv2d_ref(s, x, w, bias, y, clamp);
  // Measured on Zen 5 (bench_ops.py shapes): the direct path wins when few output channels share each im2col element
  // (packing dominates) or when output rows are long enough to fill whole tiles; otherwise the aligned im2col panels
  // win (shifted in-place rows make most vector loads straddle cache lines).
  if (s.K / s.groups <= 32 || s.OW >= 48) return conv2d_direct(*cfg, s, x, w, bias, y, clamp);
  conv2d_gemm(*cfg, s, x, w, bias, y, clamp);
}

}  // namespace convcore
