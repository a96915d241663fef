// A fixed pool of worker threads for data-parallel kernels. run(fn) calls fn(thread_index, n_threads) on every
// thread (the caller is thread 0) and returns when all are done: one fork-join per call, with workers spinning
// briefly before sleeping so back-to-back kernels don't pay a wake-up each.
// Thread safety: run() must not be called concurrently or re-entrantly from the same pool.
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
  // Splits [0, n) into contiguous chunks, one per thread: fn(begin, end).
  void parallel_for(int64_t n, const std::function<void(int64_t begin, int64_t end)>& fn);

 private:
  void worker(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  const std::function<void(int, int)>* job_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
};

}  // namespace dm
