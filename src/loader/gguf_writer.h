// GGUF writer (version 3, or 2 on request): metadata of every type in insertion order, tensor infos, tensor data
// padded to the alignment. Used by `deepmoe convert`, the tests and the fuzz seed corpus.
// Tensor bytes are either borrowed (must stay valid until write) or produced at write time by a callback, so a
// converter can stream a model larger than memory.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "loader/gguf.h"

namespace dm {

class GgufWriter {
 public:
  // alignment: a power of two; written as general.alignment when not the default 32.
  explicit GgufWriter(uint32_t alignment = 32, uint32_t version = 3);

  // Sets a key (a key set twice keeps its first position and takes the last value).
  void set(const std::string& key, GgufValue v);
  // ne in GGML order (innermost first). nbytes must match ne and the type; names must be unique.
  void add_tensor(const std::string& name, std::vector<int64_t> ne, uint32_t ggml_type, const void* data,
                  size_t nbytes);
  // The bytes are written by fill(dst) into a zeroed buffer of the tensor's size at write time.
  void add_tensor(const std::string& name, std::vector<int64_t> ne, uint32_t ggml_type,
                  std::function<void(uint8_t* dst)> fill);

  void write(const std::string& path) const;  // throws dm::Error naming the path on I/O failure
  std::vector<uint8_t> to_bytes() const;      // the whole file in memory (tests, small files)
  size_t n_tensors() const { return tensors_.size(); }

 private:
  struct Tensor {
    std::string name;
    std::vector<int64_t> ne;
    uint32_t ggml_type;
    uint64_t nbytes;
    const void* data;                       // borrowed, or null when fill is set
    std::function<void(uint8_t*)> fill;
  };
  uint64_t check_tensor(const std::string& name, const std::vector<int64_t>& ne, uint32_t ggml_type) const;
  void emit(const std::function<void(const void*, size_t)>& out) const;

  uint32_t alignment_;
  uint32_t version_;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<Tensor> tensors_;
};

}  // namespace dm
