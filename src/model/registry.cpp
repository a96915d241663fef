// Architecture registry: picks the model family from config.json's `architectures` / `model_type`.
#include <filesystem>

#include "core/error.h"
#include "loader/json_config.h"
#include "loader/weights.h"
#include "model/llama.h"
#include "model/model.h"

namespace dm {

std::unique_ptr<Model> load_model(const std::string& path, const LoadOptions& opts) {
  namespace fs = std::filesystem;
  if (!fs::exists(path)) fail(path, ": no such file or directory");
  if (!fs::is_directory(path)) fail(path, ": not a model directory (GGUF files are not supported yet)");
  JsonConfig cfg = JsonConfig::load((fs::path(path) / "config.json").string());
  std::string model_type = cfg.get_string("model_type", "");
  if (is_llama_family(model_type))
    return load_llama(cfg, std::make_shared<const WeightStore>(WeightStore::open_safetensors(path)), opts);
  fail(cfg.path(), ": unsupported model_type '", model_type, "'");
}

std::vector<TensorSpec> model_tensor_specs(const std::string& config_path) {
  JsonConfig cfg = JsonConfig::load(config_path);
  if (is_llama_family(cfg.get_string("model_type", ""))) return llama_tensor_specs(cfg);
  fail(cfg.path(), ": unsupported model_type '", cfg.get_string("model_type", ""), "'");
}

}  // namespace dm
