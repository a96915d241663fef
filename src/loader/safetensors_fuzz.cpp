// Fuzz target: parse_safetensors_header on arbitrary bytes must return or throw dm::Error, never crash, and every
// entry it accepts must lie inside the data section.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "loader/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    dm::SafetensorsHeader h = dm::parse_safetensors_header(data, size, "fuzz.safetensors");
    for (const auto& e : h.tensors) {
      DM_CHECK(e.begin <= e.end && h.data_start + e.end <= size, "accepted tensor outside the file: ", e.name);
      DM_CHECK(e.end - e.begin == dm::dtype_bytes(e.dtype, [&] {
                 int64_t n = 1;
                 for (int64_t d : e.shape) n *= d;
                 return n;
               }()),
               "accepted tensor with the wrong byte size: ", e.name);
    }
  } catch (const dm::Error&) {
  }
  return 0;
}
