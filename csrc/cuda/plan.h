// The GPU Plan: the same builder contract as the CPU Plan (csrc/plan/plan.h, csrc/plan/ops.h) - tensors NHWC with a
// pixel stride, channel slices for concatenations written in place, reshaped views, constants, one op per builder
// call - so python/convcore/plan/lower.py drives either one. Weights are packed and uploaded once when an op is
// added; activations live in one device arena planned per batch size (the CPU Plan's greedy best-fit), with one
// split-K workspace shared by the convolutions. A run converts the NCHW inputs, runs the ops on the plan's stream
// (from the second call at a batch size on, as one captured CUDA graph: launch overhead matters at batch 1), converts
// the outputs back and synchronizes; every CUDA error becomes a CudaError.
#pragma once
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cuda/kernels.h"

namespace convcore::cuda {

// Device memory on one device, freed with it.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(std::size_t bytes, int device);
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept { *this = std::move(o); }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  ~DeviceBuffer();
  void* data() const { return p_; }
  float* floats() const { return static_cast<float*>(p_); }
  std::size_t bytes() const { return bytes_; }
  int device() const { return device_; }

 private:
  void reset() noexcept;
  void* p_ = nullptr;
  std::size_t bytes_ = 0;
  int device_ = 0;
};

// Makes `device` current for a scope.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0, device_ = 0;
};

struct TensorDesc {
  index_t H = 1, W = 1, C = 1;
  int parent = -1;  // a channel slice [c0, c0 + C) of this tensor, or (reshaped) a view of it
  index_t c0 = 0;
  bool reshaped = false;
  int buffer = -1;    // arena buffer of a root tensor
  int constant = -1;  // index of a plan constant
};

struct View {  // where a tensor lies during a run
  float* base;
  index_t stride;  // floats between pixels
  index_t image;   // floats between images (0 for constants)
};

class GpuPlan;

struct Exec {
  const GpuPlan* plan;
  float* arena;
  const std::vector<index_t>* offsets;
  index_t N;
  float* workspace;
  const float* const* inputs;  // NCHW, on the device
  float* const* outputs;
  cudaStream_t stream;
  View at(int tensor) const;
};

struct GpuOp {
  std::string name, kind, detail;
  std::vector<int> reads, writes;
  double flops_per_image = 0;
  virtual ~GpuOp() = default;
  virtual void run(const Exec& ex) const = 0;
  virtual index_t workspace_floats(index_t /*N*/) const { return 0; }
  virtual std::string kernel(index_t /*N*/) const { return kind; }  // the kernel a run at batch N uses
};

struct ProfileEntry {
  std::string name, kind, detail;
  double flops, seconds;
};

class GpuPlan {
 public:
  GpuPlan(int device, Precision precision);
  ~GpuPlan();
  GpuPlan(const GpuPlan&) = delete;
  GpuPlan& operator=(const GpuPlan&) = delete;

  int device() const { return device_; }
  Precision precision() const { return precision_; }
  int multiprocessors() const { return sms_; }
  cudaStream_t stream() const { return stream_; }

  // Tensors (the CPU Plan's semantics).
  int add_tensor(index_t H, index_t W, index_t C);
  int add_constant(index_t H, index_t W, index_t C, const float* nhwc);
  void alias(int child, int parent, index_t c0);
  int reshape(int t, index_t H, index_t W, index_t C);
  const TensorDesc& tensor(int t) const;
  int num_tensors() const { return static_cast<int>(tensors_.size()); }
  bool aliasable(int t) const;
  int root_of(int t) const;

  int add_input(index_t C, index_t H, index_t W);
  void add_output(int t, bool nchw);
  void add_op(std::unique_ptr<GpuOp> op);
  GpuOp& back_op() { return *ops_.back(); }
  // A device copy of n floats that lives as long as the plan (packed weights, biases).
  const float* upload(const std::vector<float>& host);

  // Runs on N images. run_device: inputs[i] / outputs[i] are contiguous NCHW device arrays on this plan's device;
  // run_host: host arrays, copied in and out. Both return when the results are complete.
  void run_device(const float* const* inputs, index_t N, float* const* outputs);
  void run_host(const float* const* inputs, index_t N, float* const* outputs);
  std::vector<ProfileEntry> profile(const float* const* inputs, index_t N, float* const* outputs, int repeats);

  index_t arena_bytes(index_t N) const;
  index_t weight_bytes() const { return weight_bytes_; }
  const std::vector<std::unique_ptr<GpuOp>>& ops() const { return ops_; }
  const std::vector<int>& inputs() const { return inputs_; }
  const std::vector<std::pair<int, bool>>& outputs() const { return outputs_; }
  const float* constant_data(int c) const { return constants_.at(static_cast<size_t>(c)).floats(); }
  std::vector<std::vector<index_t>> output_shapes(index_t N) const;

 private:
  struct Layout;
  Layout& layout(index_t N);
  std::vector<index_t> plan_memory(index_t N, index_t* floats) const;
  void execute(Layout& L, const float* const* inputs, float* const* outputs, std::vector<double>* times);

  int device_;
  Precision precision_;
  int sms_ = 1;
  cudaStream_t stream_ = nullptr;
  bool graphs_ = true;
  std::vector<TensorDesc> tensors_;
  std::vector<index_t> buffer_floats_;  // per image
  std::vector<DeviceBuffer> constants_, weights_;
  std::vector<std::unique_ptr<GpuOp>> ops_;  // inputs first, outputs last
  std::vector<int> inputs_;
  std::vector<std::pair<int, bool>> outputs_;
  std::vector<std::unique_ptr<Layout>> layouts_;
  index_t weight_bytes_ = 0;
  std::mutex mutex_;
};

// Builders (csrc/plan/ops.h's, with the same checks): each adds an op and returns the tensor it writes.
struct ConvSpec {
  index_t K, C, R, S;  // weight (K, C / groups, R, S), OIHW
  index_t sh = 1, sw = 1, dh = 1, dw = 1;
  index_t pt = 0, pb = 0, pl = 0, pr = 0;
  index_t groups = 1;
};
enum class ConvAlgo : int { automatic = 0, igemm, depthwise, winograd };

int plan_conv(GpuPlan& p, const std::string& name, int x, const ConvSpec& s, const float* w, const float* bias,
              const Epi& e, int residual, ConvAlgo algo);
int plan_mbconv(GpuPlan& p, const std::string& name, int x, const float* we, const float* be, index_t E,
                const Epi& ee, const ConvSpec& dw, const float* wd, const float* bd, const Epi& ed, const float* wp,
                const float* bp, index_t K, const Epi& ep, int residual);
int plan_pool(GpuPlan& p, const std::string& name, int x, bool is_max, index_t kh, index_t kw, index_t sh, index_t sw,
              index_t dh, index_t dw, index_t pt, index_t pb, index_t pl, index_t pr, index_t OH, index_t OW,
              bool count_include_pad);
int plan_global_pool(GpuPlan& p, const std::string& name, int x, bool is_max);
int plan_adaptive_pool(GpuPlan& p, const std::string& name, int x, bool is_max, index_t OH, index_t OW);
int plan_affine(GpuPlan& p, const std::string& name, int x, const float* scale, const float* shift, const Epi& e);
int plan_binary(GpuPlan& p, const std::string& name, int a, int b, int op, const Epi& e);
void plan_copy_into(GpuPlan& p, const std::string& name, int x, int y, index_t c0);
int plan_softmax(GpuPlan& p, const std::string& name, int x, bool log);
int plan_lrn(GpuPlan& p, const std::string& name, int x, index_t size, float alpha, float beta, float k);
int plan_flatten_nchw(GpuPlan& p, const std::string& name, int x);

}  // namespace convcore::cuda
