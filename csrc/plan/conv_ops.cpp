// The CPU Plan's convolutions: implicit GEMM (dense and grouped), depthwise, Winograd F(4x4, 3x3) and the fused
// inverted-residual block, all on the shared kernels (kernels/kernels.h) with weights packed once (kernels/pack.h).
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/bf16.h"
#include "kernels/pack.h"
#include "plan/op_util.h"

namespace convcore {
using namespace planop;
namespace {

// Where a convolution's tensors lie in this run (residual and mask: -1 for none).
ConvIO conv_io(const Exec& ex, int x, int y, int res, int mask) {
  const TensorView in = ex.at(x), out = ex.at(y);
  const TensorView r = res >= 0 ? ex.at(res) : TensorView{nullptr, 0, 0};
  const TensorView mk = mask >= 0 ? ex.at(mask) : TensorView{nullptr, 0, 0};
  return ConvIO{in.base, in.stride, out.base, out.stride, r.base, r.stride, ex.plan->zeros(), mk.base, mk.stride};
}

struct ConvOp : CpuOp {
  ConvGeom g;  // N set per run
  ConvPacked packed;
  Epilogue e;
  int x, y, res;
  int scale = -1;  // per image input-channel scale (N x 1 x 1 x C, a squeeze-excitation gate), or -1
  int mask = -1;   // the epilogue's mask tensor (y's shape), or -1
  const Kernels* k;
  bool split_blocks;  // threads share the output channel blocks (each reads all the input) rather than the pixels

  int parallelism(index_t N, int threads) const override {
    return parts_for(flops_per_image * N, kFlopGrain, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    ConvGeom geo = g;
    geo.N = ex.N;
    const ConvIO io = conv_io(ex, x, y, res, mask);
    const index_t blocks = g.groups * packed.t.blocks_per_group, P = geo.pixels();
    if (scale >= 0) return run_scaled(ex, io, part, parts);
    if (split_blocks && parts > 1) {
      const auto [b0, b1] = share(blocks, part, parts);
      if (b0 < b1) k->conv(geo, packed.view(), io, e, 0, P, b0, b1);
    } else {
      const auto [p0, p1] = share(P, part, parts, packed.t.mr);
      const index_t chunk = pixel_chunk(p1 - p0, 4.0 * g.Cg * g.sh * g.sw, packed.t.blocks_per_group,
                                        4.0 * static_cast<double>(packed.w.size()), packed.t.mr);
      for (index_t c = p0; c < p1; c += chunk)
        k->conv(geo, packed.view(), io, e, c, std::min(p1, c + chunk), 0, blocks);
    }
  }

  // conv(x * s[n, c]) = conv_{w * s[n, c]}(x): the gate multiplies the packed weights of each image (K x C values)
  // instead of every pixel of x (a pass over the whole tensor). The lowering uses it when K < H * W.
  void run_scaled(const Exec& ex, const ConvIO& io, int part, int parts) const {
    thread_local AlignedVector scaled;
    const ConvTile& t = packed.t;
    const index_t blocks = g.groups * t.blocks_per_group, per_image = g.OH * g.OW;
    if (static_cast<index_t>(scaled.size()) < blocks * t.panel) scaled.assign(static_cast<size_t>(blocks * t.panel), 0);
    const TensorView s = ex.at(scale);
    ConvGeom geo = g;
    geo.N = ex.N;
    const auto [p0, p1] = share(ex.N * per_image, part, parts, t.mr);
    for (index_t n = p0 / per_image; n * per_image < p1; ++n) {
      const float* gate = s.base + n * s.image;
      for (index_t b = 0; b < blocks; ++b) {  // panel rows are input channels (one tap: 1x1, one group)
        const float* src = packed.w.data() + b * t.panel;
        float* dst = scaled.data() + b * t.panel;
        for (index_t c = 0; c < g.Cg; ++c)
          for (int j = 0; j < t.nr; ++j) dst[c * t.nr + j] = src[c * t.nr + j] * gate[c];
      }
      const ConvWeights w{t, scaled.data(), packed.bias.data()};
      k->conv(geo, w, io, e, std::max(p0, n * per_image), std::min(p1, (n + 1) * per_image), 0, blocks);
    }
  }
};

// A dense convolution with few output channels (at most half a vector: Basic Pitch's constant-Q filters and 8-channel
// layers, the one-channel heads of detectors). The channel-vectorised tiles would leave most lanes empty; instead a
// task copies the input rows its output rows read into zero-padded planes, one per channel and column phase (the
// eager NCHW convolution's layout), and runs the NCHW orientation of the micro-kernel (gemm_rows: the K weight rows
// times vectors of an output row's pixels). The epilogue then adds the residual, applies the activation and the
// mask on the K planes of the row, and interleaves them into the channels-last output.
struct PlanarConvOp : CpuOp {
  ConvGeom g;                 // N set per run
  std::vector<float> w, bias; // w: K x (C R S), as given; bias: K (zeros when absent)
  std::vector<index_t> taps;  // for each (c, r, s): its offset in the planes of output row 0
  index_t row_w = 0, phase = 0, chan = 0, chunk = 1;  // padded row (one phase), floats per phase / channel; rows per copy
  Epilogue e;
  int x, y, res, mask;
  const Kernels* k;

  static constexpr index_t kBlockK = 512;  // taps per gemm_rows call (its output row is read back once per block)

  index_t copy_rows(index_t rows) const { return (rows - 1) * g.sh + (g.R - 1) * g.dh + 1; }

  // Input rows [ih0, ih0 + rows) of image n (zero outside the map) as C x sw planes of `rows` x row_w.
  void fill(const ConvIO& io, index_t n, index_t ih0, index_t rows, float* dst) const {
    for (index_t i = 0; i < rows; ++i) {
      const index_t ih = ih0 + i;
      for (index_t f = 0; f < g.sw; ++f)
        for (index_t j = 0; j < row_w; ++j) {
          const index_t iw = j * g.sw + f - g.pl;
          float* d = dst + f * phase + i * row_w + j;
          if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) {
            for (index_t c = 0; c < g.C; ++c) d[c * chan] = 0.0f;
            continue;
          }
          const float* src = io.x + ((n * g.H + ih) * g.W + iw) * io.xs;
          for (index_t c = 0; c < g.C; ++c) d[c * chan] = src[c];
        }
    }
  }

  // Column ranges per output row: one row (a 1-D signal) is split between the threads by columns instead.
  index_t col_splits(index_t N, int parts) const {
    return std::max<index_t>(1, std::min(ceil_div(parts, N * g.OH), g.OW / 64));
  }
  int parallelism(index_t N, int threads) const override {
    return std::min<int>(parts_for(flops_per_image * N, kFlopGrain, threads),
                         static_cast<int>(N * g.OH * col_splits(N, threads)));
  }

  void run(const Exec& ex, int part, int parts) const override {
    const ConvIO io = conv_io(ex, x, y, res, mask);
    const index_t KD = g.C * g.R * g.S, K = g.K, splits = col_splits(ex.N, parts);
    thread_local AlignedVector planes, out;
    if (static_cast<index_t>(planes.size()) < g.C * chan) planes.resize(static_cast<size_t>(g.C * chan));
    if (static_cast<index_t>(out.size()) < K * chunk * g.OW) out.resize(static_cast<size_t>(K * chunk * g.OW));
    const auto [t0, t1] = share(ex.N * g.OH * splits, part, parts);
    const index_t r0 = t0 / splits, r1 = ceil_div(t1, splits);
    const index_t piece = ceil_div(ceil_div(g.OW, splits), 16) * 16;
    const index_t j0 = splits > 1 ? t0 % splits * piece : 0, j1 = splits > 1 ? std::min(g.OW, j0 + piece) : g.OW;
    if (j0 >= j1) return;
    const index_t cols = j1 - j0;
    for (index_t r = r0; r < r1;) {
      const index_t n = r / g.OH, oh0 = r % g.OH, oh1 = std::min({g.OH, oh0 + chunk, oh0 + (r1 - r)});
      const index_t rows = oh1 - oh0, step = g.sh * row_w;
      fill(io, n, oh0 * g.sh - g.pt, copy_rows(rows), planes.data());
      const float* b = planes.data() + j0;
      if (K <= 2) {  // one filter over several rows at a time: enough accumulators for one or two outputs
        for (index_t kk = 0; kk < K; ++kk)
          k->dw_plane(KD, w.data() + kk * KD, bias[static_cast<size_t>(kk)], b, step, taps.data(),
                      out.data() + kk * rows * cols, rows, cols);
      } else {
        for (index_t i = 0; i < rows; ++i)
          for (index_t k0 = 0; k0 < KD; k0 += kBlockK)
            k->gemm_rows(std::min(kBlockK, KD - k0), w.data() + k0, KD, k0 == 0 ? bias.data() : nullptr,
                         b + i * step, taps.data() + k0, out.data() + i * cols, rows * cols, K, cols, k0 > 0);
      }
      // The epilogue: out holds K planes of rows x cols.
      const index_t p0 = (n * g.OH + oh0) * g.OW;
      if (io.res)
        for (index_t kk = 0; kk < K; ++kk)
          for (index_t i = 0; i < rows; ++i)
            for (index_t j = 0; j < cols; ++j)
              out[(kk * rows + i) * cols + j] += io.res[(p0 + i * g.OW + j0 + j) * io.rs + kk];
      k->activation(e, out.data(), out.data(), K * rows * cols);
      for (index_t i = 0; i < rows; ++i)
        for (index_t j = 0; j < cols; ++j) {
          const index_t pix = p0 + i * g.OW + j0 + j;
          float* yp = io.y + pix * io.ys;
          const float* mk = io.mask ? io.mask + pix * io.ms : nullptr;
          for (index_t kk = 0; kk < K; ++kk)
            yp[kk] = masked(out[(kk * rows + i) * cols + j], mk ? mk + kk : nullptr, e);
        }
      r += rows;
    }
  }
};

// The bf16 form of ConvOp (kernels/bf16.h): the same work split, weights rounded and packed for the bf16 kernels.
struct BConvOp : CpuOp {
  ConvGeom g;  // N set per run
  BConvPacked packed;
  Epilogue e;
  Bf16Storage st;  // set by Plan::store_bf16
  int x, y, res, mask = -1;
  const Bf16Kernels* k;
  bool split_blocks;

  int parallelism(index_t N, int threads) const override {
    return parts_for(flops_per_image * N, kFlopGrain, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    ConvGeom geo = g;
    geo.N = ex.N;
    const ConvIO io = conv_io(ex, x, y, res, mask);
    const index_t blocks = g.groups * packed.blocks_per_group, P = geo.pixels();
    if ((split_blocks || P < 32 * parts) && parts > 1 && blocks >= parts) {
      const auto [b0, b1] = share(blocks, part, parts);
      if (b0 < b1) k->conv(geo, packed, io, e, st, 0, P, b0, b1);
    } else {
      const auto [p0, p1] = share(P, part, parts, 16);
      if (p0 < p1) k->conv(geo, packed, io, e, st, p0, p1, 0, blocks);
    }
  }
};

struct DwConvOp : CpuOp {
  ConvGeom g;
  AlignedVector w, bias;  // [tap][Cpad], [Cpad]
  Epilogue e;
  int x, y, res, mask = -1;
  const Kernels* k;
  int parallelism(index_t N, int threads) const override {
    return parts_for(flops_per_image * N, kFlopGrain / 4, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    ConvGeom geo = g;
    geo.N = ex.N;
    const ConvIO io = conv_io(ex, x, y, res, mask);
    const auto [r0, r1] = share(ex.N * g.OH, part, parts);
    if (r0 < r1) k->dwconv(geo, w.data(), bias.data(), io, e, r0, r1);
  }
};

// An inverted-residual block in one op: [1x1 expand] -> depthwise -> 1x1 project [+ residual], over stripes of
// output rows. The expanded and depthwise tensors (6x the block's channels in MobileNet-style nets) live only in a
// per-thread scratch of a few stripe rows that stays in L2, instead of making a round trip through memory between
// three ops. Within a thread's rows, expanded rows shared by consecutive stripes are kept (moved to the front of the
// scratch), so only the rows at a thread's boundary are computed twice.
struct MBConvOp : CpuOp {
  bool has_expand, has_project;  // without a project step the depthwise output is the op's output
  ConvGeom ge, gd, gp;  // expand H x W x C -> E; depthwise H x W x E -> OH x OW x E; project OH x OW x E -> K
  ConvPacked pe, pp;
  BConvPacked be, bp;  // a bf16 plan's expand / project weights (where bf16_fits), else empty
  AlignedVector dw_w, dw_b;
  Epilogue ee, ed, ep;
  int x, y, res;
  index_t stripe;  // output rows per stripe
  const Kernels* k;
  const Bf16Kernels* bk = nullptr;

  static float* shifted(float* base, index_t back) {  // base - back, as the kernels index it (never dereferenced)
    return reinterpret_cast<float*>(reinterpret_cast<std::uintptr_t>(base) - static_cast<std::uintptr_t>(back) * 4);
  }
  index_t expand_rows(index_t rows) const { return (rows - 1) * gd.sh + (gd.R - 1) * gd.dh + 1; }
  index_t scratch_floats() const {
    return (has_expand ? std::min(gd.H, expand_rows(stripe)) * gd.W * gd.C : 0) +
           (has_project ? stripe * gd.OW * gd.C : 0);
  }
  int parallelism(index_t N, int threads) const override {
    return std::min<index_t>(parts_for(flops_per_image * N, kFlopGrain, threads), N * gd.OH);
  }
  void run(const Exec& ex, int part, int parts) const override {
    thread_local AlignedVector scratch;
    if (static_cast<index_t>(scratch.size()) < scratch_floats())
      scratch.assign(static_cast<size_t>(scratch_floats()), 0.0f);
    const index_t E = gd.C, H = gd.H, W = gd.W, OH = gd.OH, OW = gd.OW;
    float* se = scratch.data();                                               // expanded rows
    float* sd = se + (has_expand ? std::min(H, expand_rows(stripe)) * W * E : 0);  // depthwise output rows
    const TensorView in = ex.at(x), out = ex.at(y);
    const TensorView r = res >= 0 ? ex.at(res) : TensorView{nullptr, 0, 0};
    ConvGeom geo_e = ge, geo_d = gd, geo_p = gp;
    geo_e.N = geo_d.N = geo_p.N = ex.N;
    const auto [r0, r1] = share(ex.N * OH, part, parts);
    index_t have_n = -1, have_lo = 0, have_hi = 0;  // expanded rows [have_lo, have_hi) of image have_n in se
    for (index_t row = r0; row < r1;) {
      const index_t n = row / OH, oh0 = row % OH, oh1 = std::min(OH, oh0 + std::min(stripe, r1 - row));
      const index_t lo = std::max<index_t>(0, oh0 * gd.sh - gd.pt);
      const index_t hi = std::min(H, (oh1 - 1) * gd.sh - gd.pt + (gd.R - 1) * gd.dh + 1);
      ConvIO dio{nullptr, E, shifted(sd, (n * OH + oh0) * OW * E), E, nullptr, 0, ex.plan->zeros()};
      if (!has_project) dio.y = out.base, dio.ys = out.stride;
      if (has_expand) {
        index_t from = lo;
        if (have_n == n && have_lo <= lo && lo < have_hi) {  // keep the rows this stripe shares with the last
          std::memmove(se, se + (lo - have_lo) * W * E, sizeof(float) * (have_hi - lo) * W * E);
          from = have_hi;
        }
        if (from < hi) {
          const ConvIO eio{in.base, in.stride, shifted(se, (n * H + lo) * W * E), E, nullptr, 0, ex.plan->zeros()};
          if (be.depth)
            bk->conv(geo_e, be, eio, ee, {}, (n * H + from) * W, (n * H + hi) * W, 0, be.blocks_per_group);
          else
            k->conv(geo_e, pe.view(), eio, ee, (n * H + from) * W, (n * H + hi) * W, 0, pe.t.blocks_per_group);
        }
        have_n = n, have_lo = lo, have_hi = hi;
        dio.x = shifted(se, (n * H + lo) * W * E);
      } else {
        dio.x = in.base;
        dio.xs = in.stride;
      }
      k->dwconv(geo_d, dw_w.data(), dw_b.data(), dio, ed, n * OH + oh0, n * OH + oh1);
      if (!has_project) {
        row += oh1 - oh0;
        continue;
      }
      const ConvIO pio{shifted(sd, (n * OH + oh0) * OW * E), E, out.base, out.stride, r.base, r.stride,
                       ex.plan->zeros()};
      if (bp.depth)
        bk->conv(geo_p, bp, pio, ep, {}, (n * OH + oh0) * OW, (n * OH + oh1) * OW, 0, bp.blocks_per_group);
      else
        k->conv(geo_p, pp.view(), pio, ep, (n * OH + oh0) * OW, (n * OH + oh1) * OW, 0, pp.t.blocks_per_group);
      row += oh1 - oh0;
    }
  }
};

// The input transform, tile row by tile row; before each, the Winograd guard's scan (below) of the pixel rows that
// tile row owns: amax[pixel] = the largest |x| over its channels, NaN where one is not finite. Tile row th owns
// rows [4 th - pt, 4 th - pt + 4) (the last one the rest), so each pixel is scanned once, by the part holding the
// row's first tile, just before the transform reads it again (from cache).
struct WinoInputOp : CpuOp {
  WinoGeom g;
  int x, v, amax;
  const Kernels* k;
  int parallelism(index_t N, int threads) const override {
    return parts_for(36.0 * 4 * N * g.tiles_h * g.tiles_w * g.C, kByteGrain, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    WinoGeom geo = g;
    geo.N = ex.N;
    const TensorView in = ex.at(x), out = ex.at(v), am = ex.at(amax);  // am: one channel, pixels contiguous
    const auto [t0, t1] = share(geo.tiles(), part, parts);
    const index_t per_image = g.tiles_h * g.tiles_w;
    for (index_t t = t0; t < t1;) {
      const index_t n = t / per_image, th = (t % per_image) / g.tiles_w, tw = t % g.tiles_w;
      const index_t end = std::min(t1, t - tw + g.tiles_w);  // the rest of this tile row in the range
      if (tw == 0) {
        const index_t r0 = std::max<index_t>(0, th * 4 - g.pt);
        const index_t r1 = th == g.tiles_h - 1 ? g.H : std::min<index_t>(g.H, th * 4 - g.pt + 4);
        if (r0 < r1)
          k->channel_absmax(in.base + n * in.image, in.stride, g.C, am.base + n * am.image, r0 * g.W, r1 * g.W);
      }
      k->wino_input(geo, in.base, in.stride, out.base, t, end);
      t = end;
    }
  }
};

// Winograd mixes all 36 pixels of a tile into each of its 16 outputs, so a value an output's own 3x3 window never
// sees still moves it: one infinity makes the whole tile NaN, and a pixel 1e5 times its neighbours moves their
// outputs by ~0.1 (eager, torch and the direct kernels keep both to the 3x3 neighbourhood). The guard (issue 22
// item 1): a tile holding a non-finite value, or whose largest |x| exceeds kTileRatio times the largest |x| of some
// output's own window, is computed again by the direct kernel. Natural feature maps stay far below that ratio, so
// the guard costs the scan in WinoInputOp; the tiles it redoes keep every output within the Winograd bound of what
// it sees.
constexpr float kTileRatio = 8.0f;

struct WinoOutputOp : CpuOp {
  WinoGeom g;
  AlignedVector bias;  // padded to the lanes
  Epilogue e;
  int m, y, res, mask = -1;
  int x, amax;          // the convolution's input and its per-pixel channel maxima (WinoScanOp)
  ConvGeom direct_geom;  // the same convolution for the direct kernel, with its packed 3x3 weights
  ConvPacked direct;
  const Kernels* k;
  int parallelism(index_t N, int threads) const override {
    return parts_for(36.0 * 4 * N * g.tiles_h * g.tiles_w * g.K, kByteGrain, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    WinoGeom geo = g;
    geo.N = ex.N;
    const TensorView in = ex.at(m), out = ex.at(y);
    const TensorView r = res >= 0 ? ex.at(res) : TensorView{nullptr, 0, 0};
    const TensorView mk = mask >= 0 ? ex.at(mask) : TensorView{nullptr, 0, 0};
    const auto [t0, t1] = share(geo.tiles(), part, parts);
    if (t0 >= t1) return;
    k->wino_output(geo, in.base, bias.data(), out.base, out.stride, r.base, r.stride, mk.base, mk.stride, e, t0, t1);
    const TensorView am = ex.at(amax);  // a root tensor of one channel: pixel stride 1
    const TensorView xin = ex.at(x);
    ConvGeom dg = direct_geom;
    dg.N = ex.N;
    const ConvIO io{xin.base, xin.stride, out.base, out.stride, r.base, r.stride, ex.plan->zeros(), mk.base, mk.stride};
    const index_t per_image = g.tiles_h * g.tiles_w, blocks = direct.t.blocks_per_group;
    for (index_t t = t0; t < t1; ++t) {
      const index_t n = t / per_image, th = (t % per_image) / g.tiles_w, tw = t % g.tiles_w;
      if (!irregular(am.base + n * am.image, th, tw)) continue;
      const index_t rows = std::min<index_t>(4, g.OH - th * 4), cols = std::min<index_t>(4, g.OW - tw * 4);
      for (index_t i = 0; i < rows; ++i) {
        const index_t p = (n * g.OH + th * 4 + i) * g.OW + tw * 4;
        k->conv(dg, direct.view(), io, e, p, p + cols, 0, blocks);
      }
    }
  }
  // Whether tile (th, tw) of one image needs the direct kernel, from its pixels' channel maxima `am` (H x W).
  bool irregular(const float* am, index_t th, index_t tw) const {
    float px[6][6];
    float all = 0.0f;
    for (int i = 0; i < 6; ++i)
      for (int j = 0; j < 6; ++j) {
        const index_t ih = th * 4 - g.pt + i, iw = tw * 4 - g.pl + j;
        px[i][j] = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W ? am[ih * g.W + iw] : 0.0f;
        if (px[i][j] != px[i][j]) return true;  // a non-finite value in the tile
        all = std::max(all, px[i][j]);
      }
    const int rows = static_cast<int>(std::min<index_t>(4, g.OH - th * 4));
    const int cols = static_cast<int>(std::min<index_t>(4, g.OW - tw * 4));
    for (int oi = 0; oi < rows; ++oi)
      for (int oj = 0; oj < cols; ++oj) {
        float seen = 0.0f;
        for (int i = 0; i < 3; ++i)
          for (int j = 0; j < 3; ++j) seen = std::max(seen, px[oi + i][oj + j]);
        if (all > kTileRatio * seen) return true;
      }
    return false;
  }
};

std::vector<int> conv_reads(int x, int residual, int scale, int mask) {
  std::vector<int> reads{x};
  for (int t : {residual, scale, mask})
    if (t >= 0) reads.push_back(t);
  return reads;
}

// Whether a bf16 plan runs this convolution in bf16 (measured on Sapphire Rapids: where the fp32 kernels are not
// faster): no per-image gate (it scales the packed fp32 weights); at least 48 outputs per group (a block computes
// 64); and an im2col depth worth the gather - 32 channels of a 1x1 conv (MobileNetV2's expansions of 16 and 24
// channels, padded to 32, ran slower), else 64 values (a 3x3 stem on 3 channels, 27 values in 9-float runs, stays
// fp32; ResNet's 7x7 stem, 147, does not).
bool bf16_fits(const ConvGeom& g, int scale) {
  return scale < 0 && g.Kg >= 48 && (g.taps() == 1 ? g.Cg >= 32 : g.taps() * g.Cg >= 64);
}

void add_bconv(Plan& p, const ConvCall& c, const ConvGeom& g, const float* w, const float* bias, const Epilogue& e,
               int x, int y, int residual, double flops) {
  auto op = std::make_unique<BConvOp>();
  p.reserve_zeros(g.S * g.C + 64);  // a window row in the padding (bf16_simd.inc's gather)
  op->k = p.bf16_kernels();
  op->packed = pack_bconv(g, w, bias);
  p.add_weight_bytes(static_cast<index_t>(op->packed.w.size() * 2 + op->packed.bias.size() * 4));
  const double weight_bytes = 2.0 * g.K * g.Cg * g.taps(), input_bytes = 4.0 * g.H * g.W * g.C;
  op->split_blocks = g.groups * op->packed.blocks_per_group >= 4 && weight_bytes > input_bytes;
  op->g = g, op->e = e, op->x = x, op->y = y, op->res = residual, op->mask = c.mask;
  op->flops_per_image = flops;
  p.finish(std::move(op), c.name, std::string(p.bf16_kernels()->name) + "_conv", c.detail,
           conv_reads(x, residual, -1, c.mask), {y});
}

// The implicit-GEMM op computing y = conv(x) with packed weights.
// Whether the planar form pays: a dense convolution with at most half a vector of outputs, rows of at least two
// vectors of pixels, and enough taps per output that the copy is small beside the products; not a 1x1 window (one
// product per copied value: MTCNN P-Net's 32 -> 2 and 32 -> 4 heads ran 2x slower than the channels-last tiles).
bool planar_fits(const Kernels& k, const ConvGeom& g) {
  return g.groups == 1 && 2 * g.K <= k.lanes && g.OW >= 2 * k.lanes && g.C * g.R * g.S >= 8 && g.R * g.S > 1;
}

// Whether the depthwise kernel takes this grouped convolution (conv_simd.inc): as many outputs as inputs per group,
// 2 to half a vector of them, whole groups per vector (the scalar reference: up to 8). RegNetY-400MF's width-8
// groups on AVX-512: 3x3 layers on 14 x 14 to 56 x 56 maps 80-90 -> 110-150 GFLOP/s (7 x 7 maps level), the net
// 4.8 -> 4.3 ms (Sapphire Rapids, 2 threads).
bool narrow_groups_fit(const Kernels& k, const ConvGeom& g) {
  return g.groups > 1 && g.Cg == g.Kg && g.Cg >= 2 && g.Cg <= 8 &&
         (k.lanes == 1 || (2 * g.Cg <= k.lanes && k.lanes % g.Cg == 0));
}

void add_planar(Plan& p, const ConvCall& c) {
  const ConvGeom& g = c.geom;
  auto op = std::make_unique<PlanarConvOp>();
  op->g = g;
  const index_t KD = g.C * g.R * g.S;
  op->w.assign(c.w, c.w + g.K * KD);
  op->bias.assign(static_cast<size_t>(g.K), 0.0f);
  if (c.bias) std::copy(c.bias, c.bias + g.K, op->bias.begin());
  op->row_w = g.OW + (g.S - 1) * g.dw / g.sw;
  // Output rows per copy: the planes of a chunk within ~256 KB (L2), at least one row.
  const index_t per_row = g.C * g.sw * op->row_w;
  op->chunk = 1;
  while (op->chunk < g.OH && (op->copy_rows(op->chunk + 1)) * per_row * 4 <= (256 << 10)) ++op->chunk;
  op->phase = op->copy_rows(op->chunk) * op->row_w;
  op->chan = g.sw * op->phase;
  op->taps.resize(static_cast<size_t>(KD));
  for (index_t t = 0; t < KD; ++t) {
    const index_t ch = t / (g.R * g.S), r = (t / g.S) % g.R, col = (t % g.S) * g.dw;
    op->taps[static_cast<size_t>(t)] = ch * op->chan + (col % g.sw) * op->phase + r * g.dh * op->row_w + col / g.sw;
  }
  p.add_weight_bytes(static_cast<index_t>(op->w.size() + op->bias.size()) * 4);
  op->e = c.e, op->x = c.x, op->y = c.y, op->res = c.residual, op->mask = c.mask, op->k = &p.kernels();
  op->flops_per_image = c.flops;
  p.finish(std::move(op), c.name, p.kind("conv_planar", true), c.detail, conv_reads(c.x, c.residual, -1, c.mask),
           {c.y});
}

void add_igemm(Plan& p, const ConvCall& c, const ConvGeom& g, const float* w, const float* bias, const Epilogue& e,
               int x, int y, int residual, double flops) {
  if (p.bf16_kernels() && bf16_fits(g, c.scale)) return add_bconv(p, c, g, w, bias, e, x, y, residual, flops);
  const Kernels& k = p.kernels();
  auto op = std::make_unique<ConvOp>();
  op->packed = pack_conv(k, g, w, bias);
  const ConvPacked& pk = op->packed;
  const index_t blocks = g.groups * pk.t.blocks_per_group;
  p.add_weight_bytes(static_cast<index_t>(pk.w.size() + pk.bias.size()) * 4);
  // Split output channels between threads when the weights outweigh the input (late layers, FC); else pixels.
  const double weight_bytes = 4.0 * g.K * g.Cg * g.taps(), input_bytes = 4.0 * g.H * g.W * g.C;
  op->split_blocks = blocks >= 8 && weight_bytes > input_bytes;
  op->g = g, op->e = e, op->x = x, op->y = y, op->res = residual, op->scale = c.scale, op->mask = c.mask, op->k = &k;
  op->flops_per_image = flops;
  p.finish(std::move(op), c.name, p.kind("conv_" + std::to_string(pk.t.mr) + "x" + std::to_string(pk.t.nr), true),
           c.detail + (c.scale >= 0 ? " *gate" : ""), conv_reads(x, residual, c.scale, c.mask), {y});
}

// Winograd F(4x4, 3x3): input transform -> 36 GEMMs as one grouped 1x1 convolution -> output transform with the
// epilogue. The filters are transformed once, in double precision: U = G g G^T.
void add_winograd(Plan& p, const ConvCall& c) {
  const Kernels& k = p.kernels();
  const ConvGeom& g = c.geom;
  const index_t C = g.C, K = g.K;
  const WinoGeom wg{0, g.H, g.W, C, K, g.OH, g.OW, g.pt, g.pl, ceil_div(g.OH, 4), ceil_div(g.OW, 4)};
  const index_t tiles = wg.tiles_h * wg.tiles_w;
  const int v = p.add_tensor(1, tiles, 36 * C), m = p.add_tensor(1, tiles, 36 * K);
  const int amax = p.add_tensor(g.H, g.W, 1);
  auto in = std::make_unique<WinoInputOp>();
  in->g = wg, in->x = c.x, in->v = v, in->amax = amax, in->k = &k;
  p.finish(std::move(in), c.name, p.kind("winograd_input", true), c.detail, {c.x}, {v, amax});
  const std::vector<float> u = winograd_filters(c.w, K, C);  // (36 * K, C, 1, 1): group xi = position xi
  const ConvGeom gemm{0, 1, tiles, 36 * C, 1, tiles, 36 * K, 1, 1, 1, 1, 1, 1, 0, 0, 36, C, K};
  ConvCall plain = c;
  plain.scale = plain.mask = -1;
  add_igemm(p, plain, gemm, u.data(), nullptr, Epilogue{}, v, m, -1, 2.0 * 36 * tiles * C * K);
  p.back_op().kind += " (winograd 36 x GEMM)";
  auto out = std::make_unique<WinoOutputOp>();
  out->g = wg, out->m = m, out->y = c.y, out->res = c.residual, out->mask = c.mask, out->e = c.e, out->k = &k;
  out->bias.assign(static_cast<size_t>(ceil_div(K, k.lanes) * k.lanes), 0.0f);
  if (c.bias) std::copy(c.bias, c.bias + K, out->bias.begin());
  out->x = c.x, out->amax = amax, out->direct_geom = g;
  out->direct = pack_conv(k, g, c.w, c.bias);
  p.add_weight_bytes(static_cast<index_t>(out->direct.w.size() + out->direct.bias.size()) * 4);
  std::vector<int> reads = conv_reads(m, c.residual, -1, c.mask);
  reads.push_back(c.x);  // the guard's direct kernel reads x: it lives until here
  reads.push_back(amax);
  p.finish(std::move(out), c.name, p.kind("winograd_output", true), c.detail, reads, {c.y});
}

}  // namespace

void Plan::add_conv(const ConvCall& c) {
  reserve_zeros(c.geom.C + 64);
  ConvAlgo algo = c.algo;
  if (algo == ConvAlgo::automatic && !c.depthwise && c.scale < 0 && planar_fits(*kernels_, c.geom))
    return add_planar(*this, c);
  if (algo == ConvAlgo::automatic) {
    const bool depthwise = c.depthwise || narrow_groups_fit(*kernels_, c.geom);
    algo = depthwise && c.scale < 0 ? ConvAlgo::depthwise : ConvAlgo::igemm;
  }
  if (algo == ConvAlgo::winograd && !bf16_) return add_winograd(*this, c);
  if (algo == ConvAlgo::winograd) algo = ConvAlgo::igemm;  // a bf16 plan's 3x3 convs: AMX / vdpbf16ps tiles
  if (algo == ConvAlgo::igemm) return add_igemm(*this, c, c.geom, c.w, c.bias, c.e, c.x, c.y, c.residual, c.flops);
  auto op = std::make_unique<DwConvOp>();
  const index_t taps = c.spec.R * c.spec.S;
  pack_depthwise(*kernels_, c.geom.C, c.geom.Cg, taps, c.w, c.bias, op->w, op->bias);
  add_weight_bytes(static_cast<index_t>(op->w.size() + op->bias.size()) * 4);
  op->g = c.geom, op->e = c.e, op->x = c.x, op->y = c.y, op->res = c.residual, op->mask = c.mask, op->k = kernels_;
  op->flops_per_image = c.flops;
  finish(std::move(op), c.name, kind("dwconv", true), c.detail, conv_reads(c.x, c.residual, -1, c.mask), {c.y});
}

// A result only bf16 convolutions read - as their input or residual - is stored as bf16 (kernels/bf16.h,
// Bf16Storage): ResNet's block outputs and the tensors inside its blocks, all but the stem's (read by the max pool)
// and the last block's (the global pool). Not a tensor with views or slices (a concatenation's), nor a graph output.
void Plan::store_bf16() {
  if (!bf16_ || bf16_storage_chosen_) return;
  bf16_storage_chosen_ = true;
  std::vector<std::vector<PlanOp*>> readers(static_cast<size_t>(num_tensors()));
  for (const auto& op : ops())
    for (int t : op->reads) readers[static_cast<size_t>(t)].push_back(op.get());
  std::vector<bool> has_views(static_cast<size_t>(num_tensors()), false);
  for (int t = 0; t < num_tensors(); ++t)
    if (root_of(t) != t) has_views[static_cast<size_t>(root_of(t))] = has_views[static_cast<size_t>(t)] = true;
  for (const auto& op : ops()) {
    auto* producer = dynamic_cast<BConvOp*>(op.get());
    if (!producer || has_views[static_cast<size_t>(producer->y)]) continue;
    const int t = producer->y;
    const auto& rs = readers[static_cast<size_t>(t)];
    const bool only_bconv = !rs.empty() && std::all_of(rs.begin(), rs.end(), [t](PlanOp* r) {
      auto* b = dynamic_cast<BConvOp*>(r);
      return b && b->mask != t;
    });
    if (!only_bconv) continue;
    producer->st.y = true;
    producer->detail += " (bf16 out)";
    for (PlanOp* r : rs) {
      auto* b = static_cast<BConvOp*>(r);
      if (b->x == t) b->st.x = true;
      if (b->res == t) b->st.res = true;
    }
  }
}

void Plan::add_mbconv(const MBConvCall& c) {
  const bool has_expand = c.we != nullptr, has_project = c.wp != nullptr;
  const index_t H = tensor(c.x).H, W = tensor(c.x).W, E = c.E, K = c.K;
  const ConvSpec& dw = c.dw;
  reserve_zeros(E + 64);
  auto op = std::make_unique<MBConvOp>();
  op->has_expand = has_expand, op->has_project = has_project;
  op->ge = ConvGeom{0, H, W, c.C, H, W, E, 1, 1, 1, 1, 1, 1, 0, 0, 1, c.C, E};
  op->gd = ConvGeom{0, H, W, E, c.OH, c.OW, E, dw.R, dw.S, dw.sh, dw.sw, dw.dh, dw.dw, dw.pt, dw.pl, E, 1, 1};
  op->gp = ConvGeom{0, c.OH, c.OW, E, c.OH, c.OW, K, 1, 1, 1, 1, 1, 1, 0, 0, 1, E, K};
  op->bk = bf16_;
  if (has_expand && bf16_ && bf16_fits(op->ge, -1))
    op->be = pack_bconv(op->ge, c.we, c.be);
  else if (has_expand)
    op->pe = pack_conv(*kernels_, op->ge, c.we, c.be);
  if (has_project && bf16_ && bf16_fits(op->gp, -1))
    op->bp = pack_bconv(op->gp, c.wp, c.bp);
  else if (has_project)
    op->pp = pack_conv(*kernels_, op->gp, c.wp, c.bp);
  pack_depthwise(*kernels_, E, 1, dw.R * dw.S, c.wd, c.bd, op->dw_w, op->dw_b);
  add_weight_bytes(static_cast<index_t>(op->pe.w.size() + op->pp.w.size() + op->dw_w.size()) * 4 +
                   static_cast<index_t>(op->be.w.size() + op->bp.w.size()) * 2);
  op->ee = c.ee, op->ed = c.ed, op->ep = c.ep, op->x = c.x, op->y = c.y, op->res = c.residual, op->k = kernels_;
  // The largest stripe whose scratch stays within ~384 KB (in L2 on every current x86 core).
  op->stripe = 1;
  while (op->stripe < c.OH) {
    ++op->stripe;
    if (op->scratch_floats() * 4 > (384 << 10)) {
      --op->stripe;
      break;
    }
  }
  op->flops_per_image = 2.0 * (has_expand ? H * W * c.C * E : 0) + 2.0 * c.OH * c.OW * E * dw.R * dw.S +
                        (has_project ? 2.0 * c.OH * c.OW * E * K : 0.0);
  const std::string detail = dims(c.x) + " -> " + std::to_string(E) + " k" + std::to_string(dw.R) + "x" +
                             std::to_string(dw.S) + " s" + std::to_string(dw.sh) + " -> " + dims(c.y) + " (" +
                             std::to_string(op->stripe) + "-row stripes)" + (c.residual >= 0 ? " +res" : "");
  const bool bf16 = op->be.depth || op->bp.depth;
  finish(std::move(op), c.name, kind(bf16 ? "mbconv_bf16" : "mbconv", true), detail,
         conv_reads(c.x, c.residual, -1, -1), {c.y});
}

}  // namespace convcore
