// The Plan's persistent thread pool: workers that spin briefly after a job, then sleep, so back-to-back inferences
// pay no thread wake-up while an idle process burns no CPU.
//
// A job is fn(tid, threads) run by the caller (tid 0) and the workers that reach it in time. Jobs split their work
// into chunks that any thread may claim (see Plan::execute), so the caller never waits for a worker that has not
// started: on a machine whose CPUs are busy with other work, a descheduled worker just takes no share, instead of
// stalling every barrier for a scheduler time slice.
//
// Every parallel kernel runs here (the Plan's ops and the eager kernels alike): one pool, no OpenMP runtime. A child
// made by fork() gets a new, empty pool (the parent's workers do not exist in it), so it computes the same results.
#pragma once
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace convcore {

class ThreadPool {
 public:
  static ThreadPool& instance();
  ~ThreadPool();

  // Runs fn on up to `threads` threads, the caller included. Returns when the caller's fn has returned and every
  // worker that entered the job has left it; a worker arriving after that never runs it. When another job is
  // running (another Python thread), the caller runs fn alone. Never throws for lack of threads: if the system
  // refuses to create one, fewer run. An exception thrown by fn on any thread is rethrown here (the first one), after
  // every thread has left the job.
  void run(int threads, const std::function<void(int, int)>& fn);

  int workers() const { return static_cast<int>(threads_.size()); }

 private:
  ThreadPool() = default;
  static void after_fork_in_child();
  void grow(int workers);
  void worker_loop(int tid);

  std::mutex job_mutex_;  // one job at a time
  std::mutex sleep_mutex_;
  std::condition_variable wake_;
  std::vector<std::thread> threads_;
  const std::function<void(int, int)>* job_ = nullptr;
  std::exception_ptr error_;  // the first exception a worker's fn threw in this job (guarded by sleep_mutex_)
  int job_threads_ = 1;
  std::atomic<unsigned> generation_{0};
  std::atomic<bool> open_{false};
  std::atomic<int> inside_{0};
  std::atomic<bool> stop_{false};
};

// f(c) for every chunk c in [0, chunks) on up to `threads` threads of the pool, each claiming the next chunk as it
// finishes one: a thread the OS has descheduled costs its chunk, not a barrier's time slice.
template <class Index, class F>
void run_chunks(Index chunks, int threads, const F& f) {
  if (threads <= 1 || chunks <= 1) {
    for (Index c = 0; c < chunks; ++c) f(c);
    return;
  }
  std::atomic<Index> next{0};
  ThreadPool::instance().run(static_cast<int>(std::min<Index>(threads, chunks)), [&](int, int) {
    for (Index c; (c = next.fetch_add(1, std::memory_order_relaxed)) < chunks;) f(c);
  });
}

// f(i0, i1) over consecutive ranges covering [0, n), on up to `threads` threads of the pool: about four ranges per
// thread, claimed as threads finish (the eager kernels' parallel loops; below 2 threads or items, one call).
template <class Index, class F>
void parallel_for(Index n, int threads, const F& f) {
  if (!(n > 0)) return;
  if (threads <= 1 || n == 1) {
    f(Index(0), n);
    return;
  }
  const Index ranges = std::min<Index>(n, Index(threads) * 4);
  run_chunks(ranges, threads, [&](Index r) { f(n * r / ranges, n * (r + 1) / ranges); });
}

}  // namespace convcore
