#include "ops/pool2d/pool2d.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/aligned.h"
#include "core/cpu.h"
#include "core/threads.h"
#include "core/pool.h"
#include "kernels/layout.h"

namespace convcore {

void pool2d_check(const Pool2dShape& s) {
  require(s.N >= 1 && s.C >= 1 && s.H >= 1 && s.W >= 1 && s.OH >= 1 && s.OW >= 1, "pool2d: sizes must be positive");
  require(s.kh >= 1 && s.kw >= 1 && s.stride_h >= 1 && s.stride_w >= 1 && s.dil_h >= 1 && s.dil_w >= 1,
          "pool2d: kernel, stride and dilation must be >= 1");
  require(s.pad_t >= 0 && s.pad_b >= 0 && s.pad_l >= 0 && s.pad_r >= 0, "pool2d: padding must be >= 0");
  // The last window must start inside the input or the top/left padding (torch's ceil_mode rule).
  require((s.OH - 1) * s.stride_h < s.H + s.pad_t && (s.OW - 1) * s.stride_w < s.W + s.pad_l,
          "pool2d: output size too large for the input");
}

void max_pool2d_ref(const Pool2dShape& s, const float* x, float* y) {
  pool2d_check(s);
  const index_t planes = s.N * s.C;
  parallel_for(planes, threads_for(static_cast<double>(planes) * s.OH * s.OW * s.kh * s.kw, 1 << 17),
               [&](index_t pl0, index_t pl1) {
    for (index_t pl = pl0; pl < pl1; ++pl) {
      const float* xp = x + pl * s.H * s.W;
      float* yp = y + pl * s.OH * s.OW;
      for (index_t oh = 0; oh < s.OH; ++oh)
        for (index_t ow = 0; ow < s.OW; ++ow) {
          float best = -std::numeric_limits<float>::infinity();
          for (index_t r = 0; r < s.kh; ++r) {
            const index_t ih = oh * s.stride_h - s.pad_t + r * s.dil_h;
            if (ih < 0 || ih >= s.H) continue;
            for (index_t q = 0; q < s.kw; ++q) {
              const index_t iw = ow * s.stride_w - s.pad_l + q * s.dil_w;
              if (iw < 0 || iw >= s.W) continue;
              const float v = xp[ih * s.W + iw];
              if (v > best || v != v) best = v;
              if (best != best) break;
            }
            if (best != best) break;
          }
          yp[oh * s.OW + ow] = best;
        }
    }
  });
}

void avg_pool2d_ref(const Pool2dShape& s, bool count_include_pad, const float* x, float* y) {
  pool2d_check(s);
  const index_t planes = s.N * s.C;
  parallel_for(planes, threads_for(static_cast<double>(planes) * s.OH * s.OW * s.kh * s.kw, 1 << 17),
               [&](index_t pl0, index_t pl1) {
    for (index_t pl = pl0; pl < pl1; ++pl) {
      const float* xp = x + pl * s.H * s.W;
      float* yp = y + pl * s.OH * s.OW;
      for (index_t oh = 0; oh < s.OH; ++oh) {
        const index_t h0 = oh * s.stride_h - s.pad_t, h1 = std::min(h0 + s.kh, s.H + s.pad_b);
        const index_t hs = std::max<index_t>(h0, 0), he = std::min(h1, s.H);
        for (index_t ow = 0; ow < s.OW; ++ow) {
          const index_t w0 = ow * s.stride_w - s.pad_l, w1 = std::min(w0 + s.kw, s.W + s.pad_r);
          const index_t ws = std::max<index_t>(w0, 0), we = std::min(w1, s.W);
          float sum = 0.0f;
          for (index_t ih = hs; ih < he; ++ih)
            for (index_t iw = ws; iw < we; ++iw) sum += xp[ih * s.W + iw];
          const index_t count = count_include_pad ? (h1 - h0) * (w1 - w0) : (he - hs) * (we - ws);
          // A window wholly in the padding (possible with ceil_mode) has no real cells: torch gives 0 there.
          yp[oh * s.OW + ow] = count > 0 ? sum / static_cast<float>(count) : 0.0f;
        }
      }
    }
  });
}

namespace {

// The SIMD path: NCHW -> NHWC, the kernels' channels-last pooling (vectorised over channels), NHWC -> NCHW; the
// layout passes are the kernels' blocked transposes, far cheaper than a scalar window loop per element.
void pool2d_nhwc(const Pool2dShape& s, bool is_max, bool count_include_pad, const float* x, float* y) {
  const Kernels& k = kernels_for(active_isa());
  AlignedVector in(static_cast<size_t>(s.N * s.H * s.W * s.C)), out(static_cast<size_t>(s.N * s.OH * s.OW * s.C));
  const PoolGeom g{s.N,        s.H,     s.W,     s.C,     s.OH,    s.OW,    s.kh,    s.kw,   s.stride_h,
                   s.stride_w, s.dil_h, s.dil_w, s.pad_t, s.pad_b, s.pad_l, s.pad_r, is_max, count_include_pad};
  const int threads = threads_for(static_cast<double>(s.N) * s.C * (s.H * s.W + s.OH * s.OW * s.kh * s.kw), 1 << 17);
  nchw_to_nhwc_all(k, x, s.N, s.C, s.H * s.W, in.data());
  run_chunks(s.N * s.OH, threads, [&](index_t row) { k.pool(g, in.data(), s.C, out.data(), s.C, row, row + 1); });
  nhwc_to_nchw_all(k, out.data(), s.N, s.C, s.OH * s.OW, y);
}

// Few channels leave most vector lanes empty: the plain loops are as fast there.
bool use_nhwc(const Pool2dShape& s) { return active_isa() != Isa::scalar && s.C >= 8; }

}  // namespace

void max_pool2d(const Pool2dShape& s, const float* x, float* y) {
  pool2d_check(s);
  if (use_nhwc(s)) return pool2d_nhwc(s, true, false, x, y);
  max_pool2d_ref(s, x, y);
}

void avg_pool2d(const Pool2dShape& s, bool count_include_pad, const float* x, float* y) {
  pool2d_check(s);
  if (use_nhwc(s)) return pool2d_nhwc(s, false, count_include_pad, x, y);
  avg_pool2d_ref(s, count_include_pad, x, y);
}

void lp_pool2d(const Pool2dShape& s, double p, const float* x, float* y) {
  pool2d_check(s);
  require(p > 0.0, "lp_pool2d: p must be positive");
  const index_t planes = s.N * s.C;
  parallel_for(planes, threads_for(static_cast<double>(planes) * s.OH * s.OW * s.kh * s.kw, 1 << 16),
               [&](index_t pl0, index_t pl1) {
    for (index_t pl = pl0; pl < pl1; ++pl) {
      const float* xp = x + pl * s.H * s.W;
      float* yp = y + pl * s.OH * s.OW;
      for (index_t oh = 0; oh < s.OH; ++oh)
        for (index_t ow = 0; ow < s.OW; ++ow) {
          double sum = 0.0;
          for (index_t r = 0; r < s.kh; ++r) {
            const index_t ih = oh * s.stride_h - s.pad_t + r * s.dil_h;
            if (ih < 0 || ih >= s.H) continue;
            for (index_t q = 0; q < s.kw; ++q) {
              const index_t iw = ow * s.stride_w - s.pad_l + q * s.dil_w;
              if (iw < 0 || iw >= s.W) continue;
              const double v = std::fabs(static_cast<double>(xp[ih * s.W + iw]));
              sum += p == 1.0 ? v : (p == 2.0 ? v * v : std::pow(v, p));
            }
          }
          yp[oh * s.OW + ow] =
              static_cast<float>(p == 1.0 ? sum : (p == 2.0 ? std::sqrt(sum) : std::pow(sum, 1.0 / p)));
        }
    }
  });
}

void adaptive_pool2d(bool is_max, index_t N, index_t C, index_t H, index_t W, index_t OH, index_t OW, const float* x,
                     float* y) {
  require(N >= 1 && C >= 1 && H >= 1 && W >= 1 && OH >= 1 && OW >= 1, "adaptive_pool2d: sizes must be positive");
  const index_t planes = N * C;
  parallel_for(planes, threads_for(static_cast<double>(planes) * H * W, 1 << 17), [&](index_t pl0, index_t pl1) {
    for (index_t pl = pl0; pl < pl1; ++pl) {
      const float* xp = x + pl * H * W;
      float* yp = y + pl * OH * OW;
      for (index_t oh = 0; oh < OH; ++oh) {
        const index_t hs = oh * H / OH, he = ceil_div((oh + 1) * H, OH);
        for (index_t ow = 0; ow < OW; ++ow) {
          const index_t ws = ow * W / OW, we = ceil_div((ow + 1) * W, OW);
          if (is_max) {
            float best = -std::numeric_limits<float>::infinity();
            for (index_t ih = hs; ih < he; ++ih)
              for (index_t iw = ws; iw < we; ++iw) {
                const float v = xp[ih * W + iw];
                if (v > best || v != v) best = v;
              }
            yp[oh * OW + ow] = best;
          } else {
            double sum = 0.0;  // global pooling sums whole planes: keep the error independent of their size
            for (index_t ih = hs; ih < he; ++ih)
              for (index_t iw = ws; iw < we; ++iw) sum += xp[ih * W + iw];
            yp[oh * OW + ow] = static_cast<float>(sum / static_cast<double>((he - hs) * (we - ws)));
          }
        }
      }
    }
  });
}

}  // namespace convcore
