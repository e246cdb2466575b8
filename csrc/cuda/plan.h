// The GPU Plan: the backend-free plan core and builder (plan/core.h, plan/builder.h: the tensor table, the shape
// rules, the arena planner - the same code the CPU Plan runs) with a GPU executor, so python/convcore/plan/lower.py
// drives either one. Weights are packed and uploaded once when an op is added; activations live in one device arena
// per batch size, with one split-K workspace shared by the convolutions. A run converts the NCHW inputs, runs the ops
// on the plan's stream (from the second call at a batch size on, as one captured CUDA graph: launch overhead matters
// at batch 1), converts the outputs back and synchronizes; every CUDA error becomes a CudaError.
#pragma once
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cuda/kernels.h"
#include "plan/builder.h"

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

class Plan;

struct Exec {  // one run
  const Plan* plan;
  float* arena;
  const ArenaLayout* layout;
  index_t N;
  float* workspace;
  const float* const* inputs;  // NCHW, on the device
  float* const* outputs;
  cudaStream_t stream;
  TensorView at(int tensor) const;
};

// An op of the GPU Plan: its launches on the run's stream.
struct GpuOp : PlanOp {
  virtual void run(const Exec& ex) const = 0;
  virtual index_t workspace_floats(index_t /*N*/) const { return 0; }
};

class Plan : public PlanBuilder<Plan> {
 public:
  Plan(int device, Precision precision);
  ~Plan();

  int device() const { return device_; }
  Precision precision() const { return precision_; }
  int multiprocessors() const { return sms_; }
  cudaStream_t stream() const { return stream_; }
  static constexpr bool kFusedMBConv = false;  // an inverted-residual block runs as its three convolutions
  std::vector<std::string> capabilities() const { return {}; }

  // Backend hooks of PlanBuilder (plan/builder.h).
  std::string kind(const std::string& base, bool) const { return "cuda_" + base; }
  int add_constant(index_t H, index_t W, index_t C, const float* nhwc);
  void add_conv(const ConvCall& c);
  std::unique_ptr<PlanOp> make_op(const step::Any& s);  // cuda/plan_ops.cpp

  // A device copy of n floats that lives as long as the plan (packed weights, biases); null for an empty vector.
  const float* upload(const std::vector<float>& host);
  const index_t* upload(const std::vector<index_t>& host);  // the same for index tables

  // Runs on N images. run_device: inputs[i] / outputs[i] are contiguous NCHW device arrays on this plan's device;
  // run_host: host arrays, copied in and out. Both return when the results are complete.
  void run_device(const float* const* inputs, index_t N, float* const* outputs);
  void run_host(const float* const* inputs, index_t N, float* const* outputs);
  std::vector<ProfileEntry> profile(const float* const* inputs, index_t N, float* const* outputs, int repeats);

  index_t arena_bytes(index_t N) const;
  index_t held_bytes() const { return arenas_.bytes(); }
  const std::vector<float*>& constant_ptrs() const { return constant_ptrs_; }

 private:
  const void* upload_bytes(const void* host, std::size_t bytes);
  // The device memory of one batch size: the arena, the convolutions' split-K workspace, staging buffers for host
  // arrays, and the CUDA graph of the body once captured.
  struct Arena {
    ArenaLayout layout;
    DeviceBuffer memory, workspace;
    std::vector<DeviceBuffer> staged_in, staged_out;
    int runs = 0;
#ifndef CONVCORE_CUDA_EMULATE
    cudaGraphExec_t graph = nullptr;
    bool graph_failed = false;
#endif
    index_t bytes() const { return static_cast<index_t>(memory.bytes() + workspace.bytes()); }
    ~Arena();
  };
  Arena& arena(index_t N);
  void execute(Arena& a, const float* const* inputs, float* const* outputs, std::vector<double>* times);
  void invalidate() override;

  int device_;
  Precision precision_;
  int sms_ = 1;
  cudaStream_t stream_ = nullptr;
  bool graphs_ = true;
  std::vector<DeviceBuffer> constants_, weights_;
  std::vector<float*> constant_ptrs_;
  ArenaCache<Arena> arenas_;  // arenas and CUDA graphs of the batch sizes used last
  std::mutex mutex_;
};

}  // namespace convcore::cuda
