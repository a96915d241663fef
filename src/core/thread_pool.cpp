// Fork-join thread pool: a generation counter wakes workers; a countdown tells the caller they are done.
// Elastic jobs: a worker joins by incrementing a count tagged with the job's number, only while the caller has
// not closed the job; the caller waits for the joined workers only.
#include "core/thread_pool.h"

#include <algorithm>

#include "core/error.h"

namespace dm {

namespace {
inline void cpu_relax() {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#endif
}
constexpr int kSpinIterations = 20000;
constexpr uint64_t kClosed = uint64_t(1) << 31;
constexpr uint64_t kActive = kClosed - 1;
}  // namespace

ThreadPool::ThreadPool(int n_threads) {
  if (n_threads <= 0) n_threads = int(std::max(1u, std::thread::hardware_concurrency()));
  n_threads_ = n_threads;
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    generation_.fetch_add(2);
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::worker(int index) {
  uint64_t seen = 0;
  for (;;) {
    uint64_t gen = generation_.load(std::memory_order_acquire);
    for (int spin = 0; gen == seen && spin < kSpinIterations; ++spin) {
      cpu_relax();
      gen = generation_.load(std::memory_order_acquire);
    }
    if (gen == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return generation_.load() != seen; });
      gen = generation_.load();
    }
    seen = gen;
    if (stop_) return;
    if (gen & 1) {  // elastic: join only if the caller still holds this job open
      const uint64_t tag = (gen >> 1) << 32;
      uint64_t s = elastic_state_.load(std::memory_order_acquire);
      bool joined = false;
      while ((s & ~kActive & ~kClosed) == tag && !(s & kClosed)) {
        if (elastic_state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel)) {
          joined = true;
          break;
        }
      }
      if (joined) {
        (*elastic_job_)(index);
        elastic_state_.fetch_sub(1, std::memory_order_acq_rel);
      }
      continue;
    }
    (*job_)(index, n_threads_);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::run(const std::function<void(int, int)>& fn) {
  if (n_threads_ == 1) {
    fn(0, 1);
    return;
  }
  job_ = &fn;
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(mu_);
    const uint64_t next = (generation_.load(std::memory_order_relaxed) | 1) + 1;  // next counter, bit 0 clear
    elastic_state_.store(((next >> 1) << 32) | kClosed, std::memory_order_relaxed);  // late elastic joins fail
    generation_.store(next, std::memory_order_release);
  }
  cv_.notify_all();
  fn(0, n_threads_);
  while (pending_.load(std::memory_order_acquire) != 0) cpu_relax();
  job_ = nullptr;
}

void ThreadPool::run_elastic(const std::function<void(int)>& fn) {
  if (n_threads_ == 1) {
    fn(0);
    return;
  }
  elastic_job_ = &fn;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const uint64_t next = (generation_.load(std::memory_order_relaxed) | 1) + 2;  // next counter, bit 0 set
    elastic_state_.store((next >> 1) << 32, std::memory_order_release);
    generation_.store(next, std::memory_order_release);
  }
  cv_.notify_all();
  fn(0);
  elastic_state_.fetch_or(kClosed, std::memory_order_acq_rel);
  while (elastic_state_.load(std::memory_order_acquire) & kActive) cpu_relax();
  elastic_job_ = nullptr;
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  run([&](int t, int nt) {
    int64_t chunk = (n + nt - 1) / nt;
    int64_t b = std::min<int64_t>(n, t * chunk), e = std::min<int64_t>(n, b + chunk);
    if (b < e) fn(b, e);
  });
}

}  // namespace dm
