// One anonymous mapping holds every packed or copied weight (each at a 4 KiB boundary); weights are packed by
// all hardware threads, one weight at a time per thread.
#include "model/packed_weights.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <thread>

#include "core/error.h"
#include "core/log.h"

namespace dm {

namespace {

constexpr size_t kAlign = 4096;

// MemAvailable of /proc/meminfo in bytes (page cache counts: the packed copy replaces the file's pages), or 0.
double available_memory() {
  std::FILE* f = std::fopen("/proc/meminfo", "r");
  if (!f) return 0;
  char line[256];
  double v = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, "MemAvailable:", 13) == 0) v = std::atof(line + 13) * 1024.0;
  std::fclose(f);
  return v;
}

bool in_files(const void* ptr, size_t n, const std::vector<std::shared_ptr<MappedFile>>& files) {
  const uint8_t* p = static_cast<const uint8_t*>(ptr);
  for (const auto& f : files)
    if (p >= f->data() && p + n <= f->data() + f->size()) return true;
  return false;
}

// Releases the whole pages of [p, p + n), which lie in a read-only file mapping.
void release_file_pages(const void* p, size_t n) {
  const uintptr_t page = 4096, b = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page,
                  e = (reinterpret_cast<uintptr_t>(p) + n) / page * page;
  if (b < e) ::madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
}

// Plain float weights in the file pages: copied as they are (the copy gets huge pages).
bool copyable(const Weight& w, const std::vector<std::shared_ptr<MappedFile>>& files) {
  return (w.dtype == DType::F32 || w.dtype == DType::BF16 || w.dtype == DType::F16 || w.dtype == DType::F8_E4M3) &&
         in_files(w.data, w.bytes(), files);
}

}  // namespace

void PackedWeights::pack(const std::vector<Weight*>& ws, const std::vector<std::shared_ptr<MappedFile>>& files,
                         bool bf16_acts) {
  DM_CHECK(!arena_.data(), "PackedWeights::pack called twice");
  // Distinct sources (by their rows' address) and where each goes in the arena.
  std::map<const void*, size_t> offset_of;
  std::vector<const Weight*> todo;
  size_t total = 0;
  for (Weight* w : ws) {
    if (!w->data || offset_of.count(w->data) || !(packable(*w) || copyable(*w, files))) continue;
    offset_of[w->data] = total;
    todo.push_back(w);
    total += ((packable(*w) ? packed_bytes(*w) : w->bytes()) + kAlign - 1) / kAlign * kAlign;
  }
  if (total == 0) return;
  if (const double avail = available_memory(); avail > 0 && double(total) > 0.9 * avail) {
    log_warn("weights: ", total >> 20, " MiB to pack but ", int64_t(avail) >> 20,
             " MiB of memory available: kept in the mapped file pages as stored (slower kernels, paged on use)");
    return;
  }
  arena_ = HugeBuffer(total);  // huge pages where the kernel grants them; throws naming the size if memory runs out

  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < todo.size();) {
      const Weight& w = *todo[i];
      uint8_t* out = arena_.data() + offset_of.at(w.data);
      if (packable(w))
        pack_rows16(w, out);
      else
        std::memcpy(out, w.data, w.bytes());
      if (in_files(w.data, w.bytes(), files)) release_file_pages(w.data, w.bytes());
    }
  };
  const unsigned n_threads = std::max(1u, std::min(8u, std::thread::hardware_concurrency()));
  std::vector<std::thread> threads;
  for (unsigned t = 1; t < n_threads; ++t) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();
  for (Weight* w : ws) {
    auto it = w->data ? offset_of.find(w->data) : offset_of.end();
    if (it == offset_of.end()) continue;
    if (packable(*w)) {
      w->packed = arena_.data() + it->second;
      w->bf16_acts = bf16_acts && (w->dtype == DType::BF16 || w->dtype == DType::F16);
    } else {
      w->data = arena_.data() + it->second;  // the copy replaces the released file pages
    }
  }
}

}  // namespace dm
