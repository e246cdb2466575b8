#include "kernels/machine.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

#include "core/aligned.h"
#include "core/cpu.h"

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
    const auto t0 = clock::now();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    sink += loop(iters);
    const double dt = std::chrono::duration<double>(clock::now() - t0).count();
    best = std::max(best, 2.0 * 24 * lanes * static_cast<double>(iters) * threads / dt / 1e9);
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
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      const size_t lo = n * t / nt, hi = n * (t + 1) / nt;
      std::memcpy(b.data() + lo, a.data() + lo, (hi - lo) * sizeof(float));
    }
    const double dt = std::chrono::duration<double>(clock::now() - t0).count();
    best = std::max(best, 2.0 * n * 4 / dt / 1e9);
  }
  return best;
}

}  // namespace convcore
