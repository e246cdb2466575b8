#include "plan/plan.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <stdexcept>

#include "core/pool.h"

namespace convcore {

Resolved Exec::at(int t) const {
  const TensorDesc* d = &plan->tensor(t);
  if (d->reshaped) {
    const Resolved r = at(d->parent);
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

Plan::Plan(Isa isa) : isa_(isa), kernels_(&plan_kernels(isa)) { reserve_zeros(64); }

void Plan::reserve_zeros(index_t n) {
  if (static_cast<index_t>(zeros_.size()) < n) zeros_.assign(static_cast<size_t>(n), 0.0f);
}

int Plan::add_tensor(index_t H, index_t W, index_t C) {
  require(H >= 1 && W >= 1 && C >= 1, "plan: tensor dims must be positive");
  TensorDesc d;
  d.H = H, d.W = W, d.C = C;
  d.buffer = static_cast<int>(buffer_floats_.size());
  buffer_floats_.push_back(H * W * C);
  tensors_.push_back(d);
  return static_cast<int>(tensors_.size()) - 1;
}

int Plan::add_constant(index_t H, index_t W, index_t C, const float* nhwc) {
  require(H >= 1 && W >= 1 && C >= 1, "plan: constant dims must be positive");
  TensorDesc d;
  d.H = H, d.W = W, d.C = C;
  d.constant = static_cast<int>(constants_.size());
  constants_.emplace_back(nhwc, nhwc + H * W * C);
  weight_bytes_ += H * W * C * 4;
  tensors_.push_back(d);
  return static_cast<int>(tensors_.size()) - 1;
}

int Plan::reshape(int t, index_t H, index_t W, index_t C) {
  const TensorDesc src = tensor(t);
  require(src.parent < 0 && !src.reshaped, "plan.reshape: expected a root tensor");
  require(H >= 1 && W >= 1 && C >= 1 && H * W * C == src.H * src.W * src.C, "plan.reshape: sizes differ");
  TensorDesc d;
  d.H = H, d.W = W, d.C = C;
  d.parent = t;
  d.reshaped = true;
  tensors_.push_back(d);
  return static_cast<int>(tensors_.size()) - 1;
}

int Plan::root_of(int t) const {
  while (tensor(t).parent >= 0) t = tensor(t).parent;
  return t;
}

bool Plan::aliasable(int t) const {
  const TensorDesc& d = tensor(t);
  if (d.parent >= 0 || d.constant >= 0 || d.buffer < 0) return false;
  for (const TensorDesc& other : tensors_)
    if (other.reshaped && root_of(other.parent) == t) return false;  // a reshaped view needs contiguous storage
  return true;
}

void Plan::alias(int child, int parent, index_t c0) {
  TensorDesc& c = tensors_.at(static_cast<size_t>(child));
  const TensorDesc& p = tensor(parent);
  require(aliasable(child), "plan.alias: the child must be a root arena tensor with no reshaped view");
  require(root_of(parent) != child, "plan.alias: a tensor cannot live inside itself");
  require(p.constant < 0 && !p.reshaped, "plan.alias: cannot alias into a constant or a reshaped view");
  require(c.H == p.H && c.W == p.W && c0 >= 0 && c0 + c.C <= p.C, "plan.alias: the slice does not fit the parent");
  buffer_floats_[static_cast<size_t>(c.buffer)] = 0;  // the buffer is no longer used
  c.buffer = -1;
  c.parent = parent;
  c.c0 = c0;
}

void Plan::add_op(std::unique_ptr<PlanOp> op) {
  for (int t : op->reads) require(t >= 0 && t < num_tensors(), "plan: op reads an unknown tensor");
  for (int t : op->writes) require(t >= 0 && t < num_tensors() && tensor(root_of(t)).constant < 0,
                                   "plan: op writes an unknown or constant tensor");
  ops_.push_back(std::move(op));
  layouts_.clear();
}

index_t Plan::weight_bytes() const { return weight_bytes_; }

// Buffers are placed greedily, largest first, at the lowest offset that no buffer alive at the same time overlaps
// (the TFLite / ONNX Runtime arena strategy). A buffer lives from the first op touching any tensor in it to the
// last; graph outputs live to the end.
Plan::Layout Plan::plan_memory(index_t N) const {
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
  auto size_of = [&](size_t b) { return (buffer_floats_[b] * N + 15) / 16 * 16; };  // 64-byte multiples
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return size_of(a) > size_of(b); });
  Layout layout;
  layout.N = N;
  layout.offsets.assign(nb, 0);
  struct Placed {
    index_t lo, hi;
    int first, last;
  };
  std::vector<Placed> placed;
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
    layout.offsets[b] = offset;
    placed.push_back({offset, offset + size, first[b], last[b]});
    layout.floats = std::max(layout.floats, offset + size);
  }
  return layout;
}

index_t Plan::arena_bytes(index_t N) const { return plan_memory(N).floats * 4; }

// Each op is cut into `parts` chunks that any thread claims from a counter; a thread moves on to the next op once
// every chunk of this one is done (its inputs are then complete). No thread ever waits for another to arrive, only
// for chunks in progress, so a worker the OS has descheduled costs its share of work, not a time slice per op.
void Plan::execute(const Exec& ex, int threads, std::vector<double>* times) const {
  const size_t nops = ops_.size();
  struct alignas(64) Counter {
    std::atomic<int> next{0}, done{0};
  };
  std::vector<int> parts(nops);
  int team = 1;
  for (size_t i = 0; i < nops; ++i) {
    parts[i] = std::max(1, std::min(threads, ops_[i]->parallelism(ex.N, threads)));
    team = std::max(team, parts[i]);
  }
  std::unique_ptr<Counter[]> counters(new Counter[nops]);
  using clock = std::chrono::steady_clock;
  auto body = [&](int tid, int) {
    // Flush denormals to zero inside this call only: subnormal weights or activations can slow FMAs 5-100x.
    const unsigned int saved_csr = _mm_getcsr();
    _mm_setcsr(saved_csr | 0x8040);  // FTZ | DAZ
    auto start = clock::now();
    for (size_t i = 0; i < nops; ++i) {
      Counter& c = counters[i];
      for (int part; (part = c.next.fetch_add(1, std::memory_order_relaxed)) < parts[i];) {
        ops_[i]->run(ex, part, parts[i]);
        c.done.fetch_add(1, std::memory_order_release);
      }
      while (c.done.load(std::memory_order_acquire) < parts[i]) _mm_pause();
      if (times && tid == 0) {
        const auto now = clock::now();
        (*times)[i] += std::chrono::duration<double>(now - start).count();
        start = now;
      }
    }
    _mm_setcsr(saved_csr);
  };
  ThreadPool::instance().run(team, body);
}

void Plan::run(const float* const* inputs, index_t N, float* const* outputs, int threads) {
  require(N >= 1, "plan.run: the batch must be >= 1");
  std::lock_guard<std::mutex> lock(mutex_);
  Layout* layout = nullptr;
  for (Layout& l : layouts_)
    if (l.N == N) layout = &l;
  if (layout == nullptr) {
    layouts_.push_back(plan_memory(N));
    layout = &layouts_.back();
    layout->arena.assign(static_cast<size_t>(layout->floats), 0.0f);  // touched once: no page faults later
  }
  const Exec ex{this, layout->arena.data(), &layout->offsets, N, inputs, outputs};
  execute(ex, std::max(1, threads), nullptr);
}

std::vector<ProfileEntry> Plan::profile(const float* const* inputs, index_t N, float* const* outputs, int threads,
                                        int repeats) {
  run(inputs, N, outputs, threads);  // plans memory and warms up
  std::lock_guard<std::mutex> lock(mutex_);
  Layout* layout = nullptr;
  for (Layout& l : layouts_)
    if (l.N == N) layout = &l;
  const Exec ex{this, layout->arena.data(), &layout->offsets, N, inputs, outputs};
  std::vector<double> times(ops_.size(), 0.0);
  for (int r = 0; r < std::max(1, repeats); ++r) execute(ex, std::max(1, threads), &times);
  std::vector<ProfileEntry> out;
  for (size_t i = 0; i < ops_.size(); ++i)
    out.push_back({ops_[i]->name, ops_[i]->kind, ops_[i]->detail, ops_[i]->flops_per_image * static_cast<double>(N),
                   times[i] / std::max(1, repeats)});
  return out;
}

}  // namespace convcore
