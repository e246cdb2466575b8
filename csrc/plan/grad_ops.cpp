#include "plan/grad_ops.h"

#include <cstdint>
#include <cstring>
#include <limits>

#include "plan/op_util.h"

namespace convcore {
using namespace planop;
namespace {

struct ActGradOp : CpuOp {
  index_t pixels, C;  // per image
  Epilogue e;         // the activation and its parameters
  bool guided;        // dy clamped at 0 first
  const Kernels* k;
  int dy, v, dx;
  void grad(const float* a, const float* g, float* out, index_t n) const {
    if (guided) {
      k->activation(Epilogue{Act::relu}, g, out, n);
      g = out;
    }
    k->act_grad(e, a, g, out, n);
  }
  int parallelism(index_t N, int threads) const override {
    return parts_for(12.0 * N * pixels * C, kByteGrain, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    const TensorView g = ex.at(dy), a = ex.at(v), out = ex.at(dx);
    const auto [p0, p1] = share(ex.N * pixels, part, parts);
    if (g.stride == C && a.stride == C && out.stride == C) {  // one run over the share
      if (p0 < p1) grad(a.base + p0 * C, g.base + p0 * C, out.base + p0 * C, (p1 - p0) * C);
      return;
    }
    for (index_t p = p0; p < p1; ++p)  // a slice of a concatenation: pixel by pixel
      grad(a.base + p * a.stride, g.base + p * g.stride, out.base + p * out.stride, C);
  }
};

// dst[c] where lo < m[c] < hi, else 0 (NaN masked too, as the eager ReLU backward).
inline void apply_mask(float* dst, const float* m, index_t C, float lo, float hi) {
  for (index_t c = 0; c < C; ++c) dst[c] = lo < m[c] && m[c] < hi ? dst[c] : 0.0f;
}

struct InterleaveOp : CpuOp {
  index_t H, W, C;
  std::vector<PhaseSlot> rows, cols;
  std::vector<int> phases;
  int y, res;
  GradMask mask;
  int parallelism(index_t N, int threads) const override {
    return parts_for(12.0 * N * H * W * C, kByteGrain, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    const TensorView out = ex.at(y);
    const TensorView r = res >= 0 ? ex.at(res) : TensorView{nullptr, 0, 0};
    const TensorView mk = mask.mask >= 0 ? ex.at(mask.mask) : TensorView{nullptr, 0, 0};
    thread_local std::vector<TensorView> src;
    src.assign(phases.size(), TensorView{nullptr, 0, 0});
    for (size_t i = 0; i < phases.size(); ++i)
      if (phases[i] >= 0) src[i] = ex.at(phases[i]);
    const index_t sh = static_cast<index_t>(rows.size()), sw = static_cast<index_t>(cols.size());
    const auto [r0, r1] = share(ex.N * H, part, parts);
    for (index_t row = r0; row < r1; ++row) {
      const index_t n = row / H, h = row % H;
      const PhaseSlot& ry = rows[static_cast<size_t>(h % sh)];
      const index_t i = (h - ry.start) / sh;
      const bool row_ok = ry.phase >= 0 && h >= ry.start && i < ry.count;
      for (index_t w = 0; w < W; ++w) {
        float* dst = out.base + (row * W + w) * out.stride;
        const index_t at = n * r.image + (h * W + w) * r.stride;
        const float* add = r.base ? r.base + at : nullptr;
        const PhaseSlot& cx = cols[static_cast<size_t>(w % sw)];
        const index_t j = (w - cx.start) / sw;
        const float* from = nullptr;
        if (row_ok && cx.phase >= 0 && w >= cx.start && j < cx.count) {
          const size_t q = static_cast<size_t>(ry.phase * sw + cx.phase);
          if (src[q].base != nullptr)
            from = src[q].base + n * src[q].image +
                   ((ry.offset + i) * ex.plan->tensor(phases[q]).W + cx.offset + j) * src[q].stride;
        }
        if (from && add)
          for (index_t c = 0; c < C; ++c) dst[c] = from[c] + add[c];
        else if (from || add)
          std::memcpy(dst, from ? from : add, sizeof(float) * C);
        else
          std::memset(dst, 0, sizeof(float) * C);
        if (mk.base) apply_mask(dst, mk.base + n * mk.image + (h * W + w) * mk.stride, C, mask.lo, mask.hi);
      }
    }
  }
};

// Parts split the channels (windows overlap across pixels, never across channels). Each scans every window for a
// block of kBlock channels at a time, keeping per-channel running maxima in local arrays the compiler vectorizes.
struct MaxPoolGradOp : CpuOp {
  static constexpr index_t kBlock = 64;
  index_t H, W, C, OH, OW, kh, kw, sh, sw, dh, dw, pt, pl;
  int x, dy, dx;
  GradMask mask;
  int parallelism(index_t N, int threads) const override {
    return parts_for(4.0 * N * OH * OW * C * kh * kw, kByteGrain, std::min<index_t>(threads, ceil_div(C, 16)));
  }
  void run(const Exec& ex, int part, int parts) const override {
    const TensorView in = ex.at(x), g = ex.at(dy), out = ex.at(dx);
    const TensorView mk = mask.mask >= 0 ? ex.at(mask.mask) : TensorView{nullptr, 0, 0};
    const auto [c0, c1] = share(C, part, parts, 16);
    for (index_t n = 0; n < ex.N; ++n) {
      float* di = out.base + n * out.image;
      for (index_t p = 0; p < H * W; ++p) std::memset(di + p * out.stride + c0, 0, sizeof(float) * (c1 - c0));
      for (index_t cb = c0; cb < c1; cb += kBlock) {
        const index_t nc = std::min(kBlock, c1 - cb);
        const float* xi = in.base + n * in.image + cb;
        for (index_t oh = 0; oh < OH; ++oh)
          for (index_t ow = 0; ow < OW; ++ow) {
            // The first cell of the window starts the scan; a later one wins when strictly larger, or when it is the
            // first NaN (a NaN best is never replaced: v > NaN is false and best == best fails).
            float best[kBlock];
            int32_t at[kBlock];
            bool started = false;
            for (index_t r = 0; r < kh; ++r) {
              const index_t ih = oh * sh - pt + r * dh;
              if (ih < 0 || ih >= H) continue;
              for (index_t q = 0; q < kw; ++q) {
                const index_t iw = ow * sw - pl + q * dw;
                if (iw < 0 || iw >= W) continue;
                const int32_t pix = static_cast<int32_t>(ih * W + iw);
                const float* xp = xi + pix * in.stride;
                if (!started) {
                  for (index_t c = 0; c < nc; ++c) best[c] = xp[c], at[c] = pix;
                  started = true;
                  continue;
                }
                for (index_t c = 0; c < nc; ++c) {
                  const float v = xp[c], b = best[c];
                  const bool take = (v > b) | ((v != v) & (b == b));  // no branches: vectorizes
                  best[c] = take ? v : b;
                  at[c] = take ? pix : at[c];
                }
              }
            }
            if (!started) continue;  // a window wholly in the padding
            const float* gp = g.base + n * g.image + (oh * OW + ow) * g.stride + cb;
            for (index_t c = 0; c < nc; ++c) di[at[c] * out.stride + cb + c] += gp[c];
          }
      }
      if (mk.base)
        for (index_t p = 0; p < H * W; ++p)
          apply_mask(di + p * out.stride + c0, mk.base + n * mk.image + p * mk.stride + c0, c1 - c0, mask.lo,
                     mask.hi);
    }
  }
};

// Parts split the channels, as MaxPoolGradOp's; each output pixel adds dy / count to the rows of its window.
struct AvgPoolGradOp : CpuOp {
  index_t H, W, C, OH, OW, kh, kw, sh, sw, pt, pb, pl, pr;
  bool count_include_pad;
  int dy, dx;
  int parallelism(index_t N, int threads) const override {
    return parts_for(8.0 * N * OH * OW * C * kh * kw, kByteGrain, std::min<index_t>(threads, ceil_div(C, 16)));
  }
  void run(const Exec& ex, int part, int parts) const override {
    const TensorView g = ex.at(dy), out = ex.at(dx);
    const auto [c0, c1] = share(C, part, parts, 16);
    const index_t nc = c1 - c0;
    if (nc <= 0) return;
    for (index_t n = 0; n < ex.N; ++n) {
      float* di = out.base + n * out.image + c0;
      for (index_t p = 0; p < H * W; ++p) std::memset(di + p * out.stride, 0, sizeof(float) * nc);
      for (index_t oh = 0; oh < OH; ++oh) {
        const index_t h0 = oh * sh - pt, h1 = std::min(h0 + kh, H + pb);
        const index_t hs = std::max<index_t>(h0, 0), he = std::min(h1, H);
        for (index_t ow = 0; ow < OW; ++ow) {
          const index_t w0 = ow * sw - pl, w1 = std::min(w0 + kw, W + pr);
          const index_t ws = std::max<index_t>(w0, 0), we = std::min(w1, W);
          const index_t count = count_include_pad ? (h1 - h0) * (w1 - w0) : (he - hs) * (we - ws);
          if (count <= 0) continue;
          const float scale = 1.0f / static_cast<float>(count);
          const float* gp = g.base + n * g.image + (oh * OW + ow) * g.stride + c0;
          for (index_t ih = hs; ih < he; ++ih)
            for (index_t iw = ws; iw < we; ++iw) {
              float* d = di + (ih * W + iw) * out.stride;
              for (index_t c = 0; c < nc; ++c) d[c] += gp[c] * scale;
            }
        }
      }
    }
  }
};

struct Col2imOp : CpuOp {
  index_t H, W, C, OH, OW, R, S, sh, sw, dh, dw, pt, pl;
  int cols, y, res;
  GradMask mask;
  int parallelism(index_t N, int threads) const override {
    return parts_for(8.0 * N * OH * OW * R * S * C, kByteGrain, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    const TensorView in = ex.at(cols), out = ex.at(y);
    const TensorView r = res >= 0 ? ex.at(res) : TensorView{nullptr, 0, 0};
    const TensorView mk = mask.mask >= 0 ? ex.at(mask.mask) : TensorView{nullptr, 0, 0};
    // The (output column, tap) pairs reaching each input column, found once per call.
    thread_local std::vector<index_t> col_first, col_src;
    col_first.assign(static_cast<size_t>(W + 1), 0);
    col_src.clear();
    for (index_t iw = 0; iw < W; ++iw) {
      for (index_t ts = 0; ts < S; ++ts) {
        const index_t tw = iw + pl - ts * dw;
        if (tw >= 0 && tw % sw == 0 && tw / sw < OW) col_src.push_back((tw / sw) * in.stride + ts * C);
      }
      col_first[static_cast<size_t>(iw + 1)] = static_cast<index_t>(col_src.size());
    }
    const auto [r0, r1] = share(ex.N * H, part, parts);
    for (index_t row = r0; row < r1; ++row) {
      const index_t n = row / H, ih = row % H;
      for (index_t iw = 0; iw < W; ++iw) {
        float* dst = out.base + n * out.image + (ih * W + iw) * out.stride;
        if (r.base)
          std::memcpy(dst, r.base + n * r.image + (ih * W + iw) * r.stride, sizeof(float) * C);
        else
          std::memset(dst, 0, sizeof(float) * C);
        for (index_t tr = 0; tr < R; ++tr) {
          const index_t th = ih + pt - tr * dh;
          if (th < 0 || th % sh != 0 || th / sh >= OH) continue;
          const float* base = in.base + n * in.image + (th / sh) * OW * in.stride + tr * S * C;
          for (index_t e = col_first[static_cast<size_t>(iw)]; e < col_first[static_cast<size_t>(iw + 1)]; ++e) {
            const float* src = base + col_src[static_cast<size_t>(e)];
            for (index_t c = 0; c < C; ++c) dst[c] += src[c];
          }
        }
        if (mk.base) apply_mask(dst, mk.base + n * mk.image + (ih * W + iw) * mk.stride, C, mask.lo, mask.hi);
      }
    }
  }
};

}  // namespace

int plan_act_grad(Plan& p, const std::string& name, int dy, int v, const Epilogue& e, bool guided) {
  const TensorDesc g = p.tensor(p.check(dy, "dy"));
  p.check_like(p.check(v, "v"), g.H, g.W, g.C, "v");
  require(act_grad_from(e.act) != GradFrom::none,
          std::string("plan.act_grad: ") + act_name(e.act) + " has no derivative");
  const int dx = p.add_tensor(g.H, g.W, g.C);
  auto o = std::make_unique<ActGradOp>();
  o->pixels = g.H * g.W, o->C = g.C, o->e = e, o->guided = guided, o->k = &p.kernels();
  o->dy = dy, o->v = v, o->dx = dx;
  p.finish(std::move(o), name, p.kind(std::string("act_grad+") + act_name(e.act), true),
           p.dims(dy) + (guided ? " guided" : ""), {dy, v}, {dx});
  return dx;
}

int plan_interleave(Plan& p, const std::string& name, index_t H, index_t W, index_t C,
                    const std::vector<PhaseSlot>& rows, const std::vector<PhaseSlot>& cols,
                    const std::vector<int>& phases, int residual, const GradMask& mask) {
  p.check_like(mask.mask, H, W, C, "plan.interleave: the mask");
  require(H >= 1 && W >= 1 && C >= 1 && !rows.empty() && !cols.empty() && phases.size() == rows.size() * cols.size(),
          "plan.interleave: expected rows x cols phases");
  auto check_axis = [&](const std::vector<PhaseSlot>& axis, index_t size, bool is_row) {
    const index_t s = static_cast<index_t>(axis.size());
    for (index_t r = 0; r < s; ++r) {
      const PhaseSlot& a = axis[static_cast<size_t>(r)];
      if (a.phase < 0) continue;
      require(a.phase < s && a.start == r && a.count >= 0 && a.offset >= 0 && a.start + s * (a.count - 1) < size,
              "plan.interleave: a phase slot does not fit dx");
      for (index_t q = 0; q < static_cast<index_t>(is_row ? cols.size() : rows.size()); ++q) {
        const int t = phases[static_cast<size_t>(is_row ? a.phase * static_cast<index_t>(cols.size()) + q
                                                        : q * s + a.phase)];
        if (t < 0) continue;
        const TensorDesc& d = p.tensor(t);
        require(d.C == C && (is_row ? d.H : d.W) >= a.offset + a.count, "plan.interleave: a phase tensor is too small");
      }
    }
  };
  for (int t : phases)
    if (t >= 0) p.check(t, "plan.interleave: phase tensor");
  check_axis(rows, H, true);
  check_axis(cols, W, false);
  p.check_like(residual, H, W, C, "plan.interleave: the residual");
  const int y = p.add_tensor(H, W, C);
  auto o = std::make_unique<InterleaveOp>();
  o->H = H, o->W = W, o->C = C, o->rows = rows, o->cols = cols, o->phases = phases, o->y = y, o->res = residual;
  o->mask = mask;
  std::vector<int> reads;
  for (int t : phases)
    if (t >= 0) reads.push_back(t);
  for (int t : {residual, mask.mask})
    if (t >= 0) reads.push_back(t);
  p.finish(std::move(o), name, "interleave",
           p.dims(y) + (residual >= 0 ? " +res" : "") + (mask.mask >= 0 ? " +mask" : ""), reads, {y});
  return y;
}

int plan_max_pool_grad(Plan& p, const std::string& name, int x, int dy, index_t kh, index_t kw, index_t sh,
                       index_t sw, index_t dh, index_t dw, index_t pt, index_t pl, const GradMask& mask) {
  const TensorDesc in = p.tensor(p.check(x, "x")), g = p.tensor(p.check(dy, "dy"));
  p.check_like(mask.mask, in.H, in.W, in.C, "plan.max_pool_grad: the mask");
  require(kh >= 1 && kw >= 1 && sh >= 1 && sw >= 1 && dh >= 1 && dw >= 1 && pt >= 0 && pl >= 0 && in.C == g.C,
          "plan.max_pool_grad: bad window geometry");
  const int dx = p.add_tensor(in.H, in.W, in.C);
  auto o = std::make_unique<MaxPoolGradOp>();
  o->H = in.H, o->W = in.W, o->C = in.C, o->OH = g.H, o->OW = g.W;
  o->kh = kh, o->kw = kw, o->sh = sh, o->sw = sw, o->dh = dh, o->dw = dw, o->pt = pt, o->pl = pl;
  o->x = x, o->dy = dy, o->dx = dx, o->mask = mask;
  std::vector<int> reads{x, dy};
  if (mask.mask >= 0) reads.push_back(mask.mask);
  p.finish(std::move(o), name, "max_pool_grad", p.dims(dy) + " -> " + p.dims(x) + (mask.mask >= 0 ? " +mask" : ""),
           reads, {dx});
  return dx;
}

int plan_col2im(Plan& p, const std::string& name, int cols, index_t H, index_t W, index_t C, index_t R, index_t S,
                index_t sh, index_t sw, index_t dh, index_t dw, index_t pt, index_t pl, int residual,
                const GradMask& mask) {
  const TensorDesc in = p.tensor(p.check(cols, "cols"));
  require(H >= 1 && W >= 1 && C >= 1 && R >= 1 && S >= 1 && sh >= 1 && sw >= 1 && dh >= 1 && dw >= 1 && pt >= 0 &&
              pl >= 0 && in.C == R * S * C,
          "plan.col2im: expected cols with R * S * C channels and a valid window");
  p.check_like(mask.mask, H, W, C, "plan.col2im: the mask");
  p.check_like(residual, H, W, C, "plan.col2im: the residual");
  const int y = p.add_tensor(H, W, C);
  auto o = std::make_unique<Col2imOp>();
  o->H = H, o->W = W, o->C = C, o->OH = in.H, o->OW = in.W, o->R = R, o->S = S, o->sh = sh, o->sw = sw;
  o->dh = dh, o->dw = dw, o->pt = pt, o->pl = pl, o->cols = cols, o->y = y, o->res = residual, o->mask = mask;
  std::vector<int> reads{cols};
  for (int t : {residual, mask.mask})
    if (t >= 0) reads.push_back(t);
  p.finish(std::move(o), name, "col2im",
           p.dims(cols) + " -> " + p.dims(y) + (residual >= 0 ? " +res" : "") + (mask.mask >= 0 ? " +mask" : ""),
           reads, {y});
  return y;
}

int plan_avg_pool_grad(Plan& p, const std::string& name, int dy, index_t H, index_t W, index_t kh, index_t kw,
                       index_t sh, index_t sw, index_t pt, index_t pb, index_t pl, index_t pr, bool count_include_pad) {
  const TensorDesc g = p.tensor(p.check(dy, "dy"));
  require(H >= 1 && W >= 1 && kh >= 1 && kw >= 1 && sh >= 1 && sw >= 1 && pt >= 0 && pb >= 0 && pl >= 0 && pr >= 0,
          "plan.avg_pool_grad: bad window geometry");
  require((g.H - 1) * sh < H + pt + pb && (g.W - 1) * sw < W + pl + pr,
          "plan.avg_pool_grad: dy is larger than the input allows");
  const int dx = p.add_tensor(H, W, g.C);
  auto o = std::make_unique<AvgPoolGradOp>();
  o->H = H, o->W = W, o->C = g.C, o->OH = g.H, o->OW = g.W, o->kh = kh, o->kw = kw, o->sh = sh, o->sw = sw;
  o->pt = pt, o->pb = pb, o->pl = pl, o->pr = pr, o->count_include_pad = count_include_pad, o->dy = dy, o->dx = dx;
  p.finish(std::move(o), name, "avg_pool_grad", p.dims(dy) + " -> " + p.dims(dx), {dy}, {dx});
  return dx;
}

}  // namespace convcore
