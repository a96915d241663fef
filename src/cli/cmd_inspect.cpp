// deepmoe inspect: what a model is and what it needs: architecture, layers, experts, parameters (total and active
// per token), dtypes, weight bytes read per decoded token, KV cache bytes per token, memory. With weights present
// they are loaded and checked; a directory holding only config.json is described from the config's tensor specs.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "core/error.h"
#include "loader/json_config.h"
#include "model/gguf_model.h"
#include "model/model.h"

namespace dm::cli {

namespace {

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char s[64];
  std::snprintf(s, sizeof s, u ? "%.2f %s" : "%.0f %s", b, units[u]);
  return s;
}

std::string human_count(double n) {
  char s[64];
  if (n >= 1e9) std::snprintf(s, sizeof s, "%.2fB", n / 1e9);
  else if (n >= 1e6) std::snprintf(s, sizeof s, "%.2fM", n / 1e6);
  else if (n >= 1e3) std::snprintf(s, sizeof s, "%.1fK", n / 1e3);
  else std::snprintf(s, sizeof s, "%.0f", n);
  return s;
}

}  // namespace

int cmd_inspect(int argc, char** argv) {
  CLI::App app{"Architecture, parameters, dtypes and memory of a model directory (weights optional)"};
  std::string dir;
  int64_t context = 4096;
  app.add_option("model", dir, "model directory (config.json, optionally *.safetensors) or .gguf file")->required();
  app.add_option("--context", context, "context length for the KV cache estimate");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  namespace fs = std::filesystem;
  const bool gguf = is_gguf_path(dir);  // a .gguf file: its metadata read as config.json (model/gguf_model.h)
  const bool has_weights = gguf || fs::exists(fs::path(dir) / "model.safetensors") ||
                           fs::exists(fs::path(dir) / "model.safetensors.index.json");
  ModelInfo info = has_weights && !gguf ? load_model(dir)->info() : describe_model(dir);
  JsonConfig cfg = gguf ? JsonConfig(hf_config_from_gguf(GgufFile::open(dir)), dir)
                        : JsonConfig::load((fs::path(dir) / "config.json").string());
  if (info.max_context > 0) context = std::min(context, info.max_context);

  std::printf("model:          %s\n", dir.c_str());
  std::printf("architecture:   %s (model_type %s)%s\n", info.architecture.c_str(), info.model_type.c_str(),
              has_weights ? "" : "  [config only: no weights in this directory]");
  const int64_t n_experts = cfg.get_int("n_routed_experts", cfg.get_int("num_experts", 0));
  const int64_t first_dense = cfg.get_int("first_k_dense_replace", 0);
  const int64_t n_dense = n_experts ? std::min<int64_t>(first_dense, info.n_layers) : info.n_layers;
  std::printf("layers:         %d (%lld dense, %lld MoE)", info.n_layers, (long long)n_dense,
              (long long)(info.n_layers - n_dense));
  if (cfg.get_int("num_nextn_predict_layers", 0) > 0)
    std::printf(" + %lld MTP layer(s), not loaded", (long long)cfg.get_int("num_nextn_predict_layers", 0));
  std::printf("\nhidden, vocab:  %lld, %lld\n", (long long)info.hidden_size, (long long)info.vocab_size);
  if (n_experts)
    std::printf("experts:        %lld routed, %lld shared, %lld per token\n", (long long)n_experts,
                (long long)cfg.get_int("n_shared_experts", 0), (long long)cfg.get_int("num_experts_per_tok", 0));
  std::printf("parameters:     %s total, %s active per token\n", human_count(double(info.n_params)).c_str(),
              human_count(double(info.n_active_params)).c_str());
  std::printf("dtypes:         %s\n", info.dtype_summary.c_str());
  std::printf("weights:        %s%s\n", human_bytes(double(info.weight_bytes)).c_str(),
              has_weights ? " (memory-mapped; experts never routed to are never read)" : " (estimated)");
  std::printf("read per token: %s of weights per decoded token\n",
              human_bytes(double(info.weight_bytes_per_token)).c_str());
  const double kv_token = double(info.n_layers) * double(info.kv_width) * sizeof(float);
  std::printf("KV cache:       %lld floats per token and layer, %s per token (f32)\n", (long long)info.kv_width,
              human_bytes(kv_token).c_str());
  std::printf("memory needed:  %s weights + %s KV at %lld tokens of context = %s (max context %lld)\n",
              human_bytes(double(info.weight_bytes)).c_str(), human_bytes(kv_token * double(context)).c_str(),
              (long long)context, human_bytes(double(info.weight_bytes) + kv_token * double(context)).c_str(),
              (long long)info.max_context);
  return 0;
}

}  // namespace dm::cli
