// The thread count every parallel kernel uses (on convcore's own pool, core/pool.h), set globally by the user.
#pragma once

namespace convcore {

int num_threads();

// Threads worth starting for `work` units when each should get at least `grain` of them. Small ops stay on the calling
// thread: a hand-off to other threads costs microseconds when the CPUs are idle and whole scheduler time slices when
// they are oversubscribed.
// grain_scale() multiplies every grain; tests set it to 0 so that tiny shapes still run (and check) the parallel paths.
double grain_scale();
void set_grain_scale(double scale);

inline int threads_for(double work, double grain) {
  const double useful = work / (grain * grain_scale());
  const int n = num_threads();
  return useful >= n ? n : (useful < 1.0 ? 1 : static_cast<int>(useful));
}
// The most threads a count may name: above any CPU this runs on; docs/limits.md lists it.
constexpr int kMaxThreads = 1024;

// Sets the count for every later kernel: n in [1, kMaxThreads] (std::invalid_argument otherwise). A count above any
// set before is tried first: n - 1 threads are started and joined, and a failure to start them throws
// std::runtime_error, keeping the previous count (the pool would run with fewer, silently).
void set_num_threads(int n);
// CONVCORE_NUM_THREADS, else OMP_NUM_THREADS if set (at most kMaxThreads), else the CPUs in this process's affinity
// mask.
int default_num_threads();

}  // namespace convcore
