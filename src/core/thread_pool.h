// A fixed pool of worker threads for data-parallel kernels. run(fn) calls fn(thread_index, n_threads) on every
// thread (the caller is thread 0) and returns when all are done: one fork-join per call, with workers spinning
// briefly before sleeping so back-to-back kernels don't pay a wake-up each.
// run_elastic(fn) is the variant for work shared through a counter: workers that are not running when the job is
// posted (descheduled on a busy machine) skip it instead of being waited for.
// Thread safety: run()/run_elastic() must not be called concurrently or re-entrantly from the same pool.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace dm {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);  // n_threads <= 0: the number of hardware threads
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }
  void run(const std::function<void(int thread, int n_threads)>& fn);
  // Calls fn(thread) on the caller (thread 0) and on every worker that picks the job up before the caller's own
  // fn returns; returns when all of those are done. fn must take its work from a shared counter and be correct
  // on any subset of threads (the caller alone included): nobody waits for a thread that is not running.
  void run_elastic(const std::function<void(int thread)>& fn);
  // Splits [0, n) into contiguous chunks, one per thread: fn(begin, end).
  void parallel_for(int64_t n, const std::function<void(int64_t begin, int64_t end)>& fn);

 private:
  void worker(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  const std::function<void(int, int)>* job_ = nullptr;
  const std::function<void(int)>* elastic_job_ = nullptr;
  // Bit 0: the posted job is elastic; bits 1-63: job counter.
  std::atomic<uint64_t> generation_{0};
  // Elastic jobs: bits 32-63 the job counter's low bits, bit 31 closed, bits 0-30 workers inside the job.
  std::atomic<uint64_t> elastic_state_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
};

}  // namespace dm
