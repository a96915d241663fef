// A fixed pool of worker threads for data-parallel kernels. run(fn) calls fn(thread_index, n_threads) on every
// thread (the caller is thread 0) and returns when all are done: one fork-join per call, with workers spinning
// briefly before sleeping so back-to-back kernels don't pay a wake-up each.
// run_elastic(fn) is the variant for work shared through a counter: workers that are not running when the job is
// posted (descheduled on a busy machine) skip it instead of being waited for.
// Pinning: when the pool's threads take every CPU of the process's affinity mask (sched_getaffinity), worker i
// runs on the i-th of them, so a worker keeps its core and its caches; the calling thread is left as it is (it
// may be an engine or server thread whose mask other threads inherit) and lands on the CPU the workers leave
// free. A pool of fewer threads than the mask's CPUs floats: two processes given -t 8 on a 16-core machine would
// otherwise both pin to the same 8 (`taskset -c` chooses the CPUs, then a pool of as many threads is pinned).
// DEEPMOE_PIN=0 turns pinning off; where the call is refused, workers float.
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
  enum class Pin { Auto, On, Off };  // Auto: on unless DEEPMOE_PIN=0
  // n_threads <= 0: the number of CPUs this process may run on.
  explicit ThreadPool(int n_threads, Pin pin = Pin::Auto);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }
  // The CPU worker i is pinned to, -1 for one that floats (and for the caller, i = 0).
  int pinned_cpu(int i) const { return i > 0 && size_t(i) < cpus_.size() ? cpus_[size_t(i)] : -1; }
  bool pinned() const { return !cpus_.empty(); }
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
  std::vector<int> cpus_;  // pinned: cpus_[i] for worker i (cpus_[0], the caller's, is not applied); else empty
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
