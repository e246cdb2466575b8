#include "kernels/machine.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <vector>

#include "core/aligned.h"
#include "core/cpu.h"
#include "core/pool.h"

namespace convcore {

double measure_fma_peak(int threads, double seconds) {
  const Isa isa = active_isa();
  if (isa == Isa::scalar) return 0.0;
  const int lanes = isa == Isa::avx512 ? 16 : 8;
  auto loop = isa == Isa::avx512 ? avx512::fma_loop : avx2::fma_loop;
  using clock = std::chrono::steady_clock;
  // Calibrate on one thread, then time all threads together (each runs the same count).
  long iters = 1 << 16;
  double sink = 0;
  for (;;) {
    const auto t0 = clock::now();
    sink += loop(iters);
    const double dt = std::chrono::duration<double>(clock::now() - t0).count();
    if (dt > seconds / 4 || iters > (1L << 40)) {
      iters = static_cast<long>(iters * (seconds / std::max(dt, 1e-9)));
      break;
    }
    iters *= 4;
  }
  iters = std::max(iters, 1L);
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    std::atomic<int> ran{0};  // the pool's threads that took part (a late one does not)
    std::vector<double> sinks(threads, 0.0);
    const auto t0 = clock::now();
    ThreadPool::instance().run(threads, [&](int tid, int) {
      sinks[tid] = loop(iters);
      ran.fetch_add(1);
    });
    const double dt = std::chrono::duration<double>(clock::now() - t0).count();
    for (double v : sinks) sink += v;
    best = std::max(best, 2.0 * 24 * lanes * static_cast<double>(iters) * ran.load() / dt / 1e9);
  }
  return sink == 12345.678 ? 0.0 : best;  // keeps sink alive
}

double measure_bandwidth(int threads, double megabytes, int repeats) {
  const size_t n = static_cast<size_t>(megabytes * 1e6 / 4 / 2);
  AlignedVector a(n, 1.0f), b(n, 0.0f);
  using clock = std::chrono::steady_clock;
  double best = 0;
  for (int rep = 0; rep < std::max(1, repeats); ++rep) {
    const auto t0 = clock::now();
    parallel_for(n, threads, [&](size_t lo, size_t hi) {
      std::memcpy(b.data() + lo, a.data() + lo, (hi - lo) * sizeof(float));
    });
    const double dt = std::chrono::duration<double>(clock::now() - t0).count();
    best = std::max(best, 2.0 * n * 4 / dt / 1e9);
  }
  return best;
}

}  // namespace convcore
