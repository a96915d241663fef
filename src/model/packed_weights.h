// Linear weights moved into private memory backed by huge pages at load: Q8_0 / Q4_0 rows re-laid out for the
// int8 kernels (pack_rows16, kernels/linear.h), float weights (F32/BF16/F16/FP8) of the mapped files copied as
// they are. The file pages they came from are handed back to the kernel, so the process holds one copy of the
// weights, and decode streams them from 2 MiB pages (fewer TLB misses; ~20% more read bandwidth per core).
// Thread safety: pack() runs once at load; afterwards the packed rows are read-only.
#pragma once
#include <cstddef>
#include <memory>
#include <vector>

#include "core/mapped_file.h"
#include "core/tensor.h"
#include "kernels/linear.h"

namespace dm {

class PackedWeights {
 public:
  PackedWeights() = default;
  PackedWeights(const PackedWeights&) = delete;
  PackedWeights& operator=(const PackedWeights&) = delete;

  // Packs every weight of `ws` that packable() accepts and sets its Weight::packed; copies float weights that
  // lie in one of `files` and points Weight::data at the copy (weights with the same rows are handled once).
  // Source rows in `files` have their whole pages released (madvise DONTNEED: they read back from the file if
  // anything touches them again). bf16_acts: set Weight::bf16_acts on the packed BF16 / F16 weights
  // (LoadOptions::bf16_activations). Throws dm::Error if memory runs out.
  void pack(const std::vector<Weight*>& ws, const std::vector<std::shared_ptr<MappedFile>>& files, bool bf16_acts);
  size_t bytes() const { return arena_.size(); }

 private:
  HugeBuffer arena_;
};

}  // namespace dm
