// The GPU Plan's executor: device memory, the arenas per batch size, CUDA graph capture, host staging and profiling.
// Its ops and builder hooks are in plan_ops.cpp; the tensor table and builders are the shared core (plan/).
#include "cuda/plan.h"

#include <algorithm>
#include <cstdlib>

namespace convcore::cuda {

using convcore::require;

[[noreturn]] void throw_cuda(cudaError_t err, const char* what, const char* file, int line) {
  std::string where = file;
  const size_t slash = where.find_last_of('/');
  if (slash != std::string::npos) where = where.substr(slash + 1);
  std::string msg = std::string("CUDA error ") + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ") in " +
                    what + " at " + where + ":" + std::to_string(line);
  if (err == cudaErrorMemoryAllocation) msg += ": the GPU is out of memory (a smaller batch needs less)";
  throw CudaError(msg);
}

// ------------------------------------------------------------------------------------------- device memory
DeviceBuffer::DeviceBuffer(std::size_t bytes, int device) : bytes_(bytes), device_(device) {
  if (bytes == 0) return;
  DeviceGuard guard(device);
  CC_CHECK(cudaMalloc(&p_, bytes));
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    reset();
    p_ = o.p_, bytes_ = o.bytes_, device_ = o.device_;
    o.p_ = nullptr, o.bytes_ = 0;
  }
  return *this;
}

DeviceBuffer::~DeviceBuffer() { reset(); }

void DeviceBuffer::reset() noexcept {
  if (p_ == nullptr) return;
  int previous = 0;
  cudaGetDevice(&previous);
  if (previous != device_) cudaSetDevice(device_);
  cudaFree(p_);  // errors here (a context already broken by an earlier fault) cannot be reported from a destructor
  if (previous != device_) cudaSetDevice(previous);
  p_ = nullptr;
}

DeviceGuard::DeviceGuard(int device) : device_(device) {
  CC_CHECK(cudaGetDevice(&previous_));
  if (previous_ != device_) CC_CHECK(cudaSetDevice(device_));
}

DeviceGuard::~DeviceGuard() {
  if (previous_ != device_) cudaSetDevice(previous_);
}

// ------------------------------------------------------------------------------------------------- the plan
TensorView Exec::at(int t) const { return plan->view(t, arena, *layout, plan->constant_ptrs()); }

Plan::Arena::~Arena() {
#ifndef CONVCORE_CUDA_EMULATE
  if (graph != nullptr) cudaGraphExecDestroy(graph);
#endif
}

Plan::Plan(int device, Precision precision) : device_(device), precision_(precision) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0) {
    cudaGetLastError();
    throw CudaError(std::string("no usable GPU: ") + (err == cudaSuccess ? "no CUDA device" : cudaGetErrorString(err)));
  }
  require(device >= 0 && device < count, "device: expected 0 <= device < " + std::to_string(count) + " (got " +
                                             std::to_string(device) + ")");
  DeviceGuard guard(device);
  cudaDeviceProp prop;
  CC_CHECK(cudaGetDeviceProperties(&prop, device));
  sms_ = std::max(1, prop.multiProcessorCount);
  CC_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  const char* env = std::getenv("CONVCORE_CUDA_GRAPHS");
  graphs_ = !(env != nullptr && std::string(env) == "0");
}

Plan::~Plan() {
  int previous = 0;
  cudaGetDevice(&previous);
  if (previous != device_) cudaSetDevice(device_);
  if (stream_ != nullptr) cudaStreamSynchronize(stream_);
  arenas_.clear();
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
  if (previous != device_) cudaSetDevice(previous);
}

void Plan::invalidate() {
  std::lock_guard<std::mutex> lock(mutex_);
  arenas_.clear();  // planned for the old op list
}

int Plan::add_constant(index_t H, index_t W, index_t C, const float* nhwc) {
  const int t = register_constant(H, W, C);
  const std::size_t bytes = static_cast<std::size_t>(H * W * C) * 4;
  DeviceBuffer buf(bytes, device_);
  {
    DeviceGuard guard(device_);
    CC_CHECK(cudaMemcpy(buf.data(), nhwc, bytes, cudaMemcpyHostToDevice));
  }
  constants_.push_back(std::move(buf));
  constant_ptrs_.push_back(constants_.back().floats());
  return t;
}

const void* Plan::upload_bytes(const void* host, std::size_t bytes) {
  if (bytes == 0) return nullptr;
  DeviceBuffer buf(bytes, device_);
  {
    DeviceGuard guard(device_);
    CC_CHECK(cudaMemcpy(buf.data(), host, bytes, cudaMemcpyHostToDevice));
  }
  add_weight_bytes(static_cast<index_t>(bytes));
  weights_.push_back(std::move(buf));
  return weights_.back().data();
}

const float* Plan::upload(const std::vector<float>& host) {
  return static_cast<const float*>(upload_bytes(host.data(), host.size() * sizeof(float)));
}

const index_t* Plan::upload(const std::vector<index_t>& host) {
  return static_cast<const index_t*>(upload_bytes(host.data(), host.size() * sizeof(index_t)));
}

index_t Plan::arena_bytes(index_t N) const {
  index_t ws = 0;
  for (const auto& op : ops()) ws = std::max(ws, static_cast<const GpuOp&>(*op).workspace_floats(N));
  return (plan_memory(N, 64).floats + ws) * 4;  // 256-byte aligned buffers
}

Plan::Arena& Plan::arena(index_t N) {
  if (Arena* a = arenas_.find(N)) return *a;
  auto a = std::make_unique<Arena>();
  a->layout = plan_memory(N, 64);
  a->memory = DeviceBuffer(static_cast<std::size_t>(std::max<index_t>(a->layout.floats, 1)) * 4, device_);
  index_t ws = 0;
  for (const auto& op : ops()) ws = std::max(ws, static_cast<const GpuOp&>(*op).workspace_floats(N));
  if (ws > 0) a->workspace = DeviceBuffer(static_cast<std::size_t>(ws) * 4, device_);
  return arenas_.add(std::move(a));
}

// Inputs, the body (a CUDA graph from the second run at this batch size on), outputs; then waits for the stream.
void Plan::execute(Arena& a, const float* const* inputs, float* const* outputs, std::vector<double>* times) {
  const Exec ex{this, a.memory.floats(), &a.layout, a.layout.N, a.workspace.floats(), inputs, outputs, stream_};
  const auto& list = ops();
  auto op = [&](size_t i) -> const GpuOp& { return static_cast<const GpuOp&>(*list[i]); };
  const size_t n_ops = list.size(), body0 = this->inputs().size(), body1 = n_ops - this->outputs().size();
  if (times != nullptr) {  // timed op by op with events
    std::vector<cudaEvent_t> events(n_ops + 1, nullptr);
    for (auto& e : events) CC_CHECK(cudaEventCreate(&e));
    try {
      CC_CHECK(cudaEventRecord(events[0], stream_));
      for (size_t i = 0; i < n_ops; ++i) {
        op(i).run(ex);
        CC_CHECK(cudaEventRecord(events[i + 1], stream_));
      }
      CC_CHECK(cudaStreamSynchronize(stream_));
      for (size_t i = 0; i < n_ops; ++i) {
        float ms = 0.0f;
        CC_CHECK(cudaEventElapsedTime(&ms, events[i], events[i + 1]));
        (*times)[i] = ms * 1e-3;
      }
    } catch (...) {
      for (auto& e : events) cudaEventDestroy(e);
      throw;
    }
    for (auto& e : events) cudaEventDestroy(e);
    return;
  }
  for (size_t i = 0; i < body0; ++i) op(i).run(ex);
#ifndef CONVCORE_CUDA_EMULATE
  if (graphs_ && a.runs >= 1 && a.graph == nullptr && !a.graph_failed && body1 > body0) {
    // Capture the body once: its pointers (arena, workspace, weights) are fixed for this batch size; the inputs and
    // outputs, which differ per call, stay outside the graph.
    cudaGraph_t graph = nullptr;
    CC_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    try {
      for (size_t i = body0; i < body1; ++i) op(i).run(ex);
    } catch (...) {
      cudaStreamEndCapture(stream_, &graph);
      if (graph != nullptr) cudaGraphDestroy(graph);
      throw;
    }
    CC_CHECK(cudaStreamEndCapture(stream_, &graph));
    const cudaError_t err = cudaGraphInstantiate(&a.graph, graph, 0);
    cudaGraphDestroy(graph);
    if (err != cudaSuccess) {  // run without a graph from now on
      cudaGetLastError();
      a.graph = nullptr;
      a.graph_failed = true;
    }
  }
  if (a.graph != nullptr)
    CC_CHECK(cudaGraphLaunch(a.graph, stream_));
  else
    for (size_t i = body0; i < body1; ++i) op(i).run(ex);
#else
  for (size_t i = body0; i < body1; ++i) op(i).run(ex);
#endif
  for (size_t i = body1; i < n_ops; ++i) op(i).run(ex);
  CC_CHECK(cudaStreamSynchronize(stream_));
  ++a.runs;
}

void Plan::run_device(const float* const* inputs, index_t N, float* const* outputs) {
  require(N >= 1, "plan.run: the batch must be >= 1");
  std::lock_guard<std::mutex> lock(mutex_);
  DeviceGuard guard(device_);
  execute(arena(N), inputs, outputs, nullptr);
}

void Plan::run_host(const float* const* inputs, index_t N, float* const* outputs) {
  require(N >= 1, "plan.run: the batch must be >= 1");
  std::lock_guard<std::mutex> lock(mutex_);
  DeviceGuard guard(device_);
  Arena& a = arena(N);
  if (a.staged_in.size() != this->inputs().size()) {
    a.staged_in.clear();
    for (size_t i = 0; i < this->inputs().size(); ++i) {
      const std::vector<index_t> s = input_shape(i, N);
      a.staged_in.emplace_back(static_cast<std::size_t>(s[0] * s[1] * s[2] * s[3]) * 4, device_);
    }
    a.staged_out.clear();
    for (const auto& shape : output_shapes(N)) {
      index_t n = 1;
      for (index_t v : shape) n *= v;
      a.staged_out.emplace_back(static_cast<std::size_t>(n) * 4, device_);
    }
  }
  std::vector<const float*> ins;
  std::vector<float*> outs;
  for (size_t i = 0; i < a.staged_in.size(); ++i) {
    CC_CHECK(cudaMemcpyAsync(a.staged_in[i].data(), inputs[i], a.staged_in[i].bytes(), cudaMemcpyHostToDevice,
                             stream_));
    ins.push_back(a.staged_in[i].floats());
  }
  for (auto& b : a.staged_out) outs.push_back(b.floats());
  execute(a, ins.data(), outs.data(), nullptr);
  for (size_t i = 0; i < a.staged_out.size(); ++i)
    CC_CHECK(cudaMemcpyAsync(outputs[i], a.staged_out[i].data(), a.staged_out[i].bytes(), cudaMemcpyDeviceToHost,
                             stream_));
  CC_CHECK(cudaStreamSynchronize(stream_));
}

std::vector<ProfileEntry> Plan::profile(const float* const* inputs, index_t N, float* const* outputs, int repeats) {
  run_host(inputs, N, outputs);  // plans memory, stages the inputs, warms up
  std::lock_guard<std::mutex> lock(mutex_);
  DeviceGuard guard(device_);
  Arena& a = arena(N);
  std::vector<const float*> ins;
  std::vector<float*> outs;
  for (auto& b : a.staged_in) ins.push_back(b.floats());
  for (auto& b : a.staged_out) outs.push_back(b.floats());
  std::vector<double> best(ops().size(), 1e30), times(ops().size(), 0.0);
  for (int r = 0; r < std::max(1, repeats); ++r) {
    execute(a, ins.data(), outs.data(), &times);
    for (size_t i = 0; i < times.size(); ++i) best[i] = std::min(best[i], times[i]);
  }
  return profile_rows(N, best);
}

}  // namespace convcore::cuda
