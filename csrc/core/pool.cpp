#include "core/pool.h"

#include <immintrin.h>
#include <pthread.h>

#include <chrono>
#include <system_error>

namespace convcore {

namespace {
// Pause-loop iterations a worker spins after a job before it sleeps: about 50-200 microseconds (a pause takes
// 10-150 cycles depending on the core), longer than the gap between two inferences of a busy caller.
constexpr int kSpins = 20000;
}  // namespace

namespace {
ThreadPool* the_pool = nullptr;
}

ThreadPool& ThreadPool::instance() {
  // Never destroyed (workers may outlive static destruction order). The at-fork handler is registered once, with
  // the first pool.
  static const bool registered = (pthread_atfork(nullptr, nullptr, &ThreadPool::after_fork_in_child), true);
  static ThreadPool* first = (the_pool = new ThreadPool());
  (void)registered, (void)first;
  return *the_pool;
}

// In a fork()ed child only the forking thread exists: the parent's workers, and any lock one of them held, are gone.
// The child gets a fresh pool; the old one is abandoned as it is (its thread objects must not be destroyed).
void ThreadPool::after_fork_in_child() { the_pool = new ThreadPool(); }

ThreadPool::~ThreadPool() {
  stop_.store(true);
  {
    std::lock_guard<std::mutex> lock(sleep_mutex_);
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void ThreadPool::grow(int workers) {
  while (static_cast<int>(threads_.size()) < workers) {
    const int tid = static_cast<int>(threads_.size()) + 1;
    try {
      threads_.emplace_back([this, tid] { worker_loop(tid); });
    } catch (const std::system_error&) {
      return;  // the system refused another thread: run with the ones we have
    }
  }
}

void ThreadPool::run(int threads, const std::function<void(int, int)>& fn) {
  std::unique_lock<std::mutex> job_lock(job_mutex_, std::try_to_lock);
  if (threads <= 1 || !job_lock.owns_lock()) {
    fn(0, 1);
    return;
  }
  grow(threads - 1);
  {
    std::lock_guard<std::mutex> lock(sleep_mutex_);
    job_ = &fn;
    job_threads_ = std::min(threads, workers() + 1);
    open_.store(true);
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  std::exception_ptr error;
  try {
    fn(0, job_threads_);
  } catch (...) {
    error = std::current_exception();
  }
  // Close the job, then wait for the workers inside it (a worker checks open_ after announcing itself in inside_,
  // so one that has not announced itself yet will see the job closed and skip it).
  open_.store(false);
  while (inside_.load() != 0) _mm_pause();
  {
    std::lock_guard<std::mutex> lock(sleep_mutex_);
    if (!error) error = error_;
    error_ = nullptr;
  }
  if (error) std::rethrow_exception(error);
}

void ThreadPool::worker_loop(int tid) {
  unsigned seen = generation_.load();
  for (;;) {
    // Spin a little for the next job, then sleep until one is posted.
    for (int i = 0; i < kSpins && generation_.load(std::memory_order_acquire) == seen; ++i) _mm_pause();
    if (generation_.load(std::memory_order_acquire) == seen) {
      std::unique_lock<std::mutex> lock(sleep_mutex_);
      wake_.wait(lock, [&] { return generation_.load() != seen; });
    }
    if (stop_.load()) return;
    seen = generation_.load();
    inside_.fetch_add(1);
    if (open_.load() && tid < job_threads_) {
      try {
        (*job_)(tid, job_threads_);
      } catch (...) {
        std::lock_guard<std::mutex> lock(sleep_mutex_);
        if (!error_) error_ = std::current_exception();
      }
    }
    inside_.fetch_sub(1);
  }
}

}  // namespace convcore
