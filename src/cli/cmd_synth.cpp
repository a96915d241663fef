// deepmoe synth: a random-weight model directory with exactly the tensors of a config (model_tensor_specs), for
// benchmarks on real shapes and for tests. Values come from a counter-based generator (splitmix64 + Box-Muller)
// keyed by (seed, tensor, element), so output doesn't depend on the thread count. Scales keep activations sane:
// linear N(0, 1/in), embeddings N(0, 1), norms ~1, biases small. fp8 follows the published DeepSeek-V3 layout:
// F8_E4M3 weights with an F32 `<name>_scale_inv` per 128x128 block (W = q * s). Written streaming, shard by shard.
#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/model_loading.h"
#include "cli/synth_gguf.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "core/thread_pool.h"
#include "loader/safetensors.h"
#include "model/model.h"

namespace dm::cli {

namespace {

namespace fs = std::filesystem;
constexpr int64_t kFp8Block = 128;

uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// A standard normal value for element i of the stream `key`.
float normal_at(uint64_t key, uint64_t i) {
  const uint64_t r = mix64(key ^ mix64(i));
  const double u1 = (double(r >> 40) + 1.0) / double(1ull << 24);  // (0, 1]
  const double u2 = double(r & 0xffffff) / double(1ull << 24);
  return float(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
}

// One tensor as it goes into the files.
struct OutTensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const TensorSpec* spec = nullptr;  // null: the scale_inv of the previous (fp8) tensor
  uint64_t nbytes = 0;
};

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}
int64_t rows_of(const std::vector<int64_t>& s) { return s.size() >= 2 ? s[0] : 1; }
int64_t cols_of(const std::vector<int64_t>& s) { return s.size() >= 2 ? numel(s) / s[0] : numel(s); }

// Value generator of one spec: a standard normal scaled, plus a mean.
struct Init {
  float mean = 0, std = 1;
};
Init init_of(const TensorSpec& t) {
  const float in = float(std::max<int64_t>(1, cols_of(t.shape)));
  switch (t.kind) {
    case TensorSpec::Kind::Linear:
    case TensorSpec::Kind::Router: return {0.0f, 1.0f / std::sqrt(in)};
    case TensorSpec::Kind::Embedding: return {0.0f, 1.0f};
    case TensorSpec::Kind::Norm: return {1.0f, 0.05f};
    case TensorSpec::Kind::Bias: return {0.0f, 0.02f};
    case TensorSpec::Kind::RouterBias: return {0.0f, 0.01f};
  }
  return {};
}

DType dtype_for(const TensorSpec& t, const std::string& dtype) {
  if (t.kind == TensorSpec::Kind::RouterBias || dtype == "f32") return DType::F32;
  if (dtype == "fp8" && t.kind == TensorSpec::Kind::Linear && t.shape.size() == 2 && t.name != "lm_head.weight")
    return DType::F8_E4M3;
  return DType::BF16;
}

// Sets `key` (dots reach into objects: rope_scaling.factor) to `value` parsed as JSON, else as a string.
void apply_override(nlohmann::json& cfg, const std::string& kv) {
  const size_t eq = kv.find('=');
  if (eq == std::string::npos || eq == 0) fail("--set '", kv, "': expected key=value");
  const std::string key = kv.substr(0, eq), text = kv.substr(eq + 1);
  nlohmann::json value = nlohmann::json::parse(text, nullptr, false);
  if (value.is_discarded()) value = text;
  nlohmann::json* node = &cfg;
  size_t start = 0;
  for (size_t dot; (dot = key.find('.', start)) != std::string::npos; start = dot + 1) {
    node = &(*node)[key.substr(start, dot - start)];
    if (!node->is_object()) *node = nlohmann::json::object();
  }
  (*node)[key.substr(start)] = value;
}

// Streams the tensors of one shard: header first (sizes are known), then each tensor's bytes.
class ShardWriter {
 public:
  ShardWriter(const std::string& path, const std::vector<OutTensor>& tensors) : path_(path), out_(path, std::ios::binary) {
    if (!out_) fail(path, ": cannot create file");
    nlohmann::ordered_json h = nlohmann::ordered_json::object();
    h["__metadata__"] = {{"format", "pt"}};
    uint64_t off = 0;
    for (const OutTensor& t : tensors) {
      h[t.name] = {{"dtype", safetensors_dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {off, off + t.nbytes}}};
      off += t.nbytes;
    }
    std::string js = h.dump();
    while ((8 + js.size()) % 8) js.push_back(' ');
    const uint64_t n = js.size();
    char len[8];
    for (int i = 0; i < 8; ++i) len[i] = char((n >> (8 * i)) & 0xff);
    out_.write(len, 8);
    out_.write(js.data(), std::streamsize(js.size()));
  }
  void write(const void* data, size_t n) {
    out_.write(static_cast<const char*>(data), std::streamsize(n));
    if (!out_) fail(path_, ": write failed (disk full?)");
  }

 private:
  std::string path_;
  std::ofstream out_;
};

// Generates rows [r0, r1) of a tensor as f32 into `buf`, in parallel.
void generate_rows(uint64_t key, const Init& init, int64_t cols, int64_t r0, int64_t r1, std::vector<float>& buf,
                   ThreadPool& pool) {
  buf.resize(size_t((r1 - r0) * cols));
  pool.parallel_for(r1 - r0, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r)
      for (int64_t c = 0; c < cols; ++c)
        buf[size_t(r * cols + c)] = init.mean + init.std * normal_at(key, uint64_t((r0 + r) * cols + c));
  });
}

// Writes one spec's data (and, for fp8, fills `scales` [ceil(rows/128), ceil(cols/128)]).
void write_tensor(const OutTensor& t, uint64_t seed, size_t index, ShardWriter& w, ThreadPool& pool,
                  std::vector<float>& scales) {
  const TensorSpec& spec = *t.spec;
  const uint64_t key = mix64(seed * 0x100000001b3ull + index);
  const Init init = init_of(spec);
  const int64_t rows = rows_of(spec.shape), cols = cols_of(spec.shape);
  const int64_t chunk = t.dtype == DType::F8_E4M3 ? kFp8Block : std::max<int64_t>(1, (16 << 20) / std::max<int64_t>(cols, 1));
  std::vector<float> buf;
  std::vector<uint8_t> bytes;
  const int64_t n_cb = (cols + kFp8Block - 1) / kFp8Block;
  if (t.dtype == DType::F8_E4M3) scales.assign(size_t(((rows + kFp8Block - 1) / kFp8Block) * n_cb), 1.0f);
  for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const int64_t r1 = std::min(rows, r0 + chunk), n = (r1 - r0) * cols;
    generate_rows(key, init, cols, r0, r1, buf, pool);
    if (t.dtype == DType::F32) {
      w.write(buf.data(), size_t(n) * 4);
    } else if (t.dtype == DType::BF16) {
      bytes.resize(size_t(n) * 2);
      auto* h = reinterpret_cast<uint16_t*>(bytes.data());
      for (int64_t i = 0; i < n; ++i) h[i] = f32_to_bf16(buf[size_t(i)]);
      w.write(bytes.data(), bytes.size());
    } else {
      bytes.resize(size_t(n));
      pool.parallel_for(n_cb, [&](int64_t b, int64_t e) {
        for (int64_t cb = b; cb < e; ++cb) {
          const int64_t c0 = cb * kFp8Block, c1 = std::min(cols, c0 + kFp8Block);
          float amax = 0;
          for (int64_t r = 0; r < r1 - r0; ++r)
            for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(buf[size_t(r * cols + c)]));
          const float s = amax > 0 ? amax / 448.0f : 1.0f;
          scales[size_t((r0 / kFp8Block) * n_cb + cb)] = s;
          for (int64_t r = 0; r < r1 - r0; ++r)
            for (int64_t c = c0; c < c1; ++c) bytes[size_t(r * cols + c)] = f32_to_f8_e4m3(buf[size_t(r * cols + c)] / s);
        }
      });
      w.write(bytes.data(), bytes.size());
    }
  }
}

void copy_tokenizer(const fs::path& from, const fs::path& to) {
  if (!fs::is_directory(from)) fail(from.string(), ": not a tokenizer directory");
  if (!fs::exists(from / "tokenizer.json")) fail((from / "tokenizer.json").string(), ": no such file");
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                        "chat_template.json", "generation_config.json"})
    if (fs::exists(from / f)) fs::copy_file(from / f, to / f, fs::copy_options::overwrite_existing);
}


}  // namespace

int cmd_synth(int argc, char** argv) {
  CLI::App app{"Write a random-weight model with exactly the tensor shapes of a config.json", "deepmoe synth"};
  std::string config_path, out_dir, tokenizer_dir, dtype = "bf16", format = "safetensors", gguf_type = "auto";
  uint64_t seed = 0;
  int threads = 0;
  double shard_gb = 3.0;
  std::vector<std::string> sets;
  app.add_option("--config", config_path, "source config.json (or a directory holding one)")->required();
  app.add_option("--out", out_dir, "output model directory")->required();
  app.add_option("--tokenizer", tokenizer_dir, "directory whose tokenizer files are copied");
  app.add_option("--dtype", dtype, "weight storage: f32, bf16 or fp8 (F8_E4M3 + 128x128 scale_inv)")
      ->check(CLI::IsMember({"f32", "bf16", "fp8"}));
  app.add_option("--format", format, "safetensors (a model directory) or gguf (--out is one .gguf file)")
      ->check(CLI::IsMember({"safetensors", "gguf"}));
  app.add_option("--type", gguf_type, "gguf tensor type: f32, f16, bf16, q8_0, q4_0, auto (--dtype's)")
      ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0", "q4_0", "auto"}));
  app.add_option("--seed", seed, "random seed");
  app.add_option("--set", sets, "override a config field, e.g. --set num_hidden_layers=2 (repeatable)");
  app.add_option("-t,--threads", threads, "threads (default: all)");
  app.add_option("--shard-gb", shard_gb, "largest shard in GB (1e9 bytes); bigger models get an index")
      ->check(CLI::Range(1e-6, 1e3));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  fs::path src = config_path;
  if (fs::is_directory(src)) src /= "config.json";
  nlohmann::json cfg = nlohmann::json::parse(read_file(src.string()), nullptr, false);
  if (cfg.is_discarded() || !cfg.is_object()) fail(src.string(), ": not a JSON object");
  for (const std::string& s : sets) apply_override(cfg, s);
  if (dtype == "fp8") {
    cfg["quantization_config"] = {{"activation_scheme", "dynamic"}, {"fmt", "e4m3"}, {"quant_method", "fp8"},
                                  {"weight_block_size", {kFp8Block, kFp8Block}}};
    cfg["torch_dtype"] = "bfloat16";
  } else {
    cfg.erase("quantization_config");
    cfg["torch_dtype"] = dtype == "f32" ? "float32" : "bfloat16";
  }
  if (format == "gguf") {
    if (dtype == "fp8") fail("synth: --format gguf takes --type, not --dtype fp8");
    ThreadPool pool(threads);
    write_synth_gguf(cfg, gguf_type == "auto" ? dtype : gguf_type, tokenizer_dir, out_dir,
                     [&](const TensorSpec& s, size_t index) {
                       std::vector<float> buf;
                       generate_rows(mix64(seed * 0x100000001b3ull + index), init_of(s), cols_of(s.shape), 0,
                                     rows_of(s.shape), buf, pool);
                       return buf;
                     });
    std::fprintf(stdout, "%s\n", out_dir.c_str());
    return 0;
  }
  fs::path out = out_dir;
  fs::create_directories(out);
  {
    std::ofstream f(out / "config.json");
    f << cfg.dump(2) << "\n";
    if (!f) fail((out / "config.json").string(), ": write failed");
  }
  const std::vector<TensorSpec> specs = model_tensor_specs((out / "config.json").string());

  std::vector<OutTensor> all;
  for (const TensorSpec& s : specs) {
    OutTensor t{s.name, dtype_for(s, dtype), s.shape, &s, 0};
    t.nbytes = dtype_bytes(t.dtype, numel(s.shape));
    all.push_back(t);
    if (t.dtype == DType::F8_E4M3) {
      std::vector<int64_t> sshape = {(rows_of(s.shape) + kFp8Block - 1) / kFp8Block,
                                     (cols_of(s.shape) + kFp8Block - 1) / kFp8Block};
      all.push_back({s.name + "_scale_inv", DType::F32, sshape, nullptr, dtype_bytes(DType::F32, numel(sshape))});
    }
  }
  // Shards of at most --shard-gb; a weight and its scale_inv stay together.
  const uint64_t max_shard = uint64_t(shard_gb * 1e9);
  std::vector<std::vector<OutTensor>> shards(1);
  uint64_t cur = 0, total = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    uint64_t n = all[i].nbytes + (i + 1 < all.size() && !all[i + 1].spec ? all[i + 1].nbytes : 0);
    if (cur > 0 && cur + n > max_shard && all[i].spec) {
      shards.emplace_back();
      cur = 0;
    }
    shards.back().push_back(all[i]);
    cur += all[i].nbytes;
    total += all[i].nbytes;
  }
  ThreadPool pool(threads);
  const bool tty = isatty(fileno(stderr));
  std::fprintf(stderr, "synth: %zu tensors, %s in %zu file(s), dtype %s\n", specs.size(), human_bytes(double(total)).c_str(),
               shards.size(), dtype.c_str());
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  uint64_t done = 0;
  size_t spec_index = 0;
  for (size_t k = 0; k < shards.size(); ++k) {
    char name[64];
    if (shards.size() == 1)
      std::snprintf(name, sizeof name, "model.safetensors");
    else
      std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", k + 1, shards.size());
    ShardWriter w((out / name).string(), shards[k]);
    std::vector<float> scales;
    for (const OutTensor& t : shards[k]) {
      weight_map[t.name] = name;
      if (t.spec) {
        write_tensor(t, seed, spec_index++, w, pool, scales);
      } else {
        w.write(scales.data(), scales.size() * 4);
      }
      done += t.nbytes;
      if (tty) std::fprintf(stderr, "\rsynth: %s / %s  ", human_bytes(double(done)).c_str(), human_bytes(double(total)).c_str());
    }
    if (tty) std::fprintf(stderr, "\n");
    if (!tty || shards.size() > 1) std::fprintf(stderr, "synth: wrote %s\n", name);
  }
  if (shards.size() > 1) {
    nlohmann::ordered_json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    std::ofstream(out / "model.safetensors.index.json") << index.dump(2) << "\n";
  }
  if (!tokenizer_dir.empty()) copy_tokenizer(tokenizer_dir, out);
  if (!fs::exists(out / "generation_config.json")) {
    nlohmann::ordered_json gen = {{"_from_model_config", true}};
    if (cfg.contains("bos_token_id")) gen["bos_token_id"] = cfg["bos_token_id"];
    if (cfg.contains("eos_token_id")) gen["eos_token_id"] = cfg["eos_token_id"];
    fs::path src_gen = src.parent_path() / "generation_config.json";
    if (fs::exists(src_gen))
      fs::copy_file(src_gen, out / "generation_config.json");
    else
      std::ofstream(out / "generation_config.json") << gen.dump(2) << "\n";
  }
  std::fprintf(stdout, "%s\n", out.string().c_str());
  return 0;
}

}  // namespace dm::cli
