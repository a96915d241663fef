// A set of named tensors, from safetensors files (one file or shards with model.safetensors.index.json) or, through
// an adapter, from GGUF. Data stays in the mapped file pages (zero-copy); owned tensors (made at load, e.g. a
// re-laid-out GGUF tensor) live in the store too.
// Thread safety: immutable after loading; lookups may run on any thread.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/mapped_file.h"
#include "core/tensor.h"

namespace dm {

struct StoredTensor {
  TensorView view;
  std::string file;  // where it came from, for error messages
};

class WeightStore {
 public:
  // Loads `path`: a directory holding model.safetensors or model.safetensors.index.json (+ shards), or one
  // .safetensors file. Every header is validated (see safetensors.h); throws dm::Error naming the file.
  static WeightStore open_safetensors(const std::string& path);

  const StoredTensor* find(std::string_view name) const;
  bool contains(std::string_view name) const { return find(name) != nullptr; }
  // The tensor `name`, checked: it must exist, have one of `dtypes` and exactly `shape`. Throws dm::Error
  // naming the file, tensor, expected and found otherwise.
  const TensorView& get(std::string_view name, std::initializer_list<DType> dtypes,
                        const std::vector<int64_t>& shape) const;
  std::vector<std::string> names() const;
  size_t size() const { return tensors_.size(); }

  // Adds a tensor (the GGUF adapter and tests use these). add_owned keeps `buf` alive with the store.
  void add(const std::string& name, StoredTensor t);
  void add_owned(const std::string& name, const std::string& file, DType dtype, std::vector<int64_t> shape,
                 Buffer buf);
  void keep_file(std::shared_ptr<MappedFile> f) { files_.push_back(std::move(f)); }
  const std::vector<std::shared_ptr<MappedFile>>& files() const { return files_; }

 private:
  std::vector<std::shared_ptr<MappedFile>> files_;
  std::vector<std::shared_ptr<Buffer>> owned_;
  std::map<std::string, StoredTensor, std::less<>> tensors_;
};

}  // namespace dm
