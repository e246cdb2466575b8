#include "core/threads.h"

#include <omp.h>
#include <sched.h>

#include <atomic>
#include <cstdlib>
#include <stdexcept>

namespace convcore {

int default_num_threads() {
  if (const char* env = std::getenv("OMP_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  return omp_get_num_procs();
}

namespace {
std::atomic<int>& slot() {
  static std::atomic<int> n{default_num_threads()};
  return n;
}
}  // namespace

int num_threads() { return slot().load(std::memory_order_relaxed); }

namespace {
std::atomic<double>& grain_slot() {
  static std::atomic<double> scale{1.0};
  return scale;
}
}  // namespace

double grain_scale() { return grain_slot().load(std::memory_order_relaxed); }

void set_grain_scale(double scale) {
  if (!(scale >= 0.0)) throw std::invalid_argument("scale: expected a value >= 0");
  grain_slot().store(scale);
}

void set_num_threads(int n) {
  if (n < 1) throw std::invalid_argument("num_threads: expected an integer >= 1 (got " + std::to_string(n) + ")");
  slot().store(n);
}

const char* openmp_runtime() {
#if defined(__clang__)
  return "libomp (LLVM)";
#else
  return "libgomp (GNU)";
#endif
}

}  // namespace convcore
