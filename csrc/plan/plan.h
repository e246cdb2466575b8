// The compiled Plan: a whole network as a list of fused ops over channels-last tensors in one planned arena, run in
// one C++ call (python/convcore/plan builds it from a Graph; see docs/plan.md).
//
// Tensors. Each is NHWC per image with a pixel stride: (H, W, C) dims, and it either owns a buffer of the arena
// (N images of H * W * C floats, N fixed per call), is a channel slice of another tensor (a concatenation written in
// place: its producer stores straight into the slice), or is a constant owned by the plan (one image, broadcast over
// the batch). Dims of 1 broadcast in binary ops.
//
// Execution. run() opens one OpenMP parallel region for the whole network; for each op, `parallelism` threads run
// their share and all meet at a barrier before the next op. Ops never allocate or throw while running: all checks
// and packing happen when they are added.
#pragma once
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/aligned.h"
#include "core/common.h"
#include "core/cpu.h"
#include "plan/kernels.h"

namespace convcore {

struct TensorDesc {
  index_t H = 1, W = 1, C = 1;
  int parent = -1;   // slice of this tensor (channels [c0, c0 + C) of it), or -1
  index_t c0 = 0;
  bool reshaped = false;  // a whole contiguous root seen with other (H, W, C): pixel stride C
  int buffer = -1;   // arena buffer of a root tensor; -1 for constants and slices
  int constant = -1; // index into Plan::constants_, or -1
};

struct Resolved {  // where a tensor's data lies during one run
  float* base;     // image 0, pixel 0, its first channel
  index_t stride;  // floats between pixels
  index_t image;   // floats between images (0 for constants)
};

class Plan;

struct Exec {
  const Plan* plan;
  float* arena;
  const std::vector<index_t>* offsets;  // buffer -> float offset in the arena
  index_t N;
  const float* const* inputs;  // the caller's NCHW inputs
  float* const* outputs;    // the caller's output arrays
  Resolved at(int tensor) const;
};

struct PlanOp {
  std::string name, kind, detail;  // graph node(s), kernel, shapes (for summary())
  std::vector<int> reads, writes;  // tensors
  double flops_per_image = 0;
  virtual ~PlanOp() = default;
  // Threads worth using for batch N when `threads` are available (1 for small ops).
  virtual int parallelism(index_t N, int threads) const = 0;
  // This thread's share: part `part` of `parts`.
  virtual void run(const Exec& ex, int part, int parts) const = 0;
};

struct ProfileEntry {
  std::string name, kind, detail;
  double flops, seconds;
};

class Plan {
 public:
  explicit Plan(Isa isa);

  const PlanKernels& kernels() const { return *kernels_; }
  Isa isa() const { return isa_; }

  // Tensors.
  int add_tensor(index_t H, index_t W, index_t C);
  int add_constant(index_t H, index_t W, index_t C, const float* nhwc);
  // Makes `child` (a root tensor nothing has been planned into yet) live in channels [c0, c0 + child.C) of
  // `parent`, which must have the same H and W.
  void alias(int child, int parent, index_t c0);
  // A view of root tensor `t` (stored contiguously) as H x W x C with the same number of floats per image, e.g. a
  // 7x7x512 map as one 1x1x25088 pixel for a fully connected layer.
  int reshape(int t, index_t H, index_t W, index_t C);
  const TensorDesc& tensor(int t) const { return tensors_.at(static_cast<size_t>(t)); }
  int num_tensors() const { return static_cast<int>(tensors_.size()); }
  bool aliasable(int t) const;  // may become a slice of another tensor
  int root_of(int t) const;

  void add_op(std::unique_ptr<PlanOp> op);
  // An NCHW input (N, C, H, W), or (N, C) with H = W = 1; returns its NHWC tensor. Inputs come before other ops.
  int add_input(index_t C, index_t H, index_t W);
  void add_output(int tensor, bool nchw);          // nchw: 4-D (N, C, H, W); else (N, H * W * C) as stored

  // Runs the network on N images: inputs[i] is N x C x H x W of input i, outputs[i] receives output i. Calls on one
  // Plan run one at a time.
  void run(const float* const* inputs, index_t N, float* const* outputs, int threads);

  index_t arena_bytes(index_t N) const;
  index_t weight_bytes() const;
  const std::vector<std::unique_ptr<PlanOp>>& ops() const { return ops_; }
  PlanOp& back_op() { return *ops_.back(); }
  std::vector<ProfileEntry> profile(const float* const* inputs, index_t N, float* const* outputs, int threads,
                                    int repeats);
  float* zeros() const { return zeros_.data(); }  // at least max-channels zeros (padding taps)
  void reserve_zeros(index_t n);

  const float* constant_data(int c) const { return constants_.at(static_cast<size_t>(c)).data(); }
  std::vector<std::pair<int, bool>> outputs() const { return outputs_; }
  const std::vector<int>& inputs() const { return inputs_; }
  void add_weight_bytes(index_t b) { weight_bytes_ += b; }

 private:
  struct Layout {
    index_t N = 0;
    std::vector<index_t> offsets;
    index_t floats = 0;
    AlignedVector arena;
  };
  Layout plan_memory(index_t N) const;
  void execute(const Exec& ex, int threads, std::vector<double>* times) const;

  Isa isa_;
  const PlanKernels* kernels_;
  std::vector<TensorDesc> tensors_;
  std::vector<index_t> buffer_floats_;  // per image
  std::vector<AlignedVector> constants_;
  std::vector<std::unique_ptr<PlanOp>> ops_;
  std::vector<std::pair<int, bool>> outputs_;
  std::vector<int> inputs_;  // their tensors
  index_t weight_bytes_ = 0;
  mutable AlignedVector zeros_;
  std::vector<Layout> layouts_;  // one per batch size seen, reused
  std::mutex mutex_;
};

}  // namespace convcore
