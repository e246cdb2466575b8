#include "ops/pool2d/pool2d_backward.h"

#include <algorithm>
#include <cstring>

#include "core/pool.h"
#include "core/threads.h"

namespace convcore {

void max_pool2d_input_grad(const Pool2dShape& s, const float* x, const float* dy, float* dx) {
  pool2d_check(s);
  const index_t planes = s.N * s.C;
  run_chunks(planes, threads_for(static_cast<double>(planes) * s.OH * s.OW * s.kh * s.kw, 1 << 17), [&](index_t pl) {
    const float* xp = x + pl * s.H * s.W;
    const float* gp = dy + pl * s.OH * s.OW;
    float* dp = dx + pl * s.H * s.W;
    std::memset(dp, 0, sizeof(float) * static_cast<size_t>(s.H * s.W));
    for (index_t oh = 0; oh < s.OH; ++oh)
      for (index_t ow = 0; ow < s.OW; ++ow) {
        index_t best_at = -1;
        float best = 0.0f;
        bool nan = false;
        for (index_t r = 0; r < s.kh && !nan; ++r) {
          const index_t ih = oh * s.stride_h - s.pad_t + r * s.dil_h;
          if (ih < 0 || ih >= s.H) continue;
          for (index_t q = 0; q < s.kw; ++q) {
            const index_t iw = ow * s.stride_w - s.pad_l + q * s.dil_w;
            if (iw < 0 || iw >= s.W) continue;
            const float v = xp[ih * s.W + iw];
            if (best_at < 0 || v > best || v != v) best = v, best_at = ih * s.W + iw;
            if (v != v) {
              nan = true;
              break;
            }
          }
        }
        if (best_at >= 0) dp[best_at] += gp[oh * s.OW + ow];
      }
  });
}

void avg_pool2d_input_grad(const Pool2dShape& s, bool count_include_pad, const float* dy, float* dx) {
  pool2d_check(s);
  const index_t planes = s.N * s.C;
  run_chunks(planes, threads_for(static_cast<double>(planes) * s.OH * s.OW * s.kh * s.kw, 1 << 17), [&](index_t pl) {
    const float* gp = dy + pl * s.OH * s.OW;
    float* dp = dx + pl * s.H * s.W;
    std::memset(dp, 0, sizeof(float) * static_cast<size_t>(s.H * s.W));
    for (index_t oh = 0; oh < s.OH; ++oh) {
      const index_t h0 = oh * s.stride_h - s.pad_t, h1 = std::min(h0 + s.kh, s.H + s.pad_b);
      const index_t hs = std::max<index_t>(h0, 0), he = std::min(h1, s.H);
      for (index_t ow = 0; ow < s.OW; ++ow) {
        const index_t w0 = ow * s.stride_w - s.pad_l, w1 = std::min(w0 + s.kw, s.W + s.pad_r);
        const index_t ws = std::max<index_t>(w0, 0), we = std::min(w1, s.W);
        const index_t count = count_include_pad ? (h1 - h0) * (w1 - w0) : (he - hs) * (we - ws);
        if (count <= 0) continue;  // a window wholly in the padding: its output is the constant 0
        const float g = gp[oh * s.OW + ow] / static_cast<float>(count);
        for (index_t ih = hs; ih < he; ++ih)
          for (index_t iw = ws; iw < we; ++iw) dp[ih * s.W + iw] += g;
      }
    }
  });
}

void adaptive_pool2d_input_grad(bool is_max, index_t N, index_t C, index_t H, index_t W, index_t OH, index_t OW,
                                const float* x, const float* dy, float* dx) {
  require(N >= 1 && C >= 1 && H >= 1 && W >= 1 && OH >= 1 && OW >= 1, "adaptive_pool2d: sizes must be positive");
  const index_t planes = N * C;
  run_chunks(planes, threads_for(static_cast<double>(planes) * H * W, 1 << 17), [&](index_t pl) {
    const float* xp = is_max ? x + pl * H * W : nullptr;
    const float* gp = dy + pl * OH * OW;
    float* dp = dx + pl * H * W;
    std::memset(dp, 0, sizeof(float) * static_cast<size_t>(H * W));
    for (index_t oh = 0; oh < OH; ++oh) {
      const index_t hs = oh * H / OH, he = ceil_div((oh + 1) * H, OH);
      for (index_t ow = 0; ow < OW; ++ow) {
        const index_t ws = ow * W / OW, we = ceil_div((ow + 1) * W, OW);
        const float g = gp[oh * OW + ow];
        if (is_max) {
          index_t best_at = hs * W + ws;
          float best = xp[best_at];
          for (index_t ih = hs; ih < he && best == best; ++ih)
            for (index_t iw = ws; iw < we; ++iw) {
              const float v = xp[ih * W + iw];
              if (v > best || v != v) {
                best = v, best_at = ih * W + iw;
                if (v != v) break;
              }
            }
          dp[best_at] += g;
        } else {
          const float share = g / static_cast<float>((he - hs) * (we - ws));
          for (index_t ih = hs; ih < he; ++ih)
            for (index_t iw = ws; iw < we; ++iw) dp[ih * W + iw] += share;
        }
      }
    }
  });
}

}  // namespace convcore
