// `deepmoe convert`: HF checkpoint -> GGUF with llama.cpp's names, keys and layouts (convert_hf_to_gguf.py:
// TextModel.set_gguf_parameters, DeepseekV2Model, LlamaModel.permute / generate_extra_tensors, Qwen*Model).
// Types: 1-D tensors, *_norm.weight, ffn_gate_inp and biases stay F32; rows not a multiple of 32 fall back to F16
// under q8_0/q4_0, as llama.cpp does.
#include "model/gguf_convert.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <numbers>

#include "core/error.h"
#include "kernels/linear.h"
#include "kernels/quant.h"
#include "loader/weights.h"
#include "model/gguf_names.h"

namespace dm {

namespace {

namespace fs = std::filesystem;
constexpr uint32_t kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ8_0 = 8, kBF16 = 30;

bool ends_with(const std::string& s, const std::string& t) {
  return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
}

// y = x as `type`, row by row (cols values a row).
void encode(const float* x, int64_t rows, int64_t cols, uint32_t type, uint8_t* dst) {
  const int64_t n = rows * cols;
  switch (type) {
    case kF32: std::memcpy(dst, x, size_t(n) * 4); break;
    case kF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h = f32_to_f16(x[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      break;
    case kBF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h = f32_to_bf16(x[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      break;
    case kQ8_0:
      for (int64_t r = 0; r < rows; ++r)
        quantize_row_q8_0(x + r * cols, reinterpret_cast<BlockQ8_0*>(dst) + r * cols / kQK, cols);
      break;
    case kQ4_0:
      for (int64_t r = 0; r < rows; ++r)
        quantize_row_q4_0(x + r * cols, reinterpret_cast<BlockQ4_0*>(dst) + r * cols / kQK, cols);
      break;
    default: DM_CHECK(false, "encode: type ", type);
  }
}

// An HF tensor of `st` as f32 (FP8 with its _scale_inv block scales dequantized). 1-D tensors are one row.
std::vector<float> read_f32(const WeightStore& st, const std::string& hf) {
  const StoredTensor* t = st.find(hf);
  DM_CHECK(t, "read_f32: no tensor ", hf);
  const TensorView& v = t->view;
  int64_t cols = v.ndim() ? v.shape.back() : 1, rows = cols ? v.numel() / cols : 0;
  Weight wt{v.dtype, rows, cols, v.data, nullptr};
  if (v.dtype == DType::F8_E4M3) {
    const StoredTensor* s = st.find(hf + "_scale_inv");
    if (!s || s->view.dtype != DType::F32 ||
        s->view.shape != std::vector<int64_t>{(rows + 127) / 128, (cols + 127) / 128})
      fail(t->file, ": FP8 tensor '", hf, "' needs an F32 '", hf, "_scale_inv' of its 128x128 blocks");
    wt.scale_inv = s->view.f32();
  } else if (v.dtype != DType::F32 && v.dtype != DType::F16 && v.dtype != DType::BF16) {
    fail(t->file, ": tensor '", hf, "' has dtype ", dtype_name(v.dtype), ", which convert cannot read");
  }
  std::vector<float> out(size_t(rows * cols));
  dequantize_rows(wt, 0, rows, out.data());
  return out;
}

struct Converter {
  const JsonConfig& cfg;
  const TensorSource& src;
  GgufWriter& w;
  uint32_t want;  // requested ggml type
  ConvertSummary& sum;

  std::vector<float> f32(const std::string& hf) const {
    if (!src.shapes.count(hf)) fail(cfg.path(), ": checkpoint lacks tensor '", hf, "'");
    return src.read(hf);
  }

  uint32_t pick(const std::string& name, const std::vector<int64_t>& ne) const {
    if (ne.size() <= 1 || ends_with(name, "_norm.weight") || !ends_with(name, ".weight") ||
        name.find(".ffn_gate_inp.") != std::string::npos)
      return kF32;
    if ((want == kQ8_0 || want == kQ4_0) && ne[0] % 32 != 0) return kF16;
    return want;
  }

  // Adds a tensor whose f32 values (row-major, ne[0] innermost) come from `make` at write time.
  void add(const std::string& name, std::vector<int64_t> ne, std::function<std::vector<float>()> make,
           std::optional<uint32_t> force = std::nullopt) {
    uint32_t type = force ? *force : pick(name, ne);
    int64_t cols = ne.empty() ? 1 : ne[0], n = 1;
    for (int64_t d : ne) n *= d;
    int64_t rows = cols ? n / cols : 0;
    w.add_tensor(name, ne, type, [=](uint8_t* dst) {
      std::vector<float> x = make();
      DM_CHECK(int64_t(x.size()) == n, name, ": ", x.size(), " values for ", n);
      encode(x.data(), rows, cols, type, dst);
    });
    ++sum.n_tensors;
    const GgmlTypeInfo* ti = ggml_type_info(type);
    sum.n_bytes += uint64_t(n / ti->block * ti->bytes);
  }

  std::vector<int64_t> ne_of(const std::string& hf) const {
    const auto& s = src.shapes.at(hf);
    return {s.rbegin(), s.rend()};
  }
};

void u32(GgufWriter& w, const std::string& k, int64_t v) { w.set(k, GgufValue::u32(uint32_t(v))); }
void f32(GgufWriter& w, const std::string& k, double v) { w.set(k, GgufValue::f32(float(v))); }

// Keys every architecture gets (TextModel.set_gguf_parameters), in llama.cpp's order.
void base_keys(GgufWriter& w, const std::string& a, const JsonConfig& c, int n_layers) {
  u32(w, a + ".block_count", n_layers);
  u32(w, a + ".context_length", c.get_int("max_position_embeddings"));
  u32(w, a + ".embedding_length", c.get_int("hidden_size"));
  if (c.has("intermediate_size")) u32(w, a + ".feed_forward_length", c.get_int("intermediate_size"));
  u32(w, a + ".attention.head_count", c.get_int("num_attention_heads"));
  u32(w, a + ".attention.head_count_kv", c.get_int("num_key_value_heads", c.get_int("num_attention_heads")));
  if (c.has("rope_scaling")) {
    JsonConfig rs = c.child("rope_scaling");
    std::string type = rs.has("type") ? rs.get_string("type") : rs.get_string("rope_type", "");
    if (type == "yarn" || type == "linear") {
      w.set(a + ".rope.scaling.type", GgufValue::string(type));
      f32(w, a + ".rope.scaling.factor", rs.get_double("factor"));
    }
    if (type == "yarn") {
      if (rs.has("original_max_position_embeddings"))
        u32(w, a + ".rope.scaling.original_context_length", rs.get_int("original_max_position_embeddings"));
      if (rs.has("beta_fast")) f32(w, a + ".rope.scaling.yarn_beta_fast", rs.get_double("beta_fast"));
      if (rs.has("beta_slow")) f32(w, a + ".rope.scaling.yarn_beta_slow", rs.get_double("beta_slow"));
    }
  }
  f32(w, a + ".rope.freq_base", c.get_double("rope_theta", 10000));
  f32(w, a + ".attention.layer_norm_rms_epsilon", c.get_double("rms_norm_eps"));
  if (c.has("num_experts")) u32(w, a + ".expert_count", c.get_int("num_experts"));
  if (c.has("n_routed_experts")) u32(w, a + ".expert_count", c.get_int("n_routed_experts"));
  if (c.has("num_experts_per_tok")) u32(w, a + ".expert_used_count", c.get_int("num_experts_per_tok"));
  if (c.has("n_group")) u32(w, a + ".expert_group_count", c.get_int("n_group"));
  if (c.has("topk_group")) u32(w, a + ".expert_group_used_count", c.get_int("topk_group"));
  if (c.has("scoring_func"))
    u32(w, a + ".expert_gating_func", c.get_string("scoring_func") == "sigmoid" ? 2 : 1);
  if (c.has("head_dim") && a != "deepseek2") {
    u32(w, a + ".attention.key_length", c.get_int("head_dim"));
    u32(w, a + ".attention.value_length", c.get_int("head_dim"));
  }
}

void deepseek_keys(GgufWriter& w, const JsonConfig& c) {
  const std::string a = "deepseek2";
  w.set(a + ".attention.head_count_kv", GgufValue::u32(1));  // MLA stored as MQA of wide heads
  u32(w, a + ".leading_dense_block_count", c.get_int("first_k_dense_replace", 0));
  u32(w, a + ".vocab_size", c.get_int("vocab_size"));
  if (auto q = c.opt_int("q_lora_rank")) u32(w, a + ".attention.q_lora_rank", *q);
  int64_t kv = c.get_int("kv_lora_rank"), nope = c.get_int("qk_nope_head_dim"), rope = c.get_int("qk_rope_head_dim");
  u32(w, a + ".attention.kv_lora_rank", kv);
  u32(w, a + ".attention.key_length", kv + rope);
  u32(w, a + ".attention.value_length", kv);
  u32(w, a + ".attention.key_length_mla", nope + rope);
  u32(w, a + ".attention.value_length_mla", c.get_int("v_head_dim"));
  if (c.get_int("n_routed_experts", 0) > 0) {
    u32(w, a + ".expert_feed_forward_length", c.get_int("moe_intermediate_size"));
    u32(w, a + ".expert_shared_count", c.get_int("n_shared_experts", 0));
    f32(w, a + ".expert_weights_scale", c.get_double("routed_scaling_factor", 1));
    w.set(a + ".expert_weights_norm", GgufValue::boolean(c.get_bool("norm_topk_prob", false)));
    if (!c.has("scoring_func")) u32(w, a + ".expert_gating_func", 1);
  }
  u32(w, a + ".rope.dimension_count", rope);
  if (c.has("rope_scaling") && c.child("rope_scaling").get_string("type", "") == "yarn")
    f32(w, a + ".rope.scaling.yarn_log_multiplier", 0.1 * c.child("rope_scaling").get_double("mscale_all_dim", 0));
}

// Llama-3 rope scaling as llama.cpp's per-frequency divisors (float32 arithmetic, as its converter's torch code).
std::vector<float> llama3_rope_freqs(const JsonConfig& c, int64_t dim) {
  JsonConfig rs = c.child("rope_scaling");
  float base = float(c.get_double("rope_theta", 10000));
  float factor = float(rs.get_double("factor", 8)), low = float(rs.get_double("low_freq_factor", 1));
  float high = float(rs.get_double("high_freq_factor", 4));
  float old_ctx = float(rs.get_int("original_max_position_embeddings", 8192));
  std::vector<float> out;
  for (int64_t i = 0; i < dim; i += 2) {
    float freq = 1.0f / std::pow(base, float(i) / float(dim));
    float wavelen = float(2 * std::numbers::pi) / freq;
    if (wavelen < old_ctx / high) out.push_back(1);
    else if (wavelen > old_ctx / low) out.push_back(factor);
    else {
      float smooth = (old_ctx / wavelen - low) / (high - low);
      out.push_back(1 / ((1 - smooth) / factor + smooth));
    }
  }
  return out;
}

}  // namespace

ConvertSummary convert_to_gguf(const std::string& model_dir, const std::string& out_path,
                               const ConvertOptions& opts) {
  JsonConfig cfg = JsonConfig::load((fs::path(model_dir) / "config.json").string());
  WeightStore st = WeightStore::open_safetensors(model_dir);
  TensorSource src;
  src.dir = model_dir;
  for (const std::string& n : st.names())
    if (!ends_with(n, "_scale_inv")) src.shapes[n] = st.find(n)->view.shape;
  const StoredTensor* e = st.find("model.embed_tokens.weight");
  src.dtype = e ? e->view.dtype : DType::BF16;
  src.read = [&st](const std::string& hf) { return read_f32(st, hf); };
  return convert_to_gguf(cfg, src, out_path, opts);
}

ConvertSummary convert_to_gguf(const JsonConfig& cfg, const TensorSource& src, const std::string& out_path,
                               const ConvertOptions& opts) {
  const std::string& model_dir = src.dir;
  ConvertSummary sum;
  const std::string mt = cfg.get_string("model_type");
  static const std::map<std::string, std::string> archs = {{"deepseek_v2", "deepseek2"}, {"deepseek_v3", "deepseek2"},
                                                           {"qwen2", "qwen2"},           {"llama", "llama"},
                                                           {"qwen3", "qwen3"},           {"qwen3_moe", "qwen3moe"}};
  auto it = archs.find(mt);
  if (it == archs.end()) fail(cfg.path(), ": field 'model_type': '", mt, "' cannot be converted to GGUF");
  const std::string a = sum.arch = it->second;

  std::string type = opts.type;
  if (type == "auto") {
    const DType d = src.dtype;
    type = d == DType::F32 ? "f32" : d == DType::F16 ? "f16" : "bf16";
  }
  static const std::map<std::string, std::pair<uint32_t, uint32_t>> types = {
      {"f32", {kF32, 0}}, {"f16", {kF16, 1}}, {"bf16", {kBF16, 32}}, {"q8_0", {kQ8_0, 7}}, {"q4_0", {kQ4_0, 2}}};
  auto ti = types.find(type);
  if (ti == types.end()) fail("convert: unknown --type '", type, "' (f32, f16, bf16, q8_0, q4_0 or auto)");
  sum.type = type;

  const int n_layers = int(cfg.get_int("num_hidden_layers"));
  std::string name = opts.name.empty() ? fs::path(model_dir).lexically_normal().filename().string() : opts.name;
  if (name.empty()) name = fs::absolute(model_dir).parent_path().filename().string();
  GgufWriter w;
  w.set("general.architecture", GgufValue::string(a));
  w.set("general.type", GgufValue::string("model"));
  w.set("general.name", GgufValue::string(name));
  base_keys(w, a, cfg, n_layers);
  u32(w, "general.file_type", ti->second.second);
  if (a == "deepseek2") deepseek_keys(w, cfg);
  if (a == "qwen3moe") u32(w, a + ".expert_feed_forward_length", cfg.get_int("moe_intermediate_size"));
  const int64_t heads = cfg.get_int("num_attention_heads");
  const int64_t head_dim = cfg.get_int("head_dim", cfg.get_int("hidden_size") / heads);
  if (a == "llama") {
    u32(w, a + ".vocab_size", cfg.get_int("vocab_size"));
    u32(w, a + ".rope.dimension_count", head_dim);
  }
  u32(w, "general.quantization_version", 2);
  if (std::string note = add_tokenizer_metadata(w, model_dir, cfg, cfg.get_int("vocab_size")); !note.empty())
    sum.notes.push_back(note);

  Converter cv{cfg, src, w, ti->second.first, sum};
  if (a == "llama" && cfg.has("rope_scaling") && cfg.child("rope_scaling").get_string("rope_type", "") == "llama3") {
    std::vector<float> f = llama3_rope_freqs(cfg, head_dim);
    cv.add("rope_freqs.weight", {int64_t(f.size())}, [f] { return f; }, kF32);
  }
  // Stacked experts, gathered per (layer, projection) from model.layers.L.mlp.experts.E.P_proj.weight.
  std::map<std::pair<int, std::string>, int64_t> experts;
  for (const auto& [hf, shape] : src.shapes) {
    if (ends_with(hf, "_scale_inv") || ends_with(hf, "rotary_emb.inv_freq")) continue;
    int layer = -1;
    std::string rest;
    if (split_layer_name(hf, "model.layers.", layer, rest) && layer >= n_layers) continue;  // MTP
    if (layer >= 0 && rest.compare(0, 12, "mlp.experts.") == 0) {
      size_t dot = rest.find('.', 12);
      std::string proj = dot == std::string::npos ? "" : rest.substr(dot + 1);
      if (proj != "gate_proj.weight" && proj != "up_proj.weight" && proj != "down_proj.weight")
        fail(cfg.path(), ": unexpected expert tensor '", hf, "'");
      auto& n = experts[{layer, proj.substr(0, proj.find('_'))}];
      n = std::max<int64_t>(n, std::atoll(rest.c_str() + 12) + 1);
      continue;
    }
    if (hf == "lm_head.weight" && cfg.get_bool("tie_word_embeddings", false)) continue;
    std::string g = gguf_name_from_hf(hf);
    if (g.empty()) fail(cfg.path(), ": tensor '", hf, "' has no GGUF name for architecture ", a);
    std::vector<int64_t> ne = cv.ne_of(hf);
    if (a == "deepseek2" && ends_with(g, ".attn_kv_b.weight")) {
      // kv_b_proj [n_head·(nope + v), kv_lora] -> attn_k_b {nope, kv_lora, n_head} + attn_v_b {kv_lora, v, n_head}
      int64_t nope = cfg.get_int("qk_nope_head_dim"), vd = cfg.get_int("v_head_dim"), kv = ne[0];
      if (ne[1] != heads * (nope + vd)) fail(cfg.path(), ": kv_b_proj has ", ne[1], " rows, expected ", heads * (nope + vd));
      std::string base = g.substr(0, g.size() - std::string("attn_kv_b.weight").size());
      cv.add(base + "attn_k_b.weight", {nope, kv, heads}, [=, &cv] {
        std::vector<float> x = cv.f32(hf), out(size_t(heads * kv * nope));
        for (int64_t h = 0; h < heads; ++h)
          for (int64_t c = 0; c < kv; ++c)
            for (int64_t r = 0; r < nope; ++r)
              out[size_t((h * kv + c) * nope + r)] = x[size_t((h * (nope + vd) + r) * kv + c)];
        return out;
      });
      cv.add(base + "attn_v_b.weight", {kv, vd, heads}, [=, &cv] {
        std::vector<float> x = cv.f32(hf), out;
        for (int64_t h = 0; h < heads; ++h)
          out.insert(out.end(), x.begin() + (h * (nope + vd) + nope) * kv, x.begin() + (h + 1) * (nope + vd) * kv);
        return out;
      });
      continue;
    }
    if (a == "llama" && (ends_with(g, ".attn_q.weight") || ends_with(g, ".attn_k.weight"))) {
      // llama.cpp's permute: GGUF row h·hd + 2i + p holds HF row h·hd + p·hd/2 + i.
      int64_t nh = ends_with(g, ".attn_q.weight") ? heads : cfg.get_int("num_key_value_heads", heads);
      int64_t rows = ne[1], cols = ne[0], hd = rows / nh;
      cv.add(g, ne, [=, &cv] {
        std::vector<float> x = cv.f32(hf), out(x.size());
        for (int64_t h = 0; h < nh; ++h)
          for (int64_t i = 0; i < hd / 2; ++i)
            for (int64_t p = 0; p < 2; ++p)
              std::memcpy(&out[size_t((h * hd + 2 * i + p) * cols)], &x[size_t((h * hd + p * hd / 2 + i) * cols)],
                          size_t(cols) * 4);
        return out;
      });
      continue;
    }
    cv.add(g, ne, [hf, &cv] { return cv.f32(hf); });
  }
  for (auto& [key, n] : experts) {
    auto [layer, proj] = key;
    std::vector<std::string> names;
    for (int64_t e = 0; e < n; ++e) names.push_back(cat("model.layers.", layer, ".mlp.experts.", e, ".", proj, "_proj.weight"));
    for (auto& hf : names)
      if (!src.shapes.count(hf)) fail(cfg.path(), ": checkpoint lacks tensor '", hf, "'");
    std::vector<int64_t> ne = cv.ne_of(names[0]);
    ne.push_back(n);
    cv.add(cat("blk.", layer, ".ffn_", proj, "_exps.weight"), ne, [names, &cv] {
      std::vector<float> out;
      for (auto& hf : names) {
        std::vector<float> x = cv.f32(hf);
        out.insert(out.end(), x.begin(), x.end());
      }
      return out;
    });
  }
  w.write(out_path);
  return sum;
}

}  // namespace dm
