#include "plan/plan.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <chrono>

#include "core/pool.h"

namespace convcore {

TensorView Exec::at(int t) const { return plan->view(t, arena, *layout, plan->constant_ptrs()); }

Plan::Plan(Isa isa, bool bf16) : isa_(isa), kernels_(&kernels_for(isa)) {
  reserve_zeros(64);
  if (!bf16) return;
  bf16_ = bf16_kernels_for(isa);
  if (bf16_ == nullptr)
    throw std::invalid_argument(std::string("precision: 'bf16' needs a CPU with AMX-BF16 or AVX512-BF16 and the "
                                            "avx512 kernels (this one runs '") + isa_name(isa) + "'; cpu: " +
                                cpu_features().brand + ")");
}

void Plan::reserve_zeros(index_t n) {
  if (static_cast<index_t>(zeros_.size()) < n) zeros_.assign(static_cast<size_t>(n), 0.0f);
}

int Plan::add_constant(index_t H, index_t W, index_t C, const float* nhwc) {
  const int t = register_constant(H, W, C);
  constants_.emplace_back(nhwc, nhwc + H * W * C);
  constant_ptrs_.clear();
  for (AlignedVector& c : constants_) constant_ptrs_.push_back(c.data());
  return t;
}

Plan::Arena& Plan::arena(index_t N) {
  if (Arena* a = arenas_.find(N)) return *a;
  store_bf16();
  auto a = std::make_unique<Arena>();
  a->layout = plan_memory(N, 16);  // 64-byte multiples
  a->memory.assign(static_cast<size_t>(a->layout.floats), 0.0f);  // touched once: no page faults later
  return arenas_.add(std::move(a));
}

index_t Plan::arena_bytes(index_t N) const { return plan_memory(N, 16).floats * 4; }

// Each op is cut into `parts` chunks that any thread claims from a counter; a thread moves on to the next op once
// every chunk of this one is done (its inputs are then complete). No thread ever waits for another to arrive, only
// for chunks in progress, so a worker the OS has descheduled costs its share of work, not a time slice per op.
void Plan::execute(const Exec& ex, int threads, std::vector<double>* times) const {
  const auto& list = ops();
  const size_t nops = list.size();
  struct alignas(64) Counter {
    std::atomic<int> next{0}, done{0};
  };
  std::vector<const CpuOp*> op(nops);
  std::vector<int> parts(nops);
  int team = 1;
  for (size_t i = 0; i < nops; ++i) {
    op[i] = static_cast<const CpuOp*>(list[i].get());
    parts[i] = std::max(1, std::min(threads, op[i]->parallelism(ex.N, threads)));
    team = std::max(team, parts[i]);
  }
  std::unique_ptr<Counter[]> counters(new Counter[nops]);
  std::vector<int> first_claim(nops + 1, 0);  // pinned ops: part claims at [first_claim[i], first_claim[i + 1])
  for (size_t i = 0; i < nops; ++i) first_claim[i + 1] = first_claim[i] + (op[i]->pinned() ? parts[i] : 0);
  std::unique_ptr<std::atomic<bool>[]> claimed(new std::atomic<bool>[static_cast<size_t>(first_claim[nops]) + 1]());
  using clock = std::chrono::steady_clock;
  auto body = [&](int tid, int) {
    // Flush denormals to zero inside this call only: subnormal weights or activations can slow FMAs 5-100x.
    const unsigned int saved_csr = _mm_getcsr();
    _mm_setcsr(saved_csr | 0x8040);  // FTZ | DAZ
    auto start = clock::now();
    for (size_t i = 0; i < nops; ++i) {
      Counter& c = counters[i];
      if (op[i]->pinned()) {  // its own part first, then any part no thread has taken
        std::atomic<bool>* claim = claimed.get() + first_claim[i];
        for (int k = 0; k <= parts[i]; ++k) {
          const int part = k == 0 ? tid : k - 1;
          if (part >= parts[i] || (k > 0 && part == tid) || claim[part].exchange(true, std::memory_order_relaxed))
            continue;
          op[i]->run(ex, part, parts[i]);
          c.done.fetch_add(1, std::memory_order_release);
        }
      }
      for (int part; !op[i]->pinned() && (part = c.next.fetch_add(1, std::memory_order_relaxed)) < parts[i];) {
        op[i]->run(ex, part, parts[i]);
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
  Arena& a = arena(N);
  const Exec ex{this, a.memory.data(), &a.layout, N, inputs, outputs};
  execute(ex, std::max(1, threads), nullptr);
}

std::vector<ProfileEntry> Plan::profile(const float* const* inputs, index_t N, float* const* outputs, int threads,
                                        int repeats) {
  run(inputs, N, outputs, threads);  // plans memory and warms up
  std::lock_guard<std::mutex> lock(mutex_);
  Arena& a = arena(N);
  const Exec ex{this, a.memory.data(), &a.layout, N, inputs, outputs};
  // Each op's best time over the repeats: on a shared machine the mean mixes in other work's interruptions.
  std::vector<double> best(ops().size(), 1e30), times;
  for (int r = 0; r < std::max(1, repeats); ++r) {
    times.assign(ops().size(), 0.0);
    execute(ex, std::max(1, threads), &times);
    for (size_t i = 0; i < times.size(); ++i) best[i] = std::min(best[i], times[i]);
  }
  return profile_rows(N, best);
}

}  // namespace convcore
