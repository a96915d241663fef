// safetensors: 8-byte little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets}, ...,
// "__metadata__": {...}}, then the data. parse_safetensors_header checks everything a corrupt file can get wrong:
// header length past the file, bad JSON, unknown dtype, negative/huge shapes, offsets out of range, byte size not
// matching dtype × shape, overlapping tensors. Errors name the file and the tensor.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace dm {

struct SafetensorsEntry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets relative to the data section
};

struct SafetensorsHeader {
  uint64_t data_start = 0;  // 8 + header length
  std::vector<SafetensorsEntry> tensors;
};

// `file_size` is the whole file's size; `path` only names the file in errors.
SafetensorsHeader parse_safetensors_header(const uint8_t* data, size_t file_size, const std::string& path);

DType safetensors_dtype(const std::string& s, const std::string& context);  // "BF16" -> DType::BF16
const char* safetensors_dtype_name(DType t);                                  // DType::BF16 -> "BF16"

// Writes tensors to a .safetensors file (used by synth, tests and tools). Tensors are written in the given order.
struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;
  size_t nbytes;
};
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors);

}  // namespace dm
