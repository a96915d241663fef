// Architecture registry: picks the model family from config.json's `model_type` (and `architectures`).
// A family adds one branch to family_of() and one case to each dispatch below.
#include <filesystem>

#include "core/error.h"
#include "loader/deepseek_config.h"
#include "loader/json_config.h"
#include "loader/weights.h"
#include "model/deepseek.h"
#include "model/gguf_model.h"
#include "model/llama.h"
#include "model/model.h"

namespace dm {

namespace {

namespace fs = std::filesystem;

enum class Family { Deepseek, Llama };

Family family_of(const JsonConfig& cfg) {
  if (is_deepseek_config(cfg)) return Family::Deepseek;
  if (is_llama_family(cfg.get_string("model_type", ""))) return Family::Llama;
  fail(cfg.path(), ": unsupported model_type '", cfg.get_string("model_type", ""), "'");
}

JsonConfig config_of(const std::string& path) {
  if (!fs::exists(path)) fail(path, ": no such file or directory");
  if (!fs::is_directory(path)) fail(path, ": not a model directory (GGUF files are not supported yet)");
  return JsonConfig::load((fs::path(path) / "config.json").string());
}

bool has_weights(const std::string& dir) {
  return fs::exists(fs::path(dir) / "model.safetensors") || fs::exists(fs::path(dir) / "model.safetensors.index.json");
}

}  // namespace

std::unique_ptr<Model> load_model(const std::string& path, const LoadOptions& opts) {
  if (is_gguf_path(path)) {  // GGUF: the adapter's (config, store) pair goes through the same family loaders
    GgufCheckpoint ck = open_gguf_checkpoint(path);
    std::shared_ptr<const WeightStore> weights = std::move(ck.weights);
    switch (family_of(ck.config)) {
      case Family::Deepseek: return load_deepseek(ck.config, std::move(weights), opts);
      case Family::Llama: return load_llama(ck.config, std::move(weights), opts);
    }
  }
  JsonConfig cfg = config_of(path);
  Family f = family_of(cfg);
  auto weights = std::make_shared<const WeightStore>(WeightStore::open_safetensors(path));
  switch (f) {
    case Family::Deepseek: return load_deepseek(cfg, std::move(weights), opts);
    case Family::Llama: return load_llama(cfg, std::move(weights), opts);
  }
  fail(cfg.path(), ": unsupported model");
}

std::vector<TensorSpec> model_tensor_specs(const std::string& config_path) {
  JsonConfig cfg = JsonConfig::load(config_path);
  switch (family_of(cfg)) {
    case Family::Deepseek: return deepseek_tensor_specs(cfg);
    case Family::Llama: return llama_tensor_specs(cfg);
  }
  fail(cfg.path(), ": unsupported model");
}

ModelInfo describe_model(const std::string& path) {
  JsonConfig cfg = config_of(path);
  Family f = family_of(cfg);
  std::unique_ptr<WeightStore> weights;
  if (has_weights(path)) weights = std::make_unique<WeightStore>(WeightStore::open_safetensors(path));
  switch (f) {
    case Family::Deepseek: return deepseek_model_info(cfg, weights.get());
    case Family::Llama:
      if (weights) return load_llama(cfg, std::make_shared<const WeightStore>(std::move(*weights)), {})->info();
      return llama_config_info(cfg);  // config only
  }
  fail(cfg.path(), ": unsupported model");
}

}  // namespace dm
