#include "ops/conv2d/conv2d.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/aligned.h"
#include "core/cpu.h"
#include "core/pool.h"
#include "core/threads.h"
#include "kernels/kernels.h"

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

// Where the im2col matrix of a group lies without being built: tap k = (c, r, q) of output pixel (oh, ow) is the float
// at  source + c * chan_stride + tap[k] + oh * row_step + ow. The source is the input itself for a 1x1 / stride-1 /
// unpadded convolution (then all output rows are one row), else a zero-padded copy split into stride_w column phases
// (pad_into_phases), so that every run of pixels on one output row is contiguous.
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

  // The copy's size in floating point, from the shape alone (before any index_t product can overflow).
  static double copy_size_estimate(const Conv2dShape& s) {
    if (s.R == 1 && s.S == 1 && s.stride_h == 1 && s.stride_w == 1 && s.pad_t == 0 && s.pad_b == 0 && s.pad_l == 0 &&
        s.pad_r == 0)
      return 0.0;
    const double rows = double(s.OH - 1) * s.stride_h + double(s.R - 1) * s.dil_h + 1;
    const double row_w = double(s.OW) + double((s.S - 1) * s.dil_w / s.stride_w);
    return double(s.N) * s.C * s.stride_w * rows * row_w;
  }

  // Fills the copy of channels [c0, c0 + count) of image n.
  void fill(const Conv2dShape& s, const float* x, index_t n, index_t c0, index_t count, float* copy) const {
    for (index_t c = 0; c < count; ++c)
      pad_into_phases(x + (n * s.C + c0 + c) * s.H * s.W, s.H, s.W, s.pad_t, s.pad_l, s.stride_w, rows, row_w,
                      phase_stride, copy + c * chan_stride);
  }
};

constexpr index_t kBlockK = 512;  // the reduction is split into blocks of this many taps (C reads them back once)

}  // namespace

// Each (image, group) is a GEMM: its Kg output channels (the weight rows as stored) times the group's im2col matrix
// read in place. Tasks are (image, group, block of output rows, range of output channels); when there are enough
// (image, group) problems (a depthwise convolution has N * C), a task pads its group's planes into its own scratch,
// which stays in cache; otherwise the padded copy is made once, shared by all tasks.
void conv2d(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y) {
  conv2d_check(s);
  const Isa isa = active_isa();
  if (isa == Isa::scalar || !padded_copy_pays(TapLayout::copy_size_estimate(s), double(s.N) * s.C * s.H * s.W,
                                              double(s.N) * s.K * s.OH * s.OW))
    return conv2d_ref(s, x, w, bias, y);
  const Kernels& k = kernels_for(isa);
  const index_t G = s.groups, Cg = s.C / G, Kg = s.K / G, KD = Cg * s.R * s.S, P = s.OH * s.OW;
  const TapLayout taps(s);
  // A depthwise convolution is bound by loads and memory, not FMAs: a second thread pays off at less work.
  const int threads = threads_for(2.0 * s.N * s.K * P * KD, Cg == 1 ? 1 << 18 : 1 << 21);
  const index_t rows = taps.in_place ? 1 : s.OH, cols = taps.in_place ? P : s.OW;  // in place: one long row
  const index_t problems = s.N * G;
  const bool private_copy = !taps.in_place && problems >= 2 * threads;
  // A 1x1 convolution read in place is one long row: its blocks are column ranges (whole vectors) instead.
  const index_t spans = taps.in_place ? ceil_div(cols, 64) : rows;
  const index_t row_blocks = private_copy ? 1 : std::min(spans, std::max<index_t>(1, ceil_div(2 * threads, problems)));
  const index_t rows_per_block = ceil_div(spans, row_blocks);
  const index_t msplit = private_copy || problems * row_blocks >= threads ? 1 : std::min(ceil_div(Kg, 8),
                                                                                         ceil_div(threads, problems * row_blocks));
  std::vector<float> shared(taps.in_place || private_copy ? 0 : static_cast<size_t>(s.N * s.C * taps.chan_stride));
  if (!shared.empty())
    run_chunks(s.N * s.C, threads, [&](index_t nc) {
      taps.fill(s, x, nc / s.C, nc % s.C, 1, shared.data() + nc * taps.chan_stride);
    });
  const index_t scratch = private_copy ? Cg * taps.chan_stride : 0;
  const index_t tasks = problems * row_blocks * msplit;
  auto task = [&](index_t t) {
    const index_t ms = t % msplit, rb = (t / msplit) % row_blocks, ng = t / msplit / row_blocks;
    const index_t n = ng / G, g = ng % G;
    const index_t oh0 = rb * rows_per_block, oh1 = std::min(spans, oh0 + rows_per_block);
    const index_t m0 = Kg * ms / msplit, m1 = Kg * (ms + 1) / msplit;
    const float* src;
    if (taps.in_place) {
      src = x + (n * s.C + g * Cg) * s.H * s.W;
    } else if (private_copy) {
      thread_local AlignedVector copy;
      if (static_cast<index_t>(copy.size()) < scratch) copy.assign(static_cast<size_t>(scratch), 0.0f);
      taps.fill(s, x, n, g * Cg, Cg, copy.data());
      src = copy.data();
    } else {
      src = shared.data() + (n * s.C + g * Cg) * taps.chan_stride;
    }
    float* yg = y + (n * s.K + g * Kg) * P;
    const float* wg = w + g * Kg * KD;
    // Output rows [r0, r1) x columns [j0, j1): rows of the map, or column blocks of a one-row 1x1 convolution.
    const index_t r0 = taps.in_place ? 0 : oh0, r1 = taps.in_place ? 1 : oh1;
    const index_t j0 = taps.in_place ? 64 * oh0 : 0, j1 = taps.in_place ? std::min(cols, 64 * oh1) : cols;
    if (Cg == 1) {  // depthwise (times a multiplier): one filter per output plane
      for (index_t m = m0; m < m1; ++m)
        k.dw_plane(KD, wg + m * KD, bias ? bias[g * Kg + m] : 0.0f, src + r0 * taps.row_step + j0, taps.row_step,
                   taps.tap.data(), yg + m * P + r0 * cols + j0, r1 - r0, j1 - j0);
      return;
    }
    for (index_t k0 = 0; k0 < KD; k0 += kBlockK) {
      const index_t kc = std::min(kBlockK, KD - k0);
      const float* b0 = k0 == 0 && bias ? bias + g * Kg + m0 : nullptr;
      for (index_t oh = r0; oh < r1; ++oh)
        k.gemm_rows(kc, wg + m0 * KD + k0, KD, b0, src + oh * taps.row_step + j0, taps.tap.data() + k0,
                    yg + m0 * P + oh * cols + j0, P, m1 - m0, j1 - j0, k0 > 0);
    }
  };
  // Private copies: a few (image, group) problems per chunk, so that small ones (7x7 depthwise planes) are not
  // dominated by claiming chunks.
  const index_t per_chunk = private_copy ? std::max<index_t>(1, tasks / (8 * threads)) : 1;
  run_chunks(ceil_div(tasks, per_chunk), threads, [&](index_t chunk) {
    for (index_t t = chunk * per_chunk; t < std::min(tasks, (chunk + 1) * per_chunk); ++t) task(t);
  });
}

}  // namespace convcore
