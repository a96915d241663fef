// WeightStore: loading safetensors checkpoints (single file or sharded) and checked tensor lookup.
#include "loader/weights.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "loader/safetensors.h"

namespace dm {

namespace fs = std::filesystem;

static void add_file(WeightStore& store, const std::string& path) {
  auto file = std::make_shared<MappedFile>(path);
  SafetensorsHeader h = parse_safetensors_header(file->data(), file->size(), path);
  for (auto& e : h.tensors) {
    if (store.contains(e.name)) fail(path, ": tensor '", e.name, "' appears in more than one file");
    StoredTensor t;
    t.view.dtype = e.dtype;
    t.view.shape = e.shape;
    t.view.data = file->data() + h.data_start + e.begin;
    t.view.nbytes = size_t(e.end - e.begin);
    t.file = path;
    store.add(e.name, std::move(t));
  }
  store.keep_file(std::move(file));
}

WeightStore WeightStore::open_safetensors(const std::string& path) {
  WeightStore store;
  if (!fs::is_directory(path)) {
    add_file(store, path);
    return store;
  }
  fs::path dir(path);
  fs::path index = dir / "model.safetensors.index.json";
  if (fs::exists(index)) {
    nlohmann::json j = nlohmann::json::parse(read_file(index.string()), nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      fail(index.string(), ": not a valid index (need a 'weight_map' object)");
    std::vector<std::string> shards;
    for (auto& [name, f] : j["weight_map"].items()) {
      if (!f.is_string()) fail(index.string(), ": weight_map entry '", name, "' is not a file name");
      std::string s = f.get<std::string>();
      if (s.find('/') != std::string::npos || s.find("..") != std::string::npos)
        fail(index.string(), ": shard name '", s, "' must be a plain file name");
      if (std::find(shards.begin(), shards.end(), s) == shards.end()) shards.push_back(s);
    }
    for (auto& s : shards) add_file(store, (dir / s).string());
    for (auto& [name, f] : j["weight_map"].items())
      if (!store.contains(name))
        fail(index.string(), ": tensor '", name, "' is listed for ", f.get<std::string>(), " but not found there");
    return store;
  }
  fs::path single = dir / "model.safetensors";
  if (!fs::exists(single)) fail(path, ": no model.safetensors or model.safetensors.index.json in this directory");
  add_file(store, single.string());
  return store;
}

const StoredTensor* WeightStore::find(std::string_view name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

const TensorView& WeightStore::get(std::string_view name, std::initializer_list<DType> dtypes,
                                   const std::vector<int64_t>& shape) const {
  const StoredTensor* t = find(name);
  if (!t) fail("missing tensor '", name, "'", files_.empty() ? "" : " in " + files_.front()->path());
  bool ok = false;
  std::string want;
  for (DType d : dtypes) {
    ok |= d == t->view.dtype;
    want += (want.empty() ? "" : "|") + std::string(dtype_name(d));
  }
  if (!ok) fail(t->file, ": tensor '", name, "' has dtype ", dtype_name(t->view.dtype), ", expected ", want);
  if (t->view.shape != shape)
    fail(t->file, ": tensor '", name, "' has shape ", shape_str(t->view.shape), ", expected ", shape_str(shape));
  return t->view;
}

std::vector<std::string> WeightStore::names() const {
  std::vector<std::string> out;
  for (auto& [n, t] : tensors_) out.push_back(n);
  return out;
}

void WeightStore::add(const std::string& name, StoredTensor t) { tensors_[name] = std::move(t); }

void WeightStore::add_owned(const std::string& name, const std::string& file, DType dtype,
                            std::vector<int64_t> shape, Buffer buf) {
  auto owned = std::make_shared<Buffer>(std::move(buf));
  StoredTensor t;
  t.view.dtype = dtype;
  t.view.shape = std::move(shape);
  t.view.data = owned->data();
  t.view.nbytes = owned->size();
  t.file = file;
  owned_.push_back(std::move(owned));
  tensors_[name] = std::move(t);
}

}  // namespace dm
