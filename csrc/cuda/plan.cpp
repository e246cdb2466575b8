#include "cuda/plan.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <numeric>

#include "core/common.h"

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

// ------------------------------------------------------------------------------------------------- tensors
View Exec::at(int t) const {
  const TensorDesc* d = &plan->tensor(t);
  if (d->reshaped) {
    const View r = at(d->parent);
    return {r.base, d->C, r.image};
  }
  index_t c0 = 0;
  while (d->parent >= 0) {
    c0 += d->c0;
    d = &plan->tensor(d->parent);
  }
  const index_t stride = d->C;
  if (d->constant >= 0) return {const_cast<float*>(plan->constant_data(d->constant)) + c0, stride, 0};
  return {arena + (*offsets)[static_cast<size_t>(d->buffer)] + c0, stride, d->H * d->W * stride};
}

struct GpuPlan::Layout {
  index_t N = 0;
  std::vector<index_t> offsets;
  DeviceBuffer arena, workspace;
  std::vector<DeviceBuffer> staged_in, staged_out;  // for host arrays
  index_t workspace_floats = 0;
  int runs = 0;
#ifndef CONVCORE_CUDA_EMULATE
  cudaGraphExec_t graph = nullptr;
  bool graph_failed = false;
#endif
  ~Layout() {
#ifndef CONVCORE_CUDA_EMULATE
    if (graph != nullptr) cudaGraphExecDestroy(graph);
#endif
  }
};

GpuPlan::GpuPlan(int device, Precision precision) : device_(device), precision_(precision) {
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

GpuPlan::~GpuPlan() {
  int previous = 0;
  cudaGetDevice(&previous);
  if (previous != device_) cudaSetDevice(device_);
  if (stream_ != nullptr) cudaStreamSynchronize(stream_);
  layouts_.clear();
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
  if (previous != device_) cudaSetDevice(previous);
}

const TensorDesc& GpuPlan::tensor(int t) const {
  require(t >= 0 && t < num_tensors(), "plan: unknown tensor id");
  return tensors_[static_cast<size_t>(t)];
}

int GpuPlan::add_tensor(index_t H, index_t W, index_t C) {
  require(H >= 1 && W >= 1 && C >= 1, "plan: tensor dims must be positive");
  TensorDesc d;
  d.H = H, d.W = W, d.C = C;
  d.buffer = static_cast<int>(buffer_floats_.size());
  buffer_floats_.push_back(H * W * C);
  tensors_.push_back(d);
  return num_tensors() - 1;
}

int GpuPlan::add_constant(index_t H, index_t W, index_t C, const float* nhwc) {
  require(H >= 1 && W >= 1 && C >= 1, "plan: constant dims must be positive");
  TensorDesc d;
  d.H = H, d.W = W, d.C = C;
  d.constant = static_cast<int>(constants_.size());
  const std::size_t bytes = static_cast<std::size_t>(H * W * C) * 4;
  DeviceBuffer buf(bytes, device_);
  {
    DeviceGuard guard(device_);
    CC_CHECK(cudaMemcpy(buf.data(), nhwc, bytes, cudaMemcpyHostToDevice));
  }
  constants_.push_back(std::move(buf));
  weight_bytes_ += static_cast<index_t>(bytes);
  tensors_.push_back(d);
  return num_tensors() - 1;
}

const float* GpuPlan::upload(const std::vector<float>& host) {
  if (host.empty()) return nullptr;
  const std::size_t bytes = host.size() * 4;
  DeviceBuffer buf(bytes, device_);
  {
    DeviceGuard guard(device_);
    CC_CHECK(cudaMemcpy(buf.data(), host.data(), bytes, cudaMemcpyHostToDevice));
  }
  weight_bytes_ += static_cast<index_t>(bytes);
  weights_.push_back(std::move(buf));
  return weights_.back().floats();
}

int GpuPlan::reshape(int t, index_t H, index_t W, index_t C) {
  const TensorDesc src = tensor(t);
  require(src.parent < 0 && !src.reshaped, "plan.reshape: expected a root tensor");
  require(H >= 1 && W >= 1 && C >= 1 && H * W * C == src.H * src.W * src.C, "plan.reshape: sizes differ");
  TensorDesc d;
  d.H = H, d.W = W, d.C = C;
  d.parent = t;
  d.reshaped = true;
  tensors_.push_back(d);
  return num_tensors() - 1;
}

int GpuPlan::root_of(int t) const {
  while (tensor(t).parent >= 0) t = tensor(t).parent;
  return t;
}

bool GpuPlan::aliasable(int t) const {
  const TensorDesc& d = tensor(t);
  if (d.parent >= 0 || d.constant >= 0 || d.buffer < 0) return false;
  for (const TensorDesc& other : tensors_)
    if (other.reshaped && root_of(other.parent) == t) return false;
  return true;
}

void GpuPlan::alias(int child, int parent, index_t c0) {
  const TensorDesc& p = tensor(parent);
  require(aliasable(child), "plan.alias: the child must be a root arena tensor with no reshaped view");
  require(root_of(parent) != child, "plan.alias: a tensor cannot live inside itself");
  require(p.constant < 0 && !p.reshaped, "plan.alias: cannot alias into a constant or a reshaped view");
  TensorDesc& c = tensors_[static_cast<size_t>(child)];
  require(c.H == p.H && c.W == p.W && c0 >= 0 && c0 + c.C <= p.C, "plan.alias: the slice does not fit the parent");
  buffer_floats_[static_cast<size_t>(c.buffer)] = 0;
  c.buffer = -1;
  c.parent = parent;
  c.c0 = c0;
}

void GpuPlan::add_op(std::unique_ptr<GpuOp> op) {
  for (int t : op->reads) require(t >= 0 && t < num_tensors(), "plan: op reads an unknown tensor");
  for (int t : op->writes)
    require(t >= 0 && t < num_tensors() && tensor(root_of(t)).constant < 0,
            "plan: op writes an unknown or constant tensor");
  require(outputs_.empty(), "plan: every op must be added before the outputs");
  std::lock_guard<std::mutex> lock(mutex_);
  ops_.push_back(std::move(op));
  layouts_.clear();  // planned for the old op list
}

namespace {

std::string dims(const TensorDesc& t) {
  return std::to_string(t.H) + "x" + std::to_string(t.W) + "x" + std::to_string(t.C);
}

const char* act_name(int a) {
  static const char* names[] = {"", "+clamp", "+leaky_relu", "+sigmoid", "+silu", "+tanh", "+hardswish",
                                "+hardsigmoid"};
  return a >= 0 && a < 8 ? names[a] : "";
}

void check_epilogue(const Epi& e) { require(e.act >= 0 && e.act <= 7, "plan: unknown activation"); }

struct InputOp : GpuOp {
  int y, index;
  index_t C, H, W;
  void run(const Exec& ex) const override {
    const View out = ex.at(y);
    launch_nchw_to_nhwc(ex.inputs[index], out.base, out.stride, ex.N, C, H, W, ex.stream);
  }
};

struct OutputOp : GpuOp {
  int x, index;
  bool nchw;
  index_t C, H, W;
  void run(const Exec& ex) const override {
    const View in = ex.at(x);
    launch_nhwc_to_output(in.base, in.stride, ex.outputs[index], ex.N, C, H, W, nchw, ex.stream);
  }
};

const char* precision_name(Precision p) {
  return p == Precision::fp32 ? "f32" : p == Precision::tf32 ? "tf32" : "bf16";
}

struct ConvOp : GpuOp {
  ConvArgs args;  // pointers to x / y / res filled per run
  int x, y, res;
  Precision precision;
  int sms;
  ConvArgs at(const Exec& ex) const {
    ConvArgs a = args;
    a.N = ex.N;
    const View in = ex.at(x), out = ex.at(y);
    a.x = in.base, a.xs = in.stride, a.y = out.base, a.ys = out.stride;
    if (res >= 0) {
      const View r = ex.at(res);
      a.res = r.base, a.rs = r.stride;
    } else {
      a.res = nullptr, a.rs = 0;
    }
    return a;
  }
  ConvLaunch choice(index_t N) const {
    ConvArgs a = args;
    a.N = N;
    return plan_conv_launch(a, precision, sms);
  }
  void run(const Exec& ex) const override {
    const ConvArgs a = at(ex);
    launch_conv(a, plan_conv_launch(a, precision, sms), ex.workspace, ex.stream);
  }
  index_t workspace_floats(index_t N) const override { return choice(N).workspace_floats; }
  std::string kernel(index_t N) const override {
    const ConvLaunch l = choice(N);
    return std::string(l.name) + (l.splits > 1 ? " split-k " + std::to_string(l.splits) : "");
  }
};

struct DwConvOp : GpuOp {
  DwArgs args;
  int x, y, res;
  void run(const Exec& ex) const override {
    DwArgs a = args;
    a.N = ex.N;
    const View in = ex.at(x), out = ex.at(y);
    a.x = in.base, a.xs = in.stride, a.y = out.base, a.ys = out.stride;
    if (res >= 0) {
      const View r = ex.at(res);
      a.res = r.base, a.rs = r.stride;
    }
    launch_dwconv(a, ex.stream);
  }
};

struct PoolOp : GpuOp {
  PoolArgs args;
  int x, y;
  void run(const Exec& ex) const override {
    PoolArgs a = args;
    a.N = ex.N;
    const View in = ex.at(x), out = ex.at(y);
    a.x = in.base, a.xs = in.stride, a.y = out.base, a.ys = out.stride;
    launch_pool(a, ex.stream);
  }
};

struct GlobalPoolOp : GpuOp {
  index_t HW, C;
  bool is_max;
  int x, y;
  void run(const Exec& ex) const override {
    const View in = ex.at(x), out = ex.at(y);
    launch_global_pool(in.base, in.stride, out.base, out.stride, ex.N, HW, C, is_max, ex.stream);
  }
};

struct AdaptivePoolOp : GpuOp {
  index_t H, W, C, OH, OW;
  bool is_max;
  int x, y;
  void run(const Exec& ex) const override {
    const View in = ex.at(x), out = ex.at(y);
    launch_adaptive_pool(in.base, in.stride, out.base, out.stride, ex.N, H, W, C, OH, OW, is_max, ex.stream);
  }
};

struct AffineOp : GpuOp {
  index_t pixels, C;
  const float* scale = nullptr;
  const float* shift = nullptr;
  Epi e;
  int x, y;
  void run(const Exec& ex) const override {
    const View in = ex.at(x), out = ex.at(y);
    launch_affine(in.base, in.stride, out.base, out.stride, ex.N * pixels, C, scale, shift, e, ex.stream);
  }
};

struct BinaryOpNode : GpuOp {
  BinaryArgs args;
  int a, b, y;
  static void strides(const TensorDesc& d, const View& v, index_t* s) {
    s[0] = v.image;
    s[1] = d.H > 1 ? d.W * v.stride : 0;
    s[2] = d.W > 1 ? v.stride : 0;
    s[3] = d.C > 1 ? 1 : 0;
  }
  void run(const Exec& ex) const override {
    BinaryArgs g = args;
    g.N = ex.N;
    const View va = ex.at(a), vb = ex.at(b), out = ex.at(y);
    strides(ex.plan->tensor(a), va, g.as);
    strides(ex.plan->tensor(b), vb, g.bs);
    g.a = va.base, g.b = vb.base, g.y = out.base, g.ys = out.stride;
    launch_binary(g, ex.stream);
  }
};

struct CopyOp : GpuOp {
  index_t pixels, C, c0;
  int x, y;
  void run(const Exec& ex) const override {
    const View in = ex.at(x), out = ex.at(y);
    launch_copy_channels(in.base, in.stride, out.base + c0, out.stride, ex.N * pixels, C, ex.stream);
  }
};

struct SoftmaxOp : GpuOp {
  index_t pixels, C;
  bool log;
  int x, y;
  void run(const Exec& ex) const override {
    const View in = ex.at(x), out = ex.at(y);
    launch_softmax(in.base, in.stride, out.base, out.stride, ex.N * pixels, C, log, ex.stream);
  }
};

struct LrnOp : GpuOp {
  index_t pixels, C, size;
  float alpha, beta, k;
  int x, y;
  void run(const Exec& ex) const override {
    const View in = ex.at(x), out = ex.at(y);
    launch_lrn(in.base, in.stride, out.base, out.stride, ex.N * pixels, C, size, alpha, beta, k, ex.stream);
  }
};

struct FlattenOp : GpuOp {
  index_t H, W, C;
  int x, y;
  void run(const Exec& ex) const override {
    const View in = ex.at(x), out = ex.at(y);
    launch_flatten_nchw(in.base, in.stride, out.base, ex.N, H, W, C, ex.stream);
  }
};

template <class T>
T& add(GpuPlan& p, std::unique_ptr<T> op) {
  T& ref = *op;
  p.add_op(std::move(op));
  return ref;
}

}  // namespace

int GpuPlan::add_input(index_t C, index_t H, index_t W) {
  require(ops_.size() == inputs_.size(), "plan: inputs must be added before other ops");
  require(C >= 1 && H >= 1 && W >= 1, "plan: input dims must be positive");
  const int y = add_tensor(H, W, C);
  auto op = std::make_unique<InputOp>();
  op->name = "input" + std::to_string(inputs_.size()), op->kind = "cuda_nchw_to_nhwc", op->detail = dims(tensor(y));
  op->y = y, op->index = static_cast<int>(inputs_.size()), op->C = C, op->H = H, op->W = W;
  op->writes = {y};
  inputs_.push_back(y);
  add_op(std::move(op));
  return y;
}

void GpuPlan::add_output(int t, bool nchw) {
  const TensorDesc& d = tensor(t);
  require(tensor(root_of(t)).constant < 0, "plan: an output must be computed");
  auto op = std::make_unique<OutputOp>();
  op->name = "output" + std::to_string(outputs_.size());
  op->kind = nchw ? "cuda_nhwc_to_nchw" : "cuda_copy_out";
  op->detail = dims(d);
  op->x = t, op->index = static_cast<int>(outputs_.size()), op->nchw = nchw;
  op->C = d.C, op->H = d.H, op->W = d.W;
  op->reads = {t};
  std::lock_guard<std::mutex> lock(mutex_);
  ops_.push_back(std::move(op));  // outputs come last: the body between inputs and outputs is what a graph captures
  outputs_.emplace_back(t, nchw);
  layouts_.clear();
}

std::vector<std::vector<index_t>> GpuPlan::output_shapes(index_t N) const {
  std::vector<std::vector<index_t>> out;
  for (const auto& [t, nchw] : outputs_) {
    const TensorDesc& d = tensor(t);
    if (nchw)
      out.push_back({N, d.C, d.H, d.W});
    else
      out.push_back({N, d.H * d.W * d.C});
  }
  return out;
}

// Greedy best-fit by size over the op order's lifetimes (the CPU Plan's strategy), 256-byte aligned buffers.
std::vector<index_t> GpuPlan::plan_memory(index_t N, index_t* floats) const {
  const size_t nb = buffer_floats_.size();
  std::vector<int> first(nb, -1), last(nb, -1);
  auto touch = [&](int t, int i) {
    const int b = tensor(root_of(t)).buffer;
    if (b < 0) return;
    if (first[static_cast<size_t>(b)] < 0) first[static_cast<size_t>(b)] = i;
    last[static_cast<size_t>(b)] = std::max(last[static_cast<size_t>(b)], i);
  };
  for (size_t i = 0; i < ops_.size(); ++i) {
    for (int t : ops_[i]->reads) touch(t, static_cast<int>(i));
    for (int t : ops_[i]->writes) touch(t, static_cast<int>(i));
  }
  for (const auto& o : outputs_) touch(o.first, static_cast<int>(ops_.size()));
  std::vector<size_t> order(nb);
  std::iota(order.begin(), order.end(), size_t{0});
  auto size_of = [&](size_t b) { return (buffer_floats_[b] * N + 63) / 64 * 64; };
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return size_of(a) > size_of(b); });
  std::vector<index_t> offsets(nb, 0);
  struct Placed {
    index_t lo, hi;
    int first, last;
  };
  std::vector<Placed> placed;
  index_t total = 0;
  for (size_t b : order) {
    if (first[b] < 0 || buffer_floats_[b] == 0) continue;
    const index_t size = size_of(b);
    std::vector<std::pair<index_t, index_t>> busy;
    for (const Placed& p : placed)
      if (!(p.last < first[b] || last[b] < p.first)) busy.emplace_back(p.lo, p.hi);
    std::sort(busy.begin(), busy.end());
    index_t offset = 0;
    for (const auto& r : busy) {
      if (r.first - offset >= size) break;
      offset = std::max(offset, r.second);
    }
    offsets[b] = offset;
    placed.push_back({offset, offset + size, first[b], last[b]});
    total = std::max(total, offset + size);
  }
  *floats = total;
  return offsets;
}

index_t GpuPlan::arena_bytes(index_t N) const {
  index_t floats = 0;
  plan_memory(N, &floats);
  index_t ws = 0;
  for (const auto& op : ops_) ws = std::max(ws, op->workspace_floats(N));
  return (floats + ws) * 4;
}

GpuPlan::Layout& GpuPlan::layout(index_t N) {
  for (auto& l : layouts_)
    if (l->N == N) return *l;
  auto l = std::make_unique<Layout>();
  l->N = N;
  index_t floats = 0;
  l->offsets = plan_memory(N, &floats);
  l->arena = DeviceBuffer(static_cast<std::size_t>(std::max<index_t>(floats, 1)) * 4, device_);
  for (const auto& op : ops_) l->workspace_floats = std::max(l->workspace_floats, op->workspace_floats(N));
  if (l->workspace_floats > 0)
    l->workspace = DeviceBuffer(static_cast<std::size_t>(l->workspace_floats) * 4, device_);
  layouts_.push_back(std::move(l));
  return *layouts_.back();
}

// Inputs, the body (a CUDA graph from the second run at this batch size on), outputs; then waits for the stream.
void GpuPlan::execute(Layout& L, const float* const* inputs, float* const* outputs, std::vector<double>* times) {
  const Exec ex{this, L.arena.floats(), &L.offsets, L.N, L.workspace.floats(), inputs, outputs, stream_};
  const size_t n_in = inputs_.size(), n_out = outputs_.size(), n_ops = ops_.size();
  const size_t body0 = n_in, body1 = n_ops - n_out;
  if (times != nullptr) {  // timed op by op with events
    std::vector<cudaEvent_t> events(n_ops + 1, nullptr);
    for (auto& e : events) CC_CHECK(cudaEventCreate(&e));
    try {
      CC_CHECK(cudaEventRecord(events[0], stream_));
      for (size_t i = 0; i < n_ops; ++i) {
        ops_[i]->run(ex);
        CC_CHECK(cudaEventRecord(events[i + 1], stream_));
      }
      CC_CHECK(cudaStreamSynchronize(stream_));
      for (size_t i = 0; i < n_ops; ++i) {
        float ms = 0.0f;
        CC_CHECK(cudaEventElapsedTime(&ms, events[i], events[i + 1]));
        (*times)[i] += ms * 1e-3;
      }
    } catch (...) {
      for (auto& e : events) cudaEventDestroy(e);
      throw;
    }
    for (auto& e : events) cudaEventDestroy(e);
    return;
  }
  for (size_t i = 0; i < body0; ++i) ops_[i]->run(ex);
#ifndef CONVCORE_CUDA_EMULATE
  if (graphs_ && L.runs >= 1 && L.graph == nullptr && !L.graph_failed && body1 > body0) {
    // Capture the body once: its pointers (arena, workspace, weights) are fixed for this batch size; the inputs and
    // outputs, which differ per call, stay outside the graph.
    cudaGraph_t graph = nullptr;
    CC_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    try {
      for (size_t i = body0; i < body1; ++i) ops_[i]->run(ex);
    } catch (...) {
      cudaStreamEndCapture(stream_, &graph);
      if (graph != nullptr) cudaGraphDestroy(graph);
      throw;
    }
    CC_CHECK(cudaStreamEndCapture(stream_, &graph));
    const cudaError_t err = cudaGraphInstantiate(&L.graph, graph, 0);
    cudaGraphDestroy(graph);
    if (err != cudaSuccess) {  // run without a graph from now on
      cudaGetLastError();
      L.graph = nullptr;
      L.graph_failed = true;
    }
  }
  if (L.graph != nullptr)
    CC_CHECK(cudaGraphLaunch(L.graph, stream_));
  else
    for (size_t i = body0; i < body1; ++i) ops_[i]->run(ex);
#else
  for (size_t i = body0; i < body1; ++i) ops_[i]->run(ex);
#endif
  for (size_t i = body1; i < n_ops; ++i) ops_[i]->run(ex);
  CC_CHECK(cudaStreamSynchronize(stream_));
  ++L.runs;
}

void GpuPlan::run_device(const float* const* inputs, index_t N, float* const* outputs) {
  require(N >= 1, "plan.run: the batch must be >= 1");
  std::lock_guard<std::mutex> lock(mutex_);
  DeviceGuard guard(device_);
  execute(layout(N), inputs, outputs, nullptr);
}

void GpuPlan::run_host(const float* const* inputs, index_t N, float* const* outputs) {
  require(N >= 1, "plan.run: the batch must be >= 1");
  std::lock_guard<std::mutex> lock(mutex_);
  DeviceGuard guard(device_);
  Layout& L = layout(N);
  if (L.staged_in.size() != inputs_.size()) {
    L.staged_in.clear();
    for (int t : inputs_) {
      const TensorDesc& d = tensor(t);
      L.staged_in.emplace_back(static_cast<std::size_t>(N * d.C * d.H * d.W) * 4, device_);
    }
    L.staged_out.clear();
    for (const auto& shape : output_shapes(N)) {
      index_t n = 1;
      for (index_t v : shape) n *= v;
      L.staged_out.emplace_back(static_cast<std::size_t>(n) * 4, device_);
    }
  }
  std::vector<const float*> ins;
  std::vector<float*> outs;
  for (size_t i = 0; i < inputs_.size(); ++i) {
    CC_CHECK(cudaMemcpyAsync(L.staged_in[i].data(), inputs[i], L.staged_in[i].bytes(), cudaMemcpyHostToDevice,
                             stream_));
    ins.push_back(L.staged_in[i].floats());
  }
  for (auto& b : L.staged_out) outs.push_back(b.floats());
  execute(L, ins.data(), outs.data(), nullptr);
  for (size_t i = 0; i < outputs_.size(); ++i)
    CC_CHECK(cudaMemcpyAsync(outputs[i], L.staged_out[i].data(), L.staged_out[i].bytes(), cudaMemcpyDeviceToHost,
                             stream_));
  CC_CHECK(cudaStreamSynchronize(stream_));
}

std::vector<ProfileEntry> GpuPlan::profile(const float* const* inputs, index_t N, float* const* outputs, int repeats) {
  run_host(inputs, N, outputs);  // plans memory, stages the inputs, warms up
  std::lock_guard<std::mutex> lock(mutex_);
  DeviceGuard guard(device_);
  Layout& L = layout(N);
  std::vector<const float*> ins;
  std::vector<float*> outs;
  for (auto& b : L.staged_in) ins.push_back(b.floats());
  for (auto& b : L.staged_out) outs.push_back(b.floats());
  std::vector<double> times(ops_.size(), 0.0);
  for (int r = 0; r < std::max(1, repeats); ++r) execute(L, ins.data(), outs.data(), &times);
  std::vector<ProfileEntry> out;
  for (size_t i = 0; i < ops_.size(); ++i)
    out.push_back({ops_[i]->name, ops_[i]->kernel(N), ops_[i]->detail,
                   ops_[i]->flops_per_image * static_cast<double>(N), times[i] / std::max(1, repeats)});
  return out;
}

// ------------------------------------------------------------------------------------------------ builders
namespace {

// OIHW (K, Cg, R, S) -> [group][(r * S + s) * Cg + c][Kg]: the B matrix of each group's implicit GEMM.
std::vector<float> pack_conv(const float* w, index_t K, index_t Cg, index_t R, index_t S, index_t groups) {
  const index_t Kg = K / groups, taps = R * S, kred = taps * Cg;
  std::vector<float> out(static_cast<size_t>(K * kred));
  for (index_t g = 0; g < groups; ++g)
    for (index_t col = 0; col < Kg; ++col) {
      const float* src = w + (g * Kg + col) * Cg * taps;
      for (index_t c = 0; c < Cg; ++c)
        for (index_t t = 0; t < taps; ++t)
          out[static_cast<size_t>((g * kred + t * Cg + c) * Kg + col)] = src[c * taps + t];
    }
  return out;
}

std::vector<float> copy_of(const float* p, index_t n) {
  return p ? std::vector<float>(p, p + n) : std::vector<float>();
}

bool winograd_eligible(const ConvSpec& s) {
  return s.R == 3 && s.S == 3 && s.sh == 1 && s.sw == 1 && s.dh == 1 && s.dw == 1 && s.groups == 1;
}

}  // namespace

int plan_conv(GpuPlan& p, const std::string& name, int x, const ConvSpec& s, const float* w, const float* bias,
              const Epi& e, int residual, ConvAlgo algo) {
  check_epilogue(e);
  const TensorDesc in = p.tensor(x);
  require(s.groups >= 1 && in.C % s.groups == 0 && s.K % s.groups == 0 && s.C * s.groups == in.C,
          "plan.conv: weight channels do not match the input and groups");
  require(s.R >= 1 && s.S >= 1 && s.sh >= 1 && s.sw >= 1 && s.dh >= 1 && s.dw >= 1, "plan.conv: bad kernel geometry");
  require(s.pt >= 0 && s.pb >= 0 && s.pl >= 0 && s.pr >= 0, "plan.conv: negative padding");
  require(in.H + s.pt + s.pb >= s.dh * (s.R - 1) + 1 && in.W + s.pl + s.pr >= s.dw * (s.S - 1) + 1,
          "plan.conv: the kernel is larger than the padded input");
  const index_t OH = (in.H + s.pt + s.pb - s.dh * (s.R - 1) - 1) / s.sh + 1;
  const index_t OW = (in.W + s.pl + s.pr - s.dw * (s.S - 1) - 1) / s.sw + 1;
  const int y = p.add_tensor(OH, OW, s.K);
  if (residual >= 0) {
    const TensorDesc& r = p.tensor(residual);
    require(r.H == OH && r.W == OW && r.C == s.K && p.tensor(p.root_of(residual)).constant < 0,
            "plan.conv: the residual must have y's shape");
  }
  const bool depthwise = s.groups == in.C && s.groups == s.K && s.groups > 1;
  require(algo != ConvAlgo::depthwise || depthwise, "plan.conv: the depthwise kernel needs groups == C == K");
  require(algo != ConvAlgo::winograd || winograd_eligible(s),
          "plan.conv: winograd needs a 3x3, stride 1, undilated, ungrouped convolution");
  const index_t Cg = in.C / s.groups, Kg = s.K / s.groups;
  const double flops = 2.0 * OH * OW * s.K * Cg * s.R * s.S;
  const std::string detail = dims(in) + " -> " + dims(p.tensor(y)) + " k" + std::to_string(s.R) + "x" +
                             std::to_string(s.S) + " s" + std::to_string(s.sh) +
                             (s.groups > 1 ? " g" + std::to_string(s.groups) : "") + (residual >= 0 ? " +res" : "") +
                             act_name(e.act);
  if (depthwise && (algo == ConvAlgo::automatic || algo == ConvAlgo::depthwise)) {
    auto op = std::make_unique<DwConvOp>();
    const index_t taps = s.R * s.S;
    std::vector<float> wd(static_cast<size_t>(taps * in.C));
    for (index_t c = 0; c < in.C; ++c)
      for (index_t t = 0; t < taps; ++t) wd[static_cast<size_t>(t * in.C + c)] = w[c * taps + t];
    DwArgs& a = op->args;
    a = {};
    a.w = p.upload(wd);
    a.bias = p.upload(copy_of(bias, in.C));
    a.H = in.H, a.W = in.W, a.C = in.C, a.OH = OH, a.OW = OW, a.R = s.R, a.S = s.S, a.sh = s.sh, a.sw = s.sw;
    a.dh = s.dh, a.dw = s.dw, a.pt = s.pt, a.pl = s.pl, a.e = e;
    op->x = x, op->y = y, op->res = residual;
    op->name = name, op->kind = "cuda_dwconv_f32", op->detail = detail, op->flops_per_image = flops;
    op->reads = {x};
    if (residual >= 0) op->reads.push_back(residual);
    op->writes = {y};
    add(p, std::move(op));
    return y;
  }
  // Winograd (a CPU algorithm) runs as the direct convolution here: the same result within fp32 rounding.
  auto op = std::make_unique<ConvOp>();
  ConvArgs& a = op->args;
  a = {};
  a.w = p.upload(pack_conv(w, s.K, Cg, s.R, s.S, s.groups));
  a.bias = p.upload(copy_of(bias, s.K));
  a.H = in.H, a.W = in.W, a.C = in.C, a.OH = OH, a.OW = OW, a.K = s.K, a.R = s.R, a.S = s.S, a.sh = s.sh;
  a.sw = s.sw, a.dh = s.dh, a.dw = s.dw, a.pt = s.pt, a.pl = s.pl, a.groups = s.groups, a.Cg = Cg, a.Kg = Kg;
  a.e = e;
  op->x = x, op->y = y, op->res = residual, op->precision = p.precision(), op->sms = p.multiprocessors();
  op->name = name, op->kind = std::string("cuda_conv_") + precision_name(p.precision()), op->detail = detail;
  op->flops_per_image = flops;
  op->reads = {x};
  if (residual >= 0) op->reads.push_back(residual);
  op->writes = {y};
  add(p, std::move(op));
  return y;
}

int plan_mbconv(GpuPlan& p, const std::string& name, int x, const float* we, const float* be, index_t E,
                const Epi& ee, const ConvSpec& dw, const float* wd, const float* bd, const Epi& ed, const float* wp,
                const float* bp, index_t K, const Epi& ep, int residual) {
  check_epilogue(ee), check_epilogue(ed), check_epilogue(ep);
  const TensorDesc in = p.tensor(x);
  if (we == nullptr) E = in.C;
  require(E >= 1 && K >= 1 && dw.K == E && dw.C == 1 && dw.groups == E, "plan.mbconv: inconsistent channel counts");
  // On the GPU the block runs as its three convolutions (the expanded tensors live in the arena between them).
  int t = x;
  if (we != nullptr) {
    const ConvSpec s{E, in.C, 1, 1};
    t = plan_conv(p, name + ".expand", t, s, we, be, ee, -1, ConvAlgo::automatic);
  }
  t = plan_conv(p, name + ".depthwise", t, dw, wd, bd, ed, -1, ConvAlgo::automatic);
  const ConvSpec s{K, E, 1, 1};
  return plan_conv(p, name + ".project", t, s, wp, bp, ep, residual, ConvAlgo::automatic);
}

int plan_pool(GpuPlan& p, const std::string& name, int x, bool is_max, index_t kh, index_t kw, index_t sh, index_t sw,
              index_t dh, index_t dw, index_t pt, index_t pb, index_t pl, index_t pr, index_t OH, index_t OW,
              bool count_include_pad) {
  const TensorDesc in = p.tensor(x);
  require(kh >= 1 && kw >= 1 && sh >= 1 && sw >= 1 && dh >= 1 && dw >= 1 && OH >= 1 && OW >= 1,
          "plan.pool: bad window geometry");
  require(pt >= 0 && pb >= 0 && pl >= 0 && pr >= 0, "plan.pool: negative padding");
  require((OH - 1) * sh < in.H + pt && (OW - 1) * sw < in.W + pl, "plan.pool: output larger than the input allows");
  const int y = p.add_tensor(OH, OW, in.C);
  auto op = std::make_unique<PoolOp>();
  op->args = PoolArgs{nullptr, 0, nullptr, 0, 0, in.H, in.W, in.C, OH, OW, kh, kw, sh, sw, dh, dw, pt, pb, pl, pr,
                      is_max, count_include_pad};
  op->x = x, op->y = y;
  op->name = name, op->kind = is_max ? "cuda_maxpool" : "cuda_avgpool";
  op->detail = dims(in) + " -> " + dims(p.tensor(y)) + " k" + std::to_string(kh) + "x" + std::to_string(kw) + " s" +
               std::to_string(sh);
  op->reads = {x}, op->writes = {y};
  add(p, std::move(op));
  return y;
}

int plan_global_pool(GpuPlan& p, const std::string& name, int x, bool is_max) {
  const TensorDesc in = p.tensor(x);
  const int y = p.add_tensor(1, 1, in.C);
  auto op = std::make_unique<GlobalPoolOp>();
  op->HW = in.H * in.W, op->C = in.C, op->is_max = is_max, op->x = x, op->y = y;
  op->name = name, op->kind = is_max ? "cuda_global_maxpool" : "cuda_global_avgpool";
  op->detail = dims(in) + " -> " + dims(p.tensor(y));
  op->reads = {x}, op->writes = {y};
  add(p, std::move(op));
  return y;
}

int plan_adaptive_pool(GpuPlan& p, const std::string& name, int x, bool is_max, index_t OH, index_t OW) {
  const TensorDesc in = p.tensor(x);
  require(OH >= 1 && OW >= 1, "plan.adaptive_pool: output size must be positive");
  const int y = p.add_tensor(OH, OW, in.C);
  auto op = std::make_unique<AdaptivePoolOp>();
  op->H = in.H, op->W = in.W, op->C = in.C, op->OH = OH, op->OW = OW, op->is_max = is_max, op->x = x, op->y = y;
  op->name = name, op->kind = is_max ? "cuda_adaptive_maxpool" : "cuda_adaptive_avgpool";
  op->detail = dims(in) + " -> " + dims(p.tensor(y));
  op->reads = {x}, op->writes = {y};
  add(p, std::move(op));
  return y;
}

int plan_affine(GpuPlan& p, const std::string& name, int x, const float* scale, const float* shift, const Epi& e) {
  check_epilogue(e);
  const TensorDesc in = p.tensor(x);
  const int y = p.add_tensor(in.H, in.W, in.C);
  auto op = std::make_unique<AffineOp>();
  op->pixels = in.H * in.W, op->C = in.C, op->e = e, op->x = x, op->y = y;
  op->scale = p.upload(copy_of(scale, in.C));
  op->shift = p.upload(copy_of(shift, in.C));
  op->name = name;
  op->kind = std::string(scale || shift ? "cuda_scale_shift" : "cuda_activation") + act_name(e.act);
  op->detail = dims(in);
  op->reads = {x}, op->writes = {y};
  add(p, std::move(op));
  return y;
}

int plan_binary(GpuPlan& p, const std::string& name, int a, int b, int bop, const Epi& e) {
  check_epilogue(e);
  require(bop >= 0 && bop <= 5, "op: unknown binary op");
  const TensorDesc ta = p.tensor(a), tb = p.tensor(b);
  auto bdim = [](index_t u, index_t v) {
    require(u == v || u == 1 || v == 1, "plan.binary: shapes do not broadcast");
    return std::max(u, v);
  };
  const index_t H = bdim(ta.H, tb.H), W = bdim(ta.W, tb.W), C = bdim(ta.C, tb.C);
  require(p.tensor(p.root_of(a)).constant < 0 || p.tensor(p.root_of(b)).constant < 0,
          "plan.binary: at least one operand must be computed");
  const int y = p.add_tensor(H, W, C);
  auto op = std::make_unique<BinaryOpNode>();
  op->args = {};
  op->args.H = H, op->args.W = W, op->args.C = C, op->args.op = bop, op->args.e = e;
  op->a = a, op->b = b, op->y = y;
  static const char* names[] = {"cuda_add", "cuda_mul", "cuda_sub", "cuda_div", "cuda_max", "cuda_min"};
  op->name = name, op->kind = std::string(names[bop]) + act_name(e.act);
  op->detail = dims(ta) + " , " + dims(tb);
  op->reads = {a, b}, op->writes = {y};
  add(p, std::move(op));
  return y;
}

void plan_copy_into(GpuPlan& p, const std::string& name, int x, int y, index_t c0) {
  const TensorDesc in = p.tensor(x), out = p.tensor(y);
  require(in.H == out.H && in.W == out.W && c0 >= 0 && c0 + in.C <= out.C, "plan.copy_into: the slice does not fit");
  require(p.tensor(p.root_of(y)).constant < 0, "plan.copy_into: cannot write into a constant");
  auto op = std::make_unique<CopyOp>();
  op->pixels = in.H * in.W, op->C = in.C, op->c0 = c0, op->x = x, op->y = y;
  op->name = name, op->kind = "cuda_copy_channels", op->detail = dims(in) + " -> " + dims(out);
  op->reads = {x}, op->writes = {y};
  add(p, std::move(op));
}

int plan_softmax(GpuPlan& p, const std::string& name, int x, bool log) {
  const TensorDesc in = p.tensor(x);
  const int y = p.add_tensor(in.H, in.W, in.C);
  auto op = std::make_unique<SoftmaxOp>();
  op->pixels = in.H * in.W, op->C = in.C, op->log = log, op->x = x, op->y = y;
  op->name = name, op->kind = log ? "cuda_log_softmax" : "cuda_softmax", op->detail = dims(in);
  op->reads = {x}, op->writes = {y};
  add(p, std::move(op));
  return y;
}

int plan_lrn(GpuPlan& p, const std::string& name, int x, index_t size, float alpha, float beta, float k) {
  const TensorDesc in = p.tensor(x);
  require(size >= 1, "plan.lrn: size must be >= 1");
  const int y = p.add_tensor(in.H, in.W, in.C);
  auto op = std::make_unique<LrnOp>();
  op->pixels = in.H * in.W, op->C = in.C, op->size = size, op->alpha = alpha, op->beta = beta, op->k = k;
  op->x = x, op->y = y;
  op->name = name, op->kind = "cuda_lrn", op->detail = dims(in);
  op->reads = {x}, op->writes = {y};
  add(p, std::move(op));
  return y;
}

int plan_flatten_nchw(GpuPlan& p, const std::string& name, int x) {
  const TensorDesc in = p.tensor(x);
  const int y = p.add_tensor(1, 1, in.H * in.W * in.C);
  auto op = std::make_unique<FlattenOp>();
  op->H = in.H, op->W = in.W, op->C = in.C, op->x = x, op->y = y;
  op->name = name, op->kind = "cuda_flatten_nchw", op->detail = dims(in);
  op->reads = {x}, op->writes = {y};
  add(p, std::move(op));
  return y;
}

}  // namespace convcore::cuda
