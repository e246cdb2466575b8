// The compiled CPU Plan: a whole network as a list of fused ops over channels-last tensors in one planned arena, run
// in one C++ call (python/convcore/plan builds it from a Graph; see docs/plan.md). The tensor table, the builders and
// the arena planner are the backend-free core (plan/core.h, plan/builder.h); this is the CPU executor and its ops,
// which run the shared kernels (kernels/kernels.h).
//
// Execution. run() hands the op list to the thread pool once: for each op, its `parallelism` parts are claimed by the
// threads, and every part is done before the next op starts. Ops never allocate or throw while running: all checks
// and packing happen when they are added.
#pragma once
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/aligned.h"
#include "core/cpu.h"
#include "kernels/bf16.h"
#include "kernels/int8.h"
#include "kernels/kernels.h"
#include "kernels/reduce.h"
#include "plan/builder.h"

namespace convcore {

class Plan;

struct Exec {  // one run
  const Plan* plan;
  float* arena;
  const ArenaLayout* layout;
  index_t N;
  const float* const* inputs;  // the caller's NCHW inputs
  float* const* outputs;       // the caller's output arrays
  TensorView at(int tensor) const;
};

// An op of the CPU Plan.
struct CpuOp : PlanOp {
  // Threads worth using for batch N when `threads` are available (1 for small ops).
  virtual int parallelism(index_t N, int threads) const = 0;
  // This thread's share: part `part` of `parts`.
  virtual void run(const Exec& ex, int part, int parts) const = 0;
  // Whether part i should run on thread i where that thread is there to take it (the part's data stays in that
  // core's cache from one op to the next: the LSTM's steps); any thread still takes a part left over.
  virtual bool pinned() const { return false; }
};

// An LSTM's recurrent parameters as ONNX lays them out (D directions, hidden size H): R (D, 4H, H), peepholes
// P (D, 3H), initial states (D, H); the optional ones may be null.
struct LstmWeights {
  index_t directions, hidden;
  bool reverse;
  const float *r, *p, *h0, *c0;
};

class Plan : public PlanBuilder<Plan> {
 public:
  // bf16: the convolutions in bf16 (kernels/bf16.h; invalid_argument where this CPU has no bf16 kernels).
  explicit Plan(Isa isa, bool bf16 = false);

  const Kernels& kernels() const { return *kernels_; }
  const Bf16Kernels* bf16_kernels() const { return bf16_; }  // null: an fp32 plan
  Isa isa() const { return isa_; }
  static constexpr bool kFusedMBConv = true;
  // Beyond the common builder: the conv's per-image input gate and mask, the mbconv without its projection, the
  // backward ops (plan/grad_ops.h), self-attention, the LSTM, reductions and where (below).
  std::vector<std::string> capabilities() const {
    return {"conv_gate", "conv_mask", "mbconv_no_project", "backward", "attention", "lstm", "int8", "int8_bytes",
            "reduce", "where"};
  }

  // Backend hooks of PlanBuilder (plan/builder.h).
  std::string kind(const std::string& base, bool simd) const {
    return simd ? std::string(kernels_->isa) + "_" + base : base;
  }
  int add_constant(index_t H, index_t W, index_t C, const float* nhwc);
  void add_conv(const ConvCall& c);
  void add_mbconv(const MBConvCall& c);
  std::unique_ptr<PlanOp> make_op(const step::Any& s);  // plan/ops.cpp

  // Multi-head self-attention of sequences x stored as L pixels of 3 * heads * D channels (q, k, v, each `heads`
  // heads of D): y (L pixels of heads * D) = softmax(scale * q k^T + bias) v per head (plan/ops.cpp). An image holds
  // its pixels / `length` sequences one after another (length 0: one). bias (copied; may be null): `windows` x
  // `bias_heads` (1 or heads) x L x L, sequence i (counted over the batch) adding window i % windows.
  int attention(const std::string& name, int x, index_t heads, float scale, index_t length = 0,
                const float* bias = nullptr, index_t windows = 1, index_t bias_heads = 1);

  // y (H x W x 1) = op over each pixel's C channels of x (plan/ops.cpp).
  int reduce(const std::string& name, int x, ReduceOp op);
  // y = condition != 0 ? a : b, broadcasting over (H, W, C) as binary() does.
  int where(const std::string& name, int condition, int a, int b);

  // The recurrence of an ONNX LSTM over each image's sequence (plan/recurrent.cpp): `gates` holds each step's
  // W x + biases (L pixels of D x 4H); y is every step's hidden state (L x D pixels of H: step-major, then
  // direction) for output 0, the last hidden (1) or cell (2) state (D pixels of H) otherwise. Weights are copied.
  int lstm(const std::string& name, int gates, const LstmWeights& w, int output);

  // y = conv(quantize(x), w) * in.scale * w_scale[k] + bias, then the QDQ steps of `qe` (its grid, the residual, the
  // activation, the result's grid, or the next qconv's bytes): an int8 convolution (plan/int8_ops.cpp).
  // w: (K, C / groups, R, S) int8 values; x_bytes: x is another qconv's byte output (quantized already by `in`).
  int qconv(const std::string& name, int x, const ConvSpec& s, const int8_t* w, const float* w_scale,
            const float* bias, const QuantParams& in, const QuantEpilogue& qe, int residual, bool x_bytes);

  // Runs the network on N images: inputs[i] is N x C x H x W of input i, outputs[i] receives output i. Calls on one
  // Plan run one at a time.
  void run(const float* const* inputs, index_t N, float* const* outputs, int threads);
  std::vector<ProfileEntry> profile(const float* const* inputs, index_t N, float* const* outputs, int threads,
                                    int repeats);

  index_t arena_bytes(index_t N) const;  // the arena a batch of N needs
  index_t held_bytes() const { return arenas_.bytes(); }  // the arenas kept now (ArenaCache)
  const float* zeros() const { return zeros_.data(); }  // at least max-channels zeros (padding taps)
  void reserve_zeros(index_t n);
  const std::vector<float*>& constant_ptrs() const { return constant_ptrs_; }

 private:
  struct Arena {
    ArenaLayout layout;
    AlignedVector memory;
    index_t bytes() const { return static_cast<index_t>(memory.size()) * 4; }
  };
  Arena& arena(index_t N);  // planned on first use
  // Which tensors a bf16 plan stores as bf16 (plan/conv_ops.cpp): chosen once, when the op list is complete (at the
  // first arena).
  void store_bf16();
  void execute(const Exec& ex, int threads, std::vector<double>* times) const;
  void invalidate() override { arenas_.clear(); }

  Isa isa_;
  const Kernels* kernels_;
  const Bf16Kernels* bf16_ = nullptr;
  bool bf16_storage_chosen_ = false;
  std::vector<AlignedVector> constants_;
  std::vector<float*> constant_ptrs_;
  AlignedVector zeros_;
  ArenaCache<Arena> arenas_;
  std::mutex mutex_;
};

}  // namespace convcore
