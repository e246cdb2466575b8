#include "ops/conv_transpose/conv_transpose.h"

#include <algorithm>
#include <vector>

#include "core/cpu.h"
#include "core/pool.h"
#include "core/threads.h"
#include "ops/linear/linear.h"

namespace convcore {

void conv_transpose2d_check(const ConvTranspose2dShape& s) {
  require(s.N >= 1 && s.C >= 1 && s.H >= 1 && s.W >= 1 && s.K >= 1 && s.kh >= 1 && s.kw >= 1 && s.OH >= 1 && s.OW >= 1,
          "conv_transpose2d: sizes must be positive");
  require(s.stride_h >= 1 && s.stride_w >= 1 && s.dil_h >= 1 && s.dil_w >= 1 && s.groups >= 1,
          "conv_transpose2d: stride, dilation and groups must be >= 1");
  require(s.C % s.groups == 0 && s.K % s.groups == 0, "conv_transpose2d: groups must divide both channel counts");
}

void conv_transpose2d(const ConvTranspose2dShape& s, const float* x, const float* w, const float* bias, float* y) {
  conv_transpose2d_check(s);
  if (active_isa() == Isa::scalar) return conv_transpose2d_ref(s, x, w, bias, y);
  const index_t G = s.groups, Cg = s.C / G, Kg = s.K / G, taps = s.kh * s.kw, HW = s.H * s.W, OHW = s.OH * s.OW;
  const index_t rows = Kg * taps;  // one row of columns per (output channel, tap)
  std::vector<float> wt(static_cast<size_t>(rows * Cg)), xt(static_cast<size_t>(HW * Cg));
  std::vector<float> cols(static_cast<size_t>(rows * HW));
  for (index_t n = 0; n < s.N; ++n)
    for (index_t g = 0; g < G; ++g) {
      // wt[(k, r, q), c] = w[g*Cg + c, k, r, q];  xt[(ih, iw), c] = x[n, g*Cg + c, ih, iw]
      const float* wg = w + g * Cg * rows;
      for (index_t c = 0; c < Cg; ++c)
        for (index_t j = 0; j < rows; ++j) wt[j * Cg + c] = wg[c * rows + j];
      const float* xg = x + (n * s.C + g * Cg) * HW;
      for (index_t c = 0; c < Cg; ++c)
        for (index_t p = 0; p < HW; ++p) xt[p * Cg + c] = xg[c * HW + p];
      linear(rows, HW, Cg, wt.data(), xt.data(), nullptr, cols.data());  // cols = wt @ xt^T
      float* yg = y + (n * s.K + g * Kg) * OHW;
      parallel_for(Kg, threads_for(static_cast<double>(rows) * HW, 1 << 16), [&](index_t k0, index_t k1) {
        for (index_t k = k0; k < k1; ++k) {
          float* yk = yg + k * OHW;
          const float b = bias ? bias[g * Kg + k] : 0.0f;
          std::fill(yk, yk + OHW, b);
          for (index_t r = 0; r < s.kh; ++r)
            for (index_t q = 0; q < s.kw; ++q) {
              const float* col = cols.data() + ((k * s.kh + r) * s.kw + q) * HW;
              for (index_t ih = 0; ih < s.H; ++ih) {
                const index_t oh = ih * s.stride_h - s.pad_t + r * s.dil_h;
                if (oh < 0 || oh >= s.OH) continue;
                float* yrow = yk + oh * s.OW;
                const float* crow = col + ih * s.W;
                for (index_t iw = 0; iw < s.W; ++iw) {
                  const index_t ow = iw * s.stride_w - s.pad_l + q * s.dil_w;
                  if (ow >= 0 && ow < s.OW) yrow[ow] += crow[iw];
                }
              }
            }
        }
      });
    }
}

}  // namespace convcore
