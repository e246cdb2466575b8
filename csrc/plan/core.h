// The part of a compiled Plan that does not depend on where it runs, shared by the CPU Plan (plan/plan.h) and the GPU
// Plan (cuda/plan.h): the tensor table, the op list with what each op reads and writes, the inputs and outputs, the
// arena planner, and the shape rules and checks of every builder (plan/builder.h). CUDA-free and SIMD-free: both
// Python modules (_core and _cuda) link it.
//
// Tensors. Each is NHWC per image with a pixel stride: (H, W, C) dims, and it either owns a buffer of the arena
// (N images of H * W * C floats, N fixed per call), is a channel slice of another tensor (a concatenation written in
// place: its producer stores straight into the slice), is a reshaped view of a whole contiguous tensor, or is a
// constant owned by the plan (one image, broadcast over the batch). Dims of 1 broadcast in binary ops.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/common.h"
#include "kernels/elementwise.h"

namespace convcore {

struct TensorDesc {
  index_t H = 1, W = 1, C = 1;
  int parent = -1;        // a channel slice [c0, c0 + C) of this tensor, or (reshaped) a view of it; -1: a root
  index_t c0 = 0;
  bool reshaped = false;  // a whole contiguous root seen with other (H, W, C): pixel stride C
  int buffer = -1;        // arena buffer of a root tensor; -1 for constants and slices
  int constant = -1;      // index of a plan constant, or -1
};

struct TensorView {  // where a tensor lies during one run
  float* base;       // image 0, pixel 0, its first channel
  index_t stride;    // floats between pixels
  index_t image;     // floats between images (0 for constants)
};

// One op of a plan as the core sees it: names for summary(), the tensors it reads and writes (their lifetimes), its
// work. Each backend derives its executable ops from it.
struct PlanOp {
  std::string name, kind, detail;  // graph node(s), kernel, shapes
  std::vector<int> reads, writes;
  double flops_per_image = 0;
  virtual ~PlanOp() = default;
  virtual std::string kernel(index_t /*N*/) const { return kind; }  // the kernel a run at batch N uses
};

struct ProfileEntry {
  std::string name, kind, detail;
  double flops, seconds;
};

// Where each arena buffer lies for a batch of N images.
struct ArenaLayout {
  index_t N = 0;
  std::vector<index_t> offsets;  // buffer -> float offset
  index_t floats = 0;
};

// The arenas a backend keeps, for the batch sizes used last, most recent first (a server with dynamic batching would
// otherwise hold one per batch size ever seen). Arena has `ArenaLayout layout` and `index_t bytes() const`.
template <class Arena>
class ArenaCache {
 public:
  static constexpr size_t kMax = 4;
  Arena* find(index_t N) {
    for (size_t i = 0; i < arenas_.size(); ++i)
      if (arenas_[i]->layout.N == N) {
        std::unique_ptr<Arena> a = std::move(arenas_[i]);
        arenas_.erase(arenas_.begin() + static_cast<std::ptrdiff_t>(i));
        arenas_.insert(arenas_.begin(), std::move(a));
        return arenas_.front().get();
      }
    return nullptr;
  }
  Arena& add(std::unique_ptr<Arena> a) {
    if (arenas_.size() >= kMax) arenas_.pop_back();  // the least recently used batch size
    arenas_.insert(arenas_.begin(), std::move(a));
    return *arenas_.front();
  }
  void clear() { arenas_.clear(); }
  index_t bytes() const {
    index_t total = 0;
    for (const auto& a : arenas_) total += a->bytes();
    return total;
  }

 private:
  std::vector<std::unique_ptr<Arena>> arenas_;
};

// A convolution's weight (K, C / groups, R, S) as torch stores it (OIHW), and its geometry.
struct ConvSpec {
  index_t K = 1, C = 1, R = 1, S = 1;
  index_t sh = 1, sw = 1, dh = 1, dw = 1;
  index_t pt = 0, pb = 0, pl = 0, pr = 0;
  index_t groups = 1;
};

enum class ConvAlgo : int { automatic = 0, igemm, depthwise, winograd };

// A pooling window (the output size comes from the caller: torch's and ONNX's ceil rules differ).
struct PoolSpec {
  bool is_max = true;
  index_t kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1;
  index_t pt = 0, pb = 0, pl = 0, pr = 0;
  index_t OH = 1, OW = 1;
  bool count_include_pad = false;
};

// "+relu", "+silu", ... ("" without activation): the epilogue in op kinds and details.
std::string epilogue_suffix(const Epilogue& e);

// Whether Winograd F(4x4, 3x3) applies: 3x3, stride 1, no dilation, one group.
bool winograd_eligible(const ConvSpec& s);

class PlanCore {
 public:
  PlanCore() = default;
  PlanCore(const PlanCore&) = delete;
  PlanCore& operator=(const PlanCore&) = delete;
  virtual ~PlanCore() = default;

  // Tensors.
  int add_tensor(index_t H, index_t W, index_t C);
  // Makes `child` (a root tensor nothing has been planned into yet) live in channels [c0, c0 + child.C) of
  // `parent`, which must have the same H and W.
  void alias(int child, int parent, index_t c0);
  // A view of root tensor `t` (or of another view of one) (stored contiguously) as H x W x C with the same number of floats per image, e.g. a
  // 7x7x512 map as one 1x1x25088 pixel for a fully connected layer.
  int reshape(int t, index_t H, index_t W, index_t C);
  const TensorDesc& tensor(int t) const;  // std::invalid_argument for an unknown id
  int num_tensors() const { return static_cast<int>(tensors_.size()); }
  bool aliasable(int t) const;  // may become a slice of another tensor
  int root_of(int t) const;
  bool is_constant(int t) const { return tensor(root_of(t)).constant >= 0; }
  // The tensor's id, checked: `what` names the argument in the error.
  int check(int t, const std::string& what) const;
  // `t` (or -1: none) must be a computed tensor of shape H x W x C.
  void check_like(int t, index_t H, index_t W, index_t C, const std::string& what) const;

  // The op list. Inputs come first, outputs last (every op before them).
  void add_op(std::unique_ptr<PlanOp> op);
  const std::vector<std::unique_ptr<PlanOp>>& ops() const { return ops_; }
  PlanOp& back_op() { return *ops_.back(); }
  const std::vector<int>& inputs() const { return inputs_; }
  const std::vector<std::pair<int, bool>>& outputs() const { return outputs_; }
  // Outputs as (N, ...) shapes for batch N: (N, C, H, W) when NCHW, else (N, H * W * C) as stored.
  std::vector<std::vector<index_t>> output_shapes(index_t N) const;
  // Inputs as (N, C, H, W).
  std::vector<index_t> input_shape(size_t i, index_t N) const;

  // Buffers placed greedily, largest first, at the lowest offset no buffer alive at the same time overlaps (the
  // TFLite / ONNX Runtime arena strategy); `align` floats per buffer. A buffer lives from the first op touching any
  // tensor in it to the last; graph outputs live to the end.
  ArenaLayout plan_memory(index_t N, index_t align) const;
  // Where tensor t lies, given the arena of a layout and the plan's constants (one pointer per constant).
  TensorView view(int t, float* arena, const ArenaLayout& layout, const std::vector<float*>& constants) const;

  // summary() rows of a batch of N from each op's measured seconds.
  std::vector<ProfileEntry> profile_rows(index_t N, const std::vector<double>& seconds) const;

  index_t weight_bytes() const { return weight_bytes_; }
  void add_weight_bytes(index_t b) { weight_bytes_ += b; }
  // "HxWxC" of a tensor (op details).
  std::string dims(int t) const;

 protected:
  // The bookkeeping of the backends' add_input / add_output / add_constant.
  int register_input(index_t C, index_t H, index_t W);
  void register_output(int t, bool nchw, std::unique_ptr<PlanOp> op);  // the op copying it out: after every other
  int register_constant(index_t H, index_t W, index_t C);  // the backend stores constant number `constants_++`
  virtual void invalidate() {}  // the op list changed: planned layouts are stale

 private:
  std::vector<TensorDesc> tensors_;
  std::vector<index_t> buffer_floats_;  // per image
  std::vector<std::unique_ptr<PlanOp>> ops_;
  std::vector<int> inputs_;
  std::vector<std::pair<int, bool>> outputs_;
  int constants_ = 0;
  index_t weight_bytes_ = 0;
};

// The output (OH, OW) of convolution `s` over tensor `in`, checked (std::invalid_argument naming what is wrong).
std::pair<index_t, index_t> conv_output(const TensorDesc& in, const ConvSpec& s, const char* op);

}  // namespace convcore
