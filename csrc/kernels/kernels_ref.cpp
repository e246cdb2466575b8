// Reference kernels: plain loops with double accumulators over the same packed layouts as the SIMD kernels.
// They run under CONVCORE_ISA=scalar and are the oracle the AVX2 / AVX-512 kernels are tested against.
#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/kernels.h"

namespace convcore {
namespace ref {
namespace {

double act(double v, const Epilogue& e) { return activate<double>(e.act, v, e.alpha, e.beta); }

void activation(const Epilogue& e, const float* x, float* y, index_t n) {
  for (index_t i = 0; i < n; ++i) y[i] = static_cast<float>(act(x[i], e));
}

void act_grad(const Epilogue& e, const float* v, const float* dy, float* dx, index_t n) {
  for (index_t i = 0; i < n; ++i)
    dx[i] = static_cast<float>(act_input_grad<double>(e.act, v[i], dy[i], e.alpha, e.beta));
}

void nchw_to_nhwc(const float* src, index_t C, index_t HW, float* dst, index_t ds, index_t p0, index_t p1) {
  for (index_t p = p0; p < p1; ++p)
    for (index_t c = 0; c < C; ++c) dst[p * ds + c] = src[c * HW + p];
}

void nhwc_to_nchw(const float* src, index_t ss, index_t C, index_t HW, float* dst, index_t p0, index_t p1) {
  for (index_t p = p0; p < p1; ++p)
    for (index_t c = 0; c < C; ++c) dst[c * HW + p] = src[p * ss + c];
}

void conv_tile_choice(index_t Kg, index_t Cg, index_t taps, ConvTile& p) {
  p.nv = 1;
  p.nr = static_cast<int>(std::min<index_t>(Kg, 16));
  p.mr = 1;
}

void conv(const ConvGeom& g, const ConvWeights& p, const ConvIO& io, const Epilogue& e, index_t p0, index_t p1,
          index_t b0, index_t b1) {
  for (index_t b = b0; b < b1; ++b) {
    const index_t grp = b / p.t.blocks_per_group, kb = b % p.t.blocks_per_group;
    const index_t oc0 = grp * g.Kg + kb * p.t.nr, c0 = grp * g.Cg;
    const index_t nvalid = std::min<index_t>(p.t.nr, g.Kg - kb * p.t.nr);
    const float* w = p.w + b * p.t.panel;
    for (index_t px = p0; px < p1; ++px) {
      const index_t n = px / (g.OH * g.OW), oh = (px / g.OW) % g.OH, ow = px % g.OW;
      for (index_t j = 0; j < nvalid; ++j) {
        double acc = p.bias[b * p.t.nr + j];
        for (index_t r = 0; r < g.R; ++r)
          for (index_t s = 0; s < g.S; ++s) {
            const float* xp = conv_tap_ptr(g, io, n, oh, ow, r, s, c0);
            const float* wt = w + (r * g.S + s) * g.Cg * p.t.nr + j;
            for (index_t c = 0; c < g.Cg; ++c) acc += static_cast<double>(xp[c]) * wt[c * p.t.nr];
          }
        if (io.res) acc += io.res[px * io.rs + oc0 + j];
        io.y[px * io.ys + oc0 + j] =
            masked(static_cast<float>(act(acc, e)), io.mask ? io.mask + px * io.ms + oc0 + j : nullptr, e);
      }
    }
  }
}

void gemm_rows(index_t kd, const float* a, index_t lda, const float* bias, const float* b, const index_t* boff,
               float* c, index_t ldc, index_t m, index_t n, bool accumulate) {
  for (index_t i = 0; i < m; ++i)
    for (index_t j = 0; j < n; ++j) {
      double acc = (bias ? bias[i] : 0.0) + (accumulate ? c[i * ldc + j] : 0.0);
      for (index_t k = 0; k < kd; ++k) acc += static_cast<double>(a[i * lda + k]) * b[boff[k] + j];
      c[i * ldc + j] = static_cast<float>(acc);
    }
}

void dot_rows(index_t K, const float* x, index_t m, const float* w, index_t n0, index_t n1, const float* bias,
              float* y, index_t ldy) {
  for (index_t i = 0; i < m; ++i)
    for (index_t j = n0; j < n1; ++j) {
      double acc = bias ? bias[j] : 0.0;
      for (index_t k = 0; k < K; ++k) acc += static_cast<double>(x[i * K + k]) * w[j * K + k];
      y[i * ldy + j] = static_cast<float>(acc);
    }
}

void dw_plane(index_t taps, const float* w, float bias, const float* b, index_t row_step, const index_t* boff,
              float* c, index_t rows, index_t cols) {
  for (index_t i = 0; i < rows; ++i)
    for (index_t j = 0; j < cols; ++j) {
      double acc = bias;
      for (index_t k = 0; k < taps; ++k) acc += static_cast<double>(w[k]) * b[i * row_step + boff[k] + j];
      c[i * cols + j] = static_cast<float>(acc);
    }
}

void weighted_rows(index_t n, index_t taps, const float* x, const index_t* index, index_t step, const float* w,
                   float* y) {
  for (index_t i = 0; i < n; ++i) {
    double acc = 0;
    for (index_t t = 0; t < taps; ++t) acc += static_cast<double>(w[t]) * x[index[t] * step + i];
    y[i] = static_cast<float>(acc);
  }
}

void dwconv(const ConvGeom& g, const float* w, const float* bias, const ConvIO& io, const Epilogue& e, index_t r0,
            index_t r1) {
  const index_t Cp = g.C, G = g.Cg;  // lanes = 1: no padding; G input channels per output (narrow groups)
  for (index_t row = r0; row < r1; ++row) {
    const index_t n = row / g.OH, oh = row % g.OH;
    for (index_t ow = 0; ow < g.OW; ++ow) {
      const index_t px = row * g.OW + ow;
      for (index_t c = 0; c < g.C; ++c) {
        double acc = bias[c];
        for (index_t r = 0; r < g.R; ++r)
          for (index_t s = 0; s < g.S; ++s)
            for (index_t j = 0; j < G; ++j)
              acc += static_cast<double>(conv_tap_ptr(g, io, n, oh, ow, r, s, c / G * G + j)[0]) *
                     w[((r * g.S + s) * G + j) * Cp + c];
        if (io.res) acc += io.res[px * io.rs + c];
        io.y[px * io.ys + c] =
            masked(static_cast<float>(act(acc, e)), io.mask ? io.mask + px * io.ms + c : nullptr, e);
      }
    }
  }
}

void pool(const PoolGeom& g, const float* x, index_t xs, float* y, index_t ys, index_t r0, index_t r1) {
  for (index_t row = r0; row < r1; ++row) {
    const index_t n = row / g.OH, oh = row % g.OH, h0 = oh * g.sh - g.pt;
    for (index_t ow = 0; ow < g.OW; ++ow) {
      const index_t w0 = ow * g.sw - g.pl;
      float* yp = y + (row * g.OW + ow) * ys;
      for (index_t c = 0; c < g.C; ++c) {
        if (g.is_max) {
          float best = -std::numeric_limits<float>::infinity();
          for (index_t r = 0; r < g.kh; ++r)
            for (index_t s = 0; s < g.kw; ++s) {
              const index_t ih = h0 + r * g.dh, iw = w0 + s * g.dw;
              if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
              const float v = x[((n * g.H + ih) * g.W + iw) * xs + c];
              if (v > best || std::isnan(v)) best = std::isnan(best) ? best : v;
            }
          yp[c] = best;
        } else {
          const index_t h1 = std::min(h0 + g.kh, g.H + g.pb), w1 = std::min(w0 + g.kw, g.W + g.pr);
          const index_t hs = std::max<index_t>(h0, 0), he = std::min(h1, g.H);
          const index_t ws = std::max<index_t>(w0, 0), we = std::min(w1, g.W);
          const index_t count = g.count_include_pad ? (h1 - h0) * (w1 - w0) : (he - hs) * (we - ws);
          double sum = 0;
          for (index_t ih = hs; ih < he; ++ih)
            for (index_t iw = ws; iw < we; ++iw) sum += x[((n * g.H + ih) * g.W + iw) * xs + c];
          yp[c] = count > 0 ? static_cast<float>(sum / static_cast<double>(count)) : 0.0f;
        }
      }
    }
  }
}

void global_pool(index_t HW, index_t C, bool is_max, const float* x, index_t xs, float* y, index_t ys, index_t n0,
                 index_t n1) {
  for (index_t n = n0; n < n1; ++n)
    for (index_t c = 0; c < C; ++c) {
      double acc = is_max ? -std::numeric_limits<double>::infinity() : 0.0;
      for (index_t p = 0; p < HW; ++p) {
        const double v = x[(n * HW + p) * xs + c];
        acc = is_max ? (std::isnan(acc) || v > acc || std::isnan(v) ? (std::isnan(acc) ? acc : v) : acc) : acc + v;
      }
      y[n * ys + c] = static_cast<float>(is_max ? acc : acc / static_cast<double>(HW));
    }
}

void affine(index_t C, const float* x, index_t xs, float* y, index_t ys, const float* scale, const float* shift,
            const Epilogue& e, index_t p0, index_t p1) {
  for (index_t p = p0; p < p1; ++p)
    for (index_t c = 0; c < C; ++c) {
      double v = x[p * xs + c];
      if (scale) v *= scale[c];
      if (shift) v += shift[c];
      y[p * ys + c] = static_cast<float>(act(static_cast<float>(v), e));
    }
}

void layer_norm(index_t C, const float* x, index_t xs, float* y, index_t ys, const float* scale, const float* shift,
                float eps, const Epilogue& e, index_t p0, index_t p1) {
  for (index_t p = p0; p < p1; ++p) {
    const float* xp = x + p * xs;
    double mean = 0.0, var = 0.0;
    for (index_t c = 0; c < C; ++c) mean += xp[c];
    mean /= static_cast<double>(C);
    for (index_t c = 0; c < C; ++c) var += (xp[c] - mean) * (xp[c] - mean);
    const double rstd = 1.0 / std::sqrt(var / static_cast<double>(C) + eps);
    for (index_t c = 0; c < C; ++c) {
      double v = (xp[c] - mean) * rstd;
      if (scale) v *= scale[c];
      if (shift) v += shift[c];
      y[p * ys + c] = static_cast<float>(act(static_cast<float>(v), e));
    }
  }
}

void softmax(index_t C, const float* x, index_t xs, float* y, index_t ys, bool log, index_t p0, index_t p1) {
  for (index_t p = p0; p < p1; ++p) {
    const float* xp = x + p * xs;
    float* yp = y + p * ys;
    float mx = -std::numeric_limits<float>::infinity();
    for (index_t c = 0; c < C; ++c) mx = std::max(mx, xp[c]);
    double sum = 0;
    for (index_t c = 0; c < C; ++c) sum += std::exp(static_cast<double>(xp[c]) - mx);
    const double lse = std::log(sum);
    for (index_t c = 0; c < C; ++c) {
      const double z = static_cast<double>(xp[c]) - mx;
      yp[c] = static_cast<float>(log ? z - lse : std::exp(z - lse));
    }
  }
}

void binary(const BinaryGeom& g, BinaryOp op, const float* a, const float* b, float* y, const Epilogue& e, index_t r0,
            index_t r1) {
  for (index_t row = r0; row < r1; ++row) {
    const index_t n = row / g.H, h = row % g.H;
    for (index_t w = 0; w < g.W; ++w)
      for (index_t c = 0; c < g.C; ++c) {
        const float av = a[n * g.a_s[0] + h * g.a_s[1] + w * g.a_s[2] + c * g.a_s[3]];
        const float bv = b[n * g.b_s[0] + h * g.b_s[1] + w * g.b_s[2] + c * g.b_s[3]];
        // The float result first, as the SIMD kernels round it, then the activation.
        const float v = static_cast<float>(binary_value<double>(op, av, bv));
        y[(row * g.W + w) * g.ys + c] = static_cast<float>(act(v, e));
      }
  }
}

// Winograd F(4x4, 3x3) transforms as explicit matrices (the SIMD kernels use the factored forms).
constexpr double kBT[6][6] = {{4, 0, -5, 0, 1, 0}, {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                              {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
constexpr double kAT[4][6] = {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};

void wino_input(const WinoGeom& g, const float* x, index_t xs, float* Vt, index_t t0, index_t t1) {
  const index_t per_image = g.tiles_h * g.tiles_w;
  for (index_t t = t0; t < t1; ++t) {
    const index_t n = t / per_image, th = (t % per_image) / g.tiles_w, tw = t % g.tiles_w;
    for (index_t c = 0; c < g.C; ++c) {
      double d[6][6], u[6][6];
      for (int r = 0; r < 6; ++r)
        for (int q = 0; q < 6; ++q) {
          const index_t ih = th * 4 - g.pt + r, iw = tw * 4 - g.pl + q;
          d[r][q] = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W ? x[((n * g.H + ih) * g.W + iw) * xs + c] : 0.0;
        }
      for (int i = 0; i < 6; ++i)
        for (int q = 0; q < 6; ++q) {
          u[i][q] = 0;
          for (int r = 0; r < 6; ++r) u[i][q] += kBT[i][r] * d[r][q];
        }
      for (int i = 0; i < 6; ++i)
        for (int j = 0; j < 6; ++j) {
          double v = 0;
          for (int q = 0; q < 6; ++q) v += u[i][q] * kBT[j][q];
          Vt[(t * 36 + i * 6 + j) * g.C + c] = static_cast<float>(v);
        }
    }
  }
}

void wino_output(const WinoGeom& g, const float* M, const float* bias, float* y, index_t ys, const float* res,
                 index_t rs, const float* mk, index_t ms, const Epilogue& e, index_t t0, index_t t1) {
  const index_t per_image = g.tiles_h * g.tiles_w;
  for (index_t t = t0; t < t1; ++t) {
    const index_t n = t / per_image, th = (t % per_image) / g.tiles_w, tw = t % g.tiles_w;
    for (index_t k = 0; k < g.K; ++k) {
      double u[4][6];
      for (int i = 0; i < 4; ++i)
        for (int q = 0; q < 6; ++q) {
          u[i][q] = 0;
          for (int r = 0; r < 6; ++r) u[i][q] += kAT[i][r] * M[(t * 36 + r * 6 + q) * g.K + k];
        }
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) {
          const index_t oh = th * 4 + i, ow = tw * 4 + j;
          if (oh >= g.OH || ow >= g.OW) continue;
          double v = bias[k];
          for (int q = 0; q < 6; ++q) v += u[i][q] * kAT[j][q];
          const index_t p = (n * g.OH + oh) * g.OW + ow;
          if (res) v += res[p * rs + k];
          y[p * ys + k] = masked(static_cast<float>(act(v, e)), mk ? mk + p * ms + k : nullptr, e);
        }
    }
  }
}

void channel_absmax(const float* x, index_t xs, index_t C, float* out, index_t p0, index_t p1) {
  for (index_t p = p0; p < p1; ++p) {
    float m = 0.0f;
    bool finite = true;
    for (index_t c = 0; c < C; ++c) {
      const float v = x[p * xs + c];
      finite = finite && std::isfinite(v);
      m = std::max(m, std::fabs(v));
    }
    out[p] = finite ? m : std::numeric_limits<float>::quiet_NaN();
  }
}

}  // namespace

extern const Kernels kKernels = {"scalar",     1,           conv_tile_choice, conv,         gemm_rows,
                                 dot_rows,     dw_plane,     dwconv,      pool,             global_pool,  affine,
                                 layer_norm,   softmax,
                                 binary,       weighted_rows, wino_input,  wino_output,      channel_absmax, activation,
                                 act_grad,     nchw_to_nhwc, nhwc_to_nchw};

}  // namespace ref

const Kernels& kernels_for(Isa isa) {
  switch (isa) {
    case Isa::avx512: return avx512::kKernels;
    case Isa::avx2: return avx2::kKernels;
    case Isa::scalar: break;
  }
  return ref::kKernels;
}

}  // namespace convcore
