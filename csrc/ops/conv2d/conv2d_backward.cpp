#include "ops/conv2d/conv2d_backward.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <numeric>
#include <vector>

#include "core/cpu.h"
#include "core/pool.h"
#include "core/threads.h"

namespace convcore {

namespace {
index_t floor_div(index_t a, index_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }  // b > 0
}  // namespace

PhaseAxis::PhaseAxis(index_t in, index_t out, index_t k, index_t stride, index_t dil_in, index_t pad_lo, index_t p) {
  const index_t g = std::gcd(dil_in, stride);
  tap_step = stride / g;
  dil = dil_in / g;
  first_tap = 0;
  while (first_tap < k && (first_tap * dil_in) % stride != p) ++first_tap;
  taps = first_tap < k ? (k - 1 - first_tap) / tap_step + 1 : 0;
  // dx row ih = p - pad_lo + stride * j for j in [j0, j1].
  const index_t j0 = -floor_div(p - pad_lo, stride), j1 = floor_div(in - 1 - p + pad_lo, stride);
  count = std::max<index_t>(j1 - j0 + 1, 0);
  start = p - pad_lo + stride * j0;
  if (taps == 0) return;
  // Tap i (r = first_tap + i * tap_step) sends dy row j - t0 - i * dil to phase row j, t0 = (r0 * dil_in - p) / s.
  // With the taps flipped this is a correlation with padding lo before dy and hi after it.
  const index_t t0 = (first_tap * dil_in - p) / stride, span = (taps - 1) * dil;
  lo = t0 + span - j0;
  hi = count - out - lo + span;
}

std::vector<PhaseAxis> conv_grad_phases(index_t in, index_t out, index_t k, index_t stride, index_t dil,
                                        index_t pad_lo) {
  std::vector<PhaseAxis> v;
  for (index_t p = 0; p < stride; ++p) v.emplace_back(in, out, k, stride, dil, pad_lo, p);
  return v;
}

void conv2d_input_grad_weights(const Conv2dShape& s, const float* w, float* wt) {
  const index_t G = s.groups, Cg = s.C / G, Kg = s.K / G;
  const std::vector<PhaseAxis> rows = conv_grad_phases(s.H, s.OH, s.R, s.stride_h, s.dil_h, s.pad_t);
  const std::vector<PhaseAxis> cols = conv_grad_phases(s.W, s.OW, s.S, s.stride_w, s.dil_w, s.pad_l);
  for (const PhaseAxis& ph : rows)
    for (const PhaseAxis& pw : cols) {
      const index_t nh = ph.taps, nw = pw.taps;
      // wt[c = g * Cg + cg][k][i][j] = w[g * Kg + k][cg][r(nh - 1 - i)][q(nw - 1 - j)]
      for (index_t c = 0; c < s.C; ++c) {
        const index_t g = c / Cg, cg = c % Cg;
        for (index_t k = 0; k < Kg; ++k)
          for (index_t i = 0; i < nh; ++i) {
            const index_t r = ph.first_tap + (nh - 1 - i) * ph.tap_step;
            for (index_t j = 0; j < nw; ++j) {
              const index_t q = pw.first_tap + (nw - 1 - j) * pw.tap_step;
              *wt++ = w[(((g * Kg + k) * Cg + cg) * s.R + r) * s.S + q];
            }
          }
      }
    }
}

void conv2d_input_grad(const Conv2dShape& s, const float* dy, const float* w, const float* wt, float* dx) {
  conv2d_check(s);
  if (active_isa() == Isa::scalar) return conv2d_input_grad_ref(s, dy, w, dx);
  std::vector<float> own;
  if (wt == nullptr) {
    own.resize(static_cast<size_t>(s.K * (s.C / s.groups) * s.R * s.S));
    conv2d_input_grad_weights(s, w, own.data());
    wt = own.data();
  }
  const std::vector<PhaseAxis> rows = conv_grad_phases(s.H, s.OH, s.R, s.stride_h, s.dil_h, s.pad_t);
  const std::vector<PhaseAxis> cols = conv_grad_phases(s.W, s.OW, s.S, s.stride_w, s.dil_w, s.pad_l);
  const index_t planes_in = s.N * s.K, planes_out = s.N * s.C;
  // dy rows / columns a phase never reads (negative padding) are cropped away; a phase left with none gets no
  // gradient at all.
  auto crop = [&](const PhaseAxis& ph, const PhaseAxis& pw) {
    return std::array<index_t, 4>{std::max<index_t>(-ph.lo, 0), std::max<index_t>(-ph.hi, 0),
                                  std::max<index_t>(-pw.lo, 0), std::max<index_t>(-pw.hi, 0)};
  };
  // Some dx positions get no gradient (phases without taps, or whose dy rows are all cropped away): zero dx first,
  // before any phase writes its part.
  bool zero = false;
  for (const PhaseAxis& ph : rows)
    for (const PhaseAxis& pw : cols) {
      const auto [ct, cb, cl, cr] = crop(ph, pw);
      zero |= ph.taps == 0 || pw.taps == 0 || s.OH - ct - cb <= 0 || s.OW - cl - cr <= 0;
    }
  if (zero) std::memset(dx, 0, sizeof(float) * static_cast<size_t>(planes_out * s.H * s.W));

  const float* wphase = wt;
  std::vector<float> cropped, result;
  for (const PhaseAxis& ph : rows)
    for (const PhaseAxis& pw : cols) {
      const float* wp = wphase;
      wphase += s.C * (s.K / s.groups) * ph.taps * pw.taps;
      if (ph.taps == 0 || pw.taps == 0 || ph.count == 0 || pw.count == 0) continue;
      const auto [ct, cb, cl, cr] = crop(ph, pw);
      const index_t IH = s.OH - ct - cb, IW = s.OW - cl - cr;
      if (IH <= 0 || IW <= 0) continue;  // stays zero (dx was cleared above): no dy row reaches this phase
      const float* src = dy;
      if (ct || cb || cl || cr) {
        cropped.resize(static_cast<size_t>(planes_in * IH * IW));
        parallel_for(planes_in, threads_for(static_cast<double>(planes_in) * IH * IW, 1 << 17),
                     [&](index_t pl0, index_t pl1) {
          for (index_t pl = pl0; pl < pl1; ++pl)
            for (index_t h = 0; h < IH; ++h)
              std::memcpy(cropped.data() + (pl * IH + h) * IW, dy + (pl * s.OH + h + ct) * s.OW + cl,
                          sizeof(float) * IW);
        });
        src = cropped.data();
      }
      // clang-format off
      const Conv2dShape t{s.N, s.K, IH, IW, s.C, ph.taps, pw.taps, ph.count, pw.count, 1, 1, ph.dil, pw.dil,
                          std::max<index_t>(ph.lo, 0), std::max<index_t>(ph.hi, 0), std::max<index_t>(pw.lo, 0),
                          std::max<index_t>(pw.hi, 0), s.groups};
      // clang-format on
      const bool direct = s.stride_h == 1 && s.stride_w == 1;  // one phase: it is dx
      if (direct) {
        conv2d(t, src, wp, nullptr, dx);
        continue;
      }
      result.resize(static_cast<size_t>(planes_out * ph.count * pw.count));
      conv2d(t, src, wp, nullptr, result.data());
      parallel_for(planes_out, threads_for(static_cast<double>(planes_out) * ph.count * pw.count, 1 << 17),
                   [&](index_t pl0, index_t pl1) {
        for (index_t pl = pl0; pl < pl1; ++pl)
          for (index_t u = 0; u < ph.count; ++u) {
            const float* from = result.data() + (pl * ph.count + u) * pw.count;
            float* to = dx + (pl * s.H + ph.start + u * s.stride_h) * s.W + pw.start;
            for (index_t v = 0; v < pw.count; ++v) to[v * s.stride_w] = from[v];
          }
      });
    }
}

}  // namespace convcore
