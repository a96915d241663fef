// GGUF (llama.cpp's model format, versions 2 and 3, little-endian): header "GGUF", version, tensor count, metadata
// count; metadata key/value pairs (typed scalars, strings, arrays incl. nested arrays); tensor infos (name, dims in
// GGML order = innermost first, ggml type, offset); padding to `general.alignment` (default 32); tensor data.
// parse_gguf validates everything a corrupt file can get wrong (see gguf.cpp); errors name the file, key or tensor.
// Spec: ggml's docs/gguf.md. Split models (`NAME-00001-of-0000N.gguf`, keys split.*) open as one GgufFile.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/mapped_file.h"
#include "core/tensor.h"

namespace dm {

enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7, STRING = 8, ARRAY = 9,
  U64 = 10, I64 = 11, F64 = 12,
};
std::string_view gguf_type_name(GgufType t);

// One metadata value. Integers (and bools) are held in `i` (u64 as its bit pattern: the getters of GgufFile
// reject values above INT64_MAX), floats in `f`; arrays keep their element type and hold numbers, strings or
// nested arrays.
struct GgufValue {
  GgufType type = GgufType::U8;
  int64_t i = 0;
  double f = 0;
  std::string str;
  GgufType elem = GgufType::U8;       // ARRAY: element type
  std::vector<int64_t> ints;          // ARRAY of integer / BOOL elements
  std::vector<double> floats;         // ARRAY of F32 / F64 elements
  std::vector<std::string> strings;   // ARRAY of STRING
  std::vector<GgufValue> arrays;      // ARRAY of ARRAY

  bool is_int() const;    // any integer type (not BOOL)
  bool is_float() const;  // F32, F64
  uint64_t size() const;  // ARRAY: element count

  static GgufValue of_int(GgufType t, int64_t v);
  static GgufValue of_float(GgufType t, double v);
  static GgufValue u32(uint32_t v) { return of_int(GgufType::U32, v); }
  static GgufValue i32(int32_t v) { return of_int(GgufType::I32, v); }
  static GgufValue f32(float v) { return of_float(GgufType::F32, v); }
  static GgufValue boolean(bool v) { return of_int(GgufType::BOOL, v ? 1 : 0); }
  static GgufValue string(std::string s);
  static GgufValue string_array(std::vector<std::string> v);
  static GgufValue int_array(GgufType elem, std::vector<int64_t> v);
  static GgufValue float_array(GgufType elem, std::vector<double> v);
  static GgufValue array_array(std::vector<GgufValue> v);
};

// GGML tensor types by id (ggml.h's enum ggml_type). Names and block sizes are known for every type so that any
// file's layout can be checked; only some map to a DType we compute with.
struct GgmlTypeInfo {
  const char* name;
  int64_t block;  // elements per block
  int64_t bytes;  // bytes per block
};
const GgmlTypeInfo* ggml_type_info(uint32_t type);  // nullptr: unknown id
std::optional<DType> ggml_to_dtype(uint32_t type);  // F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, I8..I64, F64
uint32_t dtype_to_ggml(DType t);                    // throws dm::Error for types GGUF cannot hold
std::string ggml_type_name(uint32_t type);          // "Q4_K", or "type 99" if unknown

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // GGML order: ne[0] is the innermost (contiguous) dimension
  uint32_t ggml_type = 0;
  uint64_t offset = 0;  // bytes from the start of the data section
  uint64_t nbytes = 0;
  // Outermost first, as in safetensors/PyTorch: ne reversed. A GGML matrix {cols, rows} is [rows, cols].
  std::vector<int64_t> shape() const { return {ne.rbegin(), ne.rend()}; }
  int64_t numel() const;
};

struct GgufHeader {
  uint32_t version = 0;
  std::vector<std::pair<std::string, GgufValue>> metadata;  // file order
  std::vector<GgufTensorInfo> tensors;                      // file order
  uint64_t alignment = 32;
  uint64_t data_start = 0;  // absolute file offset of the data section
};

// Parses and validates the header of a GGUF image of `size` bytes; `path` only names the file in errors.
// Throws dm::Error (never crashes) on: truncation, bad magic, unsupported version or endianness, unknown value
// or tensor types, counts or lengths that cannot fit in the file, duplicate keys or tensor names, bad dims,
// misaligned or out-of-range tensor data. Keys and names are kept as raw bytes (UTF-8 is not checked).
GgufHeader parse_gguf(const uint8_t* data, size_t size, const std::string& path);

// A tensor of an opened file (possibly in one part of a split model).
struct GgufTensor {
  const GgufTensorInfo* info = nullptr;
  const uint8_t* data = nullptr;
  const std::string* file = nullptr;  // the part it lives in, for messages
  const std::string& name() const { return info->name; }
};

// An opened GGUF model: all parts of a split model mapped, metadata from the first part, tensors of all.
// Thread safety: immutable after open(); any thread may read.
class GgufFile {
 public:
  GgufFile(GgufFile&&) = default;
  GgufFile& operator=(GgufFile&&) = default;
  GgufFile(const GgufFile&) = delete;  // tensors_ points into parts_
  GgufFile& operator=(const GgufFile&) = delete;
  // `path`: a .gguf file, or any part of a split model (`-0000K-of-0000N.gguf`): then all N parts are opened.
  static GgufFile open(const std::string& path);

  const std::string& path() const { return parts_.front().file->path(); }
  uint32_t version() const { return parts_.front().header.version; }
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return parts_.front().header.metadata; }
  const GgufValue* find(std::string_view key) const;
  bool has(std::string_view key) const { return find(key) != nullptr; }

  // Typed access; errors name the file and key. Integer getters accept any integer type.
  int64_t get_int(std::string_view key) const;
  std::optional<int64_t> opt_int(std::string_view key) const;
  double get_float(std::string_view key) const;  // F32/F64 (integers accepted)
  std::optional<double> opt_float(std::string_view key) const;
  std::optional<bool> opt_bool(std::string_view key) const;
  std::string get_string(std::string_view key) const;
  std::optional<std::string> opt_string(std::string_view key) const;
  const GgufValue& get_array(std::string_view key, GgufType elem) const;
  std::string architecture() const { return get_string("general.architecture"); }

  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* find_tensor(std::string_view name) const;
  // A zero-copy view (shape outermost first). Throws dm::Error naming the tensor and its ggml type if the type
  // has no DType (e.g. IQ2_XXS, Q3_K).
  TensorView view(const GgufTensor& t) const;
  std::vector<std::shared_ptr<MappedFile>> files() const;
  size_t n_parts() const { return parts_.size(); }

 private:
  GgufFile() = default;
  struct Part {
    std::shared_ptr<MappedFile> file;
    GgufHeader header;
  };
  std::vector<Part> parts_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
  std::map<std::string, size_t, std::less<>> key_index_;
};

// The parts of a split model name: "dir/m-00002-of-00003.gguf" -> {dir/m-00001-of-00003.gguf, ...}; a plain name
// gives itself alone.
std::vector<std::string> gguf_split_paths(const std::string& path);

}  // namespace dm
