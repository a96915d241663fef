// Fork-join thread pool: a generation counter wakes workers; a countdown tells the caller they are done.
// Elastic jobs: a worker joins by incrementing a count tagged with the job's number, only while the caller has
// not closed the job; the caller waits for the joined workers only.
#include "core/thread_pool.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#endif

#include "core/error.h"
#include "core/log.h"

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

namespace {
// The CPUs this process may run on, in increasing order (empty where that cannot be read).
std::vector<int> allowed_cpus() {
  std::vector<int> cpus;
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
#endif
  return cpus;
}

bool pin_wanted(ThreadPool::Pin pin) {
  if (pin != ThreadPool::Pin::Auto) return pin == ThreadPool::Pin::On;
  const char* s = std::getenv("DEEPMOE_PIN");
  return !(s && std::strcmp(s, "0") == 0);
}

// 0, or the error number of the refusal.
int set_affinity(std::thread& t, const std::vector<int>& cpus) {
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : cpus) CPU_SET(c, &set);
  return pthread_setaffinity_np(t.native_handle(), sizeof(set), &set);
#else
  (void)t, (void)cpus;
  return ENOSYS;
#endif
}
}  // namespace

ThreadPool::ThreadPool(int n_threads, Pin pin) {
  const std::vector<int> cpus = allowed_cpus();
  if (n_threads <= 0)
    n_threads = cpus.empty() ? int(std::max(1u, std::thread::hardware_concurrency())) : int(cpus.size());
  n_threads_ = n_threads;
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker(i); });
  if (n_threads_ == 1 || !pin_wanted(pin)) return;
  if (int(cpus.size()) != n_threads_) {
    log_debug("thread pool: ", n_threads_, " threads on ", cpus.size(), " allowed CPUs: not pinned");
    return;
  }
  cpus_.assign(cpus.begin(), cpus.begin() + n_threads_);
  for (int i = 1; i < n_threads_; ++i)
    if (const int err = set_affinity(workers_[size_t(i - 1)], {cpus_[size_t(i)]}); err != 0) {
      log_debug("thread pool: pinning refused (", std::strerror(err), "): workers float");
      for (int k = 1; k < i; ++k) set_affinity(workers_[size_t(k - 1)], cpus);
      cpus_.clear();
      return;
    }
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
