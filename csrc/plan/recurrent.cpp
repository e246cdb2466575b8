// The CPU Plan's LSTM (ONNX semantics: gates input, output, forget, cell; sigmoid / tanh; optional peepholes) over
// each image's sequence, stored as L pixels of I channels.
//
// The inputs' part of every step's gates is a 1x1 convolution before it (W x + the biases: plan/lower.py); then one
// op per step and direction, directions one after the other. A step is memory-bound: it reads all
// of R (4H x H floats: 4 MB for H = 512) for a few FLOPs per weight. Its parts split the hidden units, each part
// reading R's rows of its units (all four gates), pinned to one thread (CpuOp::pinned): a 2-thread part of a
// direction's R, 2 MB for H = 512, stays in that core's L2 from step to step instead of streaming from L3.
#include <cstring>
#include <memory>
#include <vector>

#include "plan/op_util.h"

namespace convcore {
using namespace planop;
namespace {

// What the step ops of one LSTM share (its weights, copied; its sizes).
struct LstmShared {
  index_t L, H, D;
  std::vector<float> r;       // per direction, R as ONNX stores it: 4H rows of H
  std::vector<float> peep;    // per direction, peepholes i, o, f (3H), or empty
  std::vector<float> h0, c0;  // per direction, initial states (H): zeros when not given
  int gates, state;           // tensors: the inputs' gates (L pixels of D x 4H); per direction two h buffers (a
                              // step reads one, writes the other) and c: 3D pixels of H
};

// Step `step` of direction d: h and c of units [u0, u1) per part, from the previous h (all units) and the gates.
struct LstmStepOp : CpuOp {
  std::shared_ptr<const LstmShared> m;
  index_t d, step, t;  // t: the position this step reads and writes (step from the end when running backwards)
  int output, y;       // output 0: y gets h at pixel t * D + d; 1 / 2: after the last step y gets h / c at pixel d
  const Kernels* k;
  bool pinned() const override { return true; }
  int parallelism(index_t N, int threads) const override {
    return parts_for(8.0 * N * m->H * m->H, kFlopGrain, threads);
  }
  void run(const Exec& ex, int part, int parts) const override {
    const LstmShared& s = *m;
    const index_t H = s.H;
    const TensorView gates = ex.at(s.gates), state = ex.at(s.state), out = ex.at(y);
    const auto [u0, u1] = share(H, part, parts, 16);
    if (u0 >= u1) return;
    thread_local std::vector<float> scratch;
    if (static_cast<index_t>(scratch.size()) < 5 * H) scratch.resize(static_cast<size_t>(5 * H));
    float* z = scratch.data();  // gates i, o, f, c of units [u0, u1) at z + g * H + u
    float* tc = z + 4 * H;
    Epilogue sigmoid, tanh_;
    sigmoid.act = Act::sigmoid;
    tanh_.act = Act::tanh;
    const float* rd = s.r.data() + d * 4 * H * H;
    const float* p = s.peep.empty() ? nullptr : s.peep.data() + d * 3 * H;
    const index_t n_units = u1 - u0;
    for (index_t n = 0; n < ex.N; ++n) {
      float* st = state.base + n * state.image + 3 * d * state.stride;
      const float* h_prev = step == 0 ? s.h0.data() + d * H : st + (step % 2) * state.stride;
      float* h = st + ((step + 1) % 2) * state.stride;
      float* c = st + 2 * state.stride;
      if (step == 0) std::memcpy(c + u0, s.c0.data() + d * H + u0, sizeof(float) * n_units);
      const float* g_in = gates.base + n * gates.image + t * gates.stride + d * 4 * H;
      for (index_t g = 0; g < 4; ++g)  // z = the step's input gates + R h_prev, rows of this part's units
        k->dot_rows(H, h_prev, 1, rd, g * H + u0, g * H + u1, g_in, z, 4 * H);
      float *zi = z + u0, *zo = z + H + u0, *zf = z + 2 * H + u0, *zc = z + 3 * H + u0;
      float* cu = c + u0;
      if (p)
        for (index_t j = 0; j < n_units; ++j) zi[j] += p[u0 + j] * cu[j], zf[j] += p[2 * H + u0 + j] * cu[j];
      k->activation(sigmoid, zi, zi, n_units);
      k->activation(sigmoid, zf, zf, n_units);
      k->activation(tanh_, zc, zc, n_units);
      for (index_t j = 0; j < n_units; ++j) cu[j] = zf[j] * cu[j] + zi[j] * zc[j];
      if (p)
        for (index_t j = 0; j < n_units; ++j) zo[j] += p[H + u0 + j] * cu[j];
      k->activation(sigmoid, zo, zo, n_units);
      k->activation(tanh_, cu, tc, n_units);
      for (index_t j = 0; j < n_units; ++j) h[u0 + j] = zo[j] * tc[j];
      float* o = out.base + n * out.image;
      if (output == 0) std::memcpy(o + (t * s.D + d) * out.stride + u0, h + u0, sizeof(float) * n_units);
      else if (step == s.L - 1)
        std::memcpy(o + d * out.stride + u0, (output == 1 ? h : c) + u0, sizeof(float) * n_units);
    }
  }
};

}  // namespace

int Plan::lstm(const std::string& name, int gates, const LstmWeights& w, int output) {
  const TensorDesc in = tensor(check(gates, "gates"));
  const index_t D = w.directions, H = w.hidden, L = in.H * in.W;
  require(D == 1 || D == 2, "plan.lstm: expected 1 or 2 directions");
  require(H >= 1 && in.C == D * 4 * H, "plan.lstm: gates must have directions x 4 x hidden channels");
  require(output >= 0 && output <= 2, "plan.lstm: output must be 0 (y), 1 (h) or 2 (c)");
  auto m = std::make_shared<LstmShared>();
  m->L = L, m->H = H, m->D = D;
  m->r.assign(w.r, w.r + D * 4 * H * H);
  if (w.p) m->peep.assign(w.p, w.p + D * 3 * H);
  m->h0 = w.h0 ? std::vector<float>(w.h0, w.h0 + D * H) : std::vector<float>(static_cast<size_t>(D * H), 0.0f);
  m->c0 = w.c0 ? std::vector<float>(w.c0, w.c0 + D * H) : std::vector<float>(static_cast<size_t>(D * H), 0.0f);
  add_weight_bytes(static_cast<index_t>(4 * (m->r.size() + m->peep.size() + m->h0.size() + m->c0.size())));
  m->gates = gates;
  m->state = add_tensor(3 * D, 1, H);
  const int y = output == 0 ? add_tensor(L * D, 1, H) : add_tensor(D, 1, H);
  for (index_t d = 0; d < D; ++d)
    for (index_t step = 0; step < L; ++step) {
      auto op = std::make_unique<LstmStepOp>();
      op->m = m, op->d = d, op->step = step, op->t = (w.reverse || d == 1) ? L - 1 - step : step;
      op->output = output, op->y = y, op->k = kernels_;
      op->flops_per_image = 8.0 * static_cast<double>(H * H);
      finish(std::move(op), name, kind("lstm_step", false), dims(gates) + " -> " + dims(y), {gates, m->state},
             {m->state, y});
    }
  return y;
}

}  // namespace convcore
