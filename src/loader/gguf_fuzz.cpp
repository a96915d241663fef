// Fuzz target: parse_gguf over arbitrary bytes must either succeed or throw dm::Error; a parsed header's
// tensor ranges must lie inside the image (checked here, so a validation gap shows up as a failure).
#include <cstdint>
#include <cstdlib>

#include "core/error.h"
#include "loader/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    dm::GgufHeader h = dm::parse_gguf(data, size, "fuzz.gguf");
    for (auto& t : h.tensors)
      if (h.data_start + t.offset + t.nbytes > size) std::abort();
    for (auto& [k, v] : h.metadata) (void)v.size();
  } catch (const dm::Error&) {
  }
  return 0;
}
