// `deepmoe synth --format gguf`: the config's tensor specs become a TensorSource whose values the synth generator
// produces when the GGUF writer asks for each tensor; convert_to_gguf (model/gguf_convert) does the naming,
// stacking of experts, DeepSeek's k_b/v_b split, Llama's row permutation and the quantization.
#include "cli/synth_gguf.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include <unistd.h>

#include "core/error.h"
#include "loader/json_config.h"
#include "model/gguf_convert.h"

namespace dm::cli {

namespace fs = std::filesystem;

void write_synth_gguf(const nlohmann::json& cfg, const std::string& type, const std::string& tokenizer_dir,
                      const std::string& out_path, const SynthValues& values) {
  // model_tensor_specs reads a config file: a private temporary one, removed again.
  const fs::path tmp = fs::temp_directory_path() / cat("deepmoe-synth-", ::getpid(), "-config.json");
  {
    std::ofstream f(tmp);
    f << cfg.dump(2) << "\n";
    if (!f) fail(tmp.string(), ": write failed");
  }
  std::vector<TensorSpec> specs;
  try {
    specs = model_tensor_specs(tmp.string());
  } catch (...) {
    fs::remove(tmp);
    throw;
  }
  fs::remove(tmp);

  std::map<std::string, size_t> index;  // HF name -> spec index (the generator's stream key)
  TensorSource src;
  // note: no tokenizer directory must not mean the current one (tokenizer.json there would be picked up).
  src.dir = tokenizer_dir.empty() ? (tmp.string() + ".no-tokenizer") : tokenizer_dir;
  src.dtype = DType::BF16;
  for (size_t i = 0; i < specs.size(); ++i) {
    src.shapes[specs[i].name] = specs[i].shape;
    index[specs[i].name] = i;
  }
  size_t done = 0;
  const auto t0 = std::chrono::steady_clock::now();
  src.read = [&](const std::string& name) {
    const size_t i = index.at(name);
    std::vector<float> v = values(specs[i], i);
    if (++done % 64 == 0)
      std::fprintf(stderr, "synth: %zu tensors generated, %.0f s\n", done,
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    return v;
  };
  ConvertOptions opts;
  opts.type = type;
  opts.name = fs::path(out_path).stem().string();
  ConvertSummary s = convert_to_gguf(JsonConfig(cfg, "synth config"), src, out_path, opts);
  for (const std::string& n : s.notes) std::fprintf(stderr, "note: %s\n", n.c_str());
  std::fprintf(stderr, "synth: %s: %s %s, %zu tensors, %.2f GB of tensor data\n", out_path.c_str(), s.arch.c_str(),
               s.type.c_str(), s.n_tensors, double(s.n_bytes) / 1e9);
}

}  // namespace dm::cli
