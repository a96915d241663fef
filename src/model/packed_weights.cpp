// One anonymous mapping holds every packed weight (each at a 4 KiB boundary); weights are packed by all hardware
// threads, one weight at a time per thread.
#include "model/packed_weights.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <thread>

#include "core/error.h"

namespace dm {

namespace {

constexpr size_t kAlign = 4096;

// Releases the whole pages of [p, p + n) if they lie in one of the read-only file mappings.
void release_file_pages(const uint8_t* p, size_t n, const std::vector<std::shared_ptr<MappedFile>>& files) {
  for (const auto& f : files) {
    if (p < f->data() || p + n > f->data() + f->size()) continue;
    const uintptr_t page = 4096, b = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page,
                    e = (reinterpret_cast<uintptr_t>(p) + n) / page * page;
    if (b < e) ::madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
    return;
  }
}

}  // namespace

PackedWeights::~PackedWeights() {
  if (arena_) ::munmap(arena_, bytes_);
}

void PackedWeights::pack(const std::vector<Weight*>& ws, const std::vector<std::shared_ptr<MappedFile>>& files) {
  DM_CHECK(!arena_, "PackedWeights::pack called twice");
  // Distinct sources (by their rows' address) and where each goes in the arena.
  std::map<const void*, size_t> offset_of;
  std::vector<const Weight*> todo;
  size_t total = 0;
  for (Weight* w : ws) {
    if (!w->data || !packable(*w) || offset_of.count(w->data)) continue;
    offset_of[w->data] = total;
    todo.push_back(w);
    total += (packed_bytes(*w) + kAlign - 1) / kAlign * kAlign;
  }
  if (total == 0) return;
  void* p = ::mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) fail("packing weights: cannot allocate ", total, " bytes: ", std::strerror(errno));
  ::madvise(p, total, MADV_HUGEPAGE);  // a hint: without transparent huge pages this is 4 KiB pages
  arena_ = static_cast<uint8_t*>(p);
  bytes_ = total;

  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < todo.size();) {
      const Weight& w = *todo[i];
      pack_rows16(w, arena_ + offset_of[w.data]);
      release_file_pages(static_cast<const uint8_t*>(w.data), w.bytes(), files);
    }
  };
  const unsigned n_threads = std::max(1u, std::min(8u, std::thread::hardware_concurrency()));
  std::vector<std::thread> threads;
  for (unsigned t = 1; t < n_threads; ++t) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();
  for (Weight* w : ws)
    if (w->data && packable(*w)) w->packed = arena_ + offset_of.at(w->data);
}

}  // namespace dm
