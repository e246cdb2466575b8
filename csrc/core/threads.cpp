#include "core/threads.h"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace convcore {

int default_num_threads() {
  for (const char* name : {"CONVCORE_NUM_THREADS", "OMP_NUM_THREADS"}) {
    if (const char* env = std::getenv(name)) {
      const long n = std::strtol(env, nullptr, 10);  // (atoi is undefined for values past int)
      if (n > 0) return static_cast<int>(std::min<long>(n, kMaxThreads));
    }
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return std::min(n, kMaxThreads);
  }
  return static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, static_cast<unsigned>(kMaxThreads)));
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

namespace {
// Starts n - 1 threads that wait until all have started, then joins them; "" when all started, else why not.
std::string try_start_threads(int n) {
  std::mutex mutex;
  std::condition_variable cv;
  bool release = false;
  std::vector<std::thread> started;
  std::string failure;
  try {
    started.reserve(n);
    for (int i = 1; i < n; ++i)
      started.emplace_back([&] {
        std::unique_lock<std::mutex> lock(mutex);
        cv.wait(lock, [&] { return release; });
      });
  } catch (const std::exception& e) {  // std::system_error (EAGAIN: no more threads) or std::bad_alloc
    failure = "only " + std::to_string(started.size() + 1) + " could be started: " + e.what();
  }
  {
    std::lock_guard<std::mutex> lock(mutex);
    release = true;
  }
  cv.notify_all();
  for (std::thread& t : started) t.join();
  return failure;
}

std::mutex& set_mutex() {
  static std::mutex m;
  return m;
}
int tried = 1;  // the largest count that started (guarded by set_mutex)
}  // namespace

void set_num_threads(int n) {
  if (n < 1 || n > kMaxThreads)
    throw std::invalid_argument("num_threads: expected an integer in [1, " + std::to_string(kMaxThreads) + "] (got " +
                                std::to_string(n) + ")");
  std::lock_guard<std::mutex> lock(set_mutex());
  if (n > tried) {
    const std::string failure = try_start_threads(n);
    if (!failure.empty())
      throw std::runtime_error("num_threads: cannot run " + std::to_string(n) + " threads (" + failure +
                               "); the thread count stays " + std::to_string(num_threads()));
    tried = n;
  }
  slot().store(n);
}


}  // namespace convcore
