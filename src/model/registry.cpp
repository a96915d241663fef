// Architecture registry: picks the model family from config.json's `architectures` / `model_type`.
#include <filesystem>

#include "core/error.h"
#include "loader/json_config.h"
#include "model/model.h"

namespace dm {

std::unique_ptr<Model> load_model(const std::string& path, const LoadOptions& opts) {
  namespace fs = std::filesystem;
  if (!fs::exists(path)) fail(path, ": no such file or directory");
  if (!fs::is_directory(path)) fail(path, ": not a model directory (GGUF files are not supported yet)");
  JsonConfig cfg = JsonConfig::load((fs::path(path) / "config.json").string());
  std::string model_type = cfg.get_string("model_type", "");
  fail(cfg.path(), ": unsupported model_type '", model_type, "'");
}

std::vector<TensorSpec> model_tensor_specs(const std::string& config_path) {
  JsonConfig cfg = JsonConfig::load(config_path);
  fail(cfg.path(), ": unsupported model_type '", cfg.get_string("model_type", ""), "'");
}

}  // namespace dm
