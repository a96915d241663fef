// Linear weights moved into the kernels' own layout at load: Q8_0 / Q4_0 rows are re-laid out for the int8 kernels
// (pack_rows16, kernels/linear.h) into private memory backed by huge pages, and the mapped file pages they came
// from are handed back to the kernel, so the process holds one copy of the weights and the hot loops read
// 2 MiB pages (fewer TLB misses while streaming weights in decode).
// Thread safety: pack() runs once at load; afterwards the packed rows are read-only.
#pragma once
#include <cstddef>
#include <memory>
#include <vector>

#include "core/mapped_file.h"
#include "kernels/linear.h"

namespace dm {

class PackedWeights {
 public:
  PackedWeights() = default;
  ~PackedWeights();
  PackedWeights(const PackedWeights&) = delete;
  PackedWeights& operator=(const PackedWeights&) = delete;

  // Packs every weight of `ws` that packable() accepts (weights with the same rows are packed once) and sets
  // its Weight::packed. Rows that lie in one of `files` have their whole pages released (madvise DONTNEED:
  // they read back from the file if anything touches them again). Throws dm::Error if memory runs out.
  void pack(const std::vector<Weight*>& ws, const std::vector<std::shared_ptr<MappedFile>>& files);
  size_t bytes() const { return bytes_; }

 private:
  uint8_t* arena_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace dm
