// Parsing of Qwen2 / Llama / Qwen3 / Qwen3-MoE config.json into DenseConfig, with the defaults of the
// corresponding transformers config classes and checks that name the offending field.
#include "loader/dense_config.h"

#include <algorithm>

#include "core/error.h"

namespace dm {

namespace {

// Bounds that keep every shape product far from int64 overflow and reject nonsense early (no published model
// comes near them).
constexpr int64_t kMaxDim = int64_t(1) << 24;
constexpr int64_t kMaxLayers = 1024, kMaxHeads = 4096, kMaxExperts = 4096;

int64_t positive(const JsonConfig& c, const std::string& key, std::optional<int64_t> dflt = std::nullopt,
                 int64_t max = kMaxDim) {
  int64_t v = dflt ? c.get_int(key, *dflt) : c.get_int(key);
  if (v <= 0) fail(c.path(), ": field '", key, "' must be > 0, found ", v);
  if (v > max) fail(c.path(), ": field '", key, "' is ", v, ", more than the supported ", max);
  return v;
}

std::vector<int32_t> token_ids(const JsonConfig& c, const std::string& key) {
  std::vector<int32_t> out;
  if (!c.has(key)) return out;
  const auto& v = c.json()[key];
  auto one = [&](const nlohmann::json& x) {
    if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() > INT32_MAX)
      fail(c.path(), ": field '", key, "' must hold token ids, found ", v.dump());
    out.push_back(int32_t(x.get<int64_t>()));
  };
  if (v.is_array()) {
    for (const auto& x : v) one(x);
  } else {
    one(v);
  }
  return out;
}

void parse_rope(const JsonConfig& c, DenseConfig& d) {
  // transformers >= 5 folds rope_theta into `rope_parameters`; older files use rope_theta + rope_scaling.
  const char* key = c.has("rope_parameters") ? "rope_parameters" : "rope_scaling";
  d.rope_theta = c.get_double("rope_theta", 10000.0);
  if (!c.has(key)) return;
  JsonConfig rs = c.child(key);
  d.rope_theta = rs.get_double("rope_theta", d.rope_theta);
  std::string type = rs.has("rope_type") ? rs.get_string("rope_type") : rs.get_string("type", "default");
  if (type == "default") return;
  if (type != "llama3") fail(c.path(), ": field '", key, ".rope_type' is '", type, "'; supported: default, llama3");
  d.rope_llama3 = true;
  d.llama3.factor = rs.get_double("factor");
  d.llama3.low_freq_factor = rs.get_double("low_freq_factor");
  d.llama3.high_freq_factor = rs.get_double("high_freq_factor");
  d.llama3.original_max_position_embeddings =
      positive(rs, "original_max_position_embeddings", std::nullopt, int64_t(1) << 40);
  if (!(d.llama3.factor > 0)) fail(rs.path(), ": field 'factor' must be > 0");
  if (!(d.llama3.high_freq_factor > d.llama3.low_freq_factor) || !(d.llama3.low_freq_factor > 0))
    fail(rs.path(), ": fields 'low_freq_factor' and 'high_freq_factor' must satisfy 0 < low < high");
}

void reject_sliding_window(const JsonConfig& c) {
  if (c.get_bool("use_sliding_window", false))
    fail(c.path(), ": field 'use_sliding_window' is true; sliding-window attention is not supported");
  if (c.get_bool("use_mrope", false)) fail(c.path(), ": field 'use_mrope' is true; multimodal rope is not supported");
  if (!c.has("layer_types")) return;
  const auto& lt = c.json()["layer_types"];
  if (!lt.is_array()) fail(c.path(), ": field 'layer_types' must be an array");
  for (const auto& t : lt)
    if (!t.is_string() || t.get<std::string>() != "full_attention")
      fail(c.path(), ": field 'layer_types' holds ", t.dump(), "; only full_attention is supported");
}

void parse_moe(const JsonConfig& c, DenseConfig& d) {
  d.num_experts = positive(c, "num_experts", std::nullopt, kMaxExperts);
  d.num_experts_per_tok = positive(c, "num_experts_per_tok");
  if (d.num_experts_per_tok > d.num_experts)
    fail(c.path(), ": field 'num_experts_per_tok' (", d.num_experts_per_tok, ") exceeds num_experts (", d.num_experts,
         ")");
  d.moe_intermediate_size = positive(c, "moe_intermediate_size");
  d.norm_topk_prob = c.get_bool("norm_topk_prob", false);
  d.decoder_sparse_step = positive(c, "decoder_sparse_step", 1);
  if (c.has("mlp_only_layers")) {
    const auto& m = c.json()["mlp_only_layers"];
    if (!m.is_array()) fail(c.path(), ": field 'mlp_only_layers' must be an array of layer indices");
    for (const auto& x : m) {
      if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() >= d.num_hidden_layers)
        fail(c.path(), ": field 'mlp_only_layers' holds ", x.dump(), "; expected indices in [0, ", d.num_hidden_layers,
             ")");
      d.mlp_only_layers.push_back(x.get<int64_t>());
    }
  }
  std::string scoring = c.get_string("scoring_func", "softmax");
  if (scoring != "softmax") fail(c.path(), ": field 'scoring_func' is '", scoring, "'; Qwen3-MoE routes by softmax");
  if (c.get_int("shared_expert_intermediate_size", 0) != 0)
    fail(c.path(), ": field 'shared_expert_intermediate_size' is set; shared experts (Qwen2-MoE) are not supported");
}

}  // namespace

bool is_dense_model_type(const std::string& t) {
  return t == "qwen2" || t == "llama" || t == "qwen3" || t == "qwen3_moe";
}

bool DenseConfig::layer_is_moe(int i) const {
  if (num_experts == 0) return false;
  if (std::find(mlp_only_layers.begin(), mlp_only_layers.end(), int64_t(i)) != mlp_only_layers.end()) return false;
  return (i + 1) % decoder_sparse_step == 0;
}

DenseConfig parse_dense_config(const JsonConfig& c) {
  DenseConfig d;
  d.model_type = c.get_string("model_type");
  if (!is_dense_model_type(d.model_type))
    fail(c.path(), ": field 'model_type' is '", d.model_type, "'; expected qwen2, llama, qwen3 or qwen3_moe");
  static const std::pair<const char*, const char*> kArch[] = {{"qwen2", "Qwen2ForCausalLM"},
                                                              {"llama", "LlamaForCausalLM"},
                                                              {"qwen3", "Qwen3ForCausalLM"},
                                                              {"qwen3_moe", "Qwen3MoeForCausalLM"}};
  for (auto [t, a] : kArch)
    if (d.model_type == t) d.architecture = a;
  if (c.has("architectures")) {
    const auto& a = c.json()["architectures"];
    if (!a.is_array() || a.empty() || !a[0].is_string())
      fail(c.path(), ": field 'architectures' must be a non-empty array of strings");
    if (a[0].get<std::string>() != d.architecture)
      fail(c.path(), ": field 'architectures' is ", a.dump(), " but model_type '", d.model_type, "' means ",
           d.architecture);
  }
  const char* dtype_key = c.has("dtype") ? "dtype" : "torch_dtype";
  d.dtype = c.get_string(dtype_key, "");
  if (!d.dtype.empty() && d.dtype != "float32" && d.dtype != "bfloat16" && d.dtype != "float16")
    fail(c.path(), ": field '", dtype_key, "' is '", d.dtype, "'; expected float32, bfloat16 or float16");

  d.vocab_size = positive(c, "vocab_size");
  d.hidden_size = positive(c, "hidden_size");
  d.intermediate_size = positive(c, "intermediate_size");
  d.num_hidden_layers = int(positive(c, "num_hidden_layers", std::nullopt, kMaxLayers));
  d.num_attention_heads = positive(c, "num_attention_heads", std::nullopt, kMaxHeads);
  d.num_key_value_heads = positive(c, "num_key_value_heads", d.num_attention_heads);
  if (d.num_attention_heads % d.num_key_value_heads != 0)
    fail(c.path(), ": field 'num_key_value_heads' (", d.num_key_value_heads, ") must divide num_attention_heads (",
         d.num_attention_heads, ")");
  const bool qwen3 = d.model_type == "qwen3" || d.model_type == "qwen3_moe";
  if (!qwen3 && !c.has("head_dim") && d.hidden_size % d.num_attention_heads != 0)
    fail(c.path(), ": field 'hidden_size' must be a multiple of num_attention_heads when head_dim is absent");
  d.head_dim = positive(c, "head_dim", qwen3 ? 128 : d.hidden_size / d.num_attention_heads);
  if (d.head_dim % 2 != 0) fail(c.path(), ": field 'head_dim' must be even for rope, found ", d.head_dim);
  d.max_position_embeddings = positive(c, "max_position_embeddings", 2048, int64_t(1) << 40);
  d.rms_norm_eps = c.get_double("rms_norm_eps", 1e-6);
  if (!(d.rms_norm_eps > 0)) fail(c.path(), ": field 'rms_norm_eps' must be > 0");
  std::string act = c.get_string("hidden_act", "silu");
  if (act != "silu") fail(c.path(), ": field 'hidden_act' is '", act, "'; only silu is supported");
  parse_rope(c, d);
  if (!(d.rope_theta > 0)) fail(c.path(), ": field 'rope_theta' must be > 0");
  d.rope_adjacent = c.get_bool("deepmoe_rope_adjacent", false);
  if (c.has("deepmoe_rope_freq_factors")) {
    const auto& f = c.json()["deepmoe_rope_freq_factors"];
    if (!f.is_array() || int64_t(f.size()) != d.head_dim / 2)
      fail(c.path(), ": field 'deepmoe_rope_freq_factors' must be an array of head_dim/2 = ", d.head_dim / 2,
           " numbers");
    for (const auto& x : f) {
      if (!x.is_number() || !(x.get<double>() > 0))
        fail(c.path(), ": field 'deepmoe_rope_freq_factors' holds ", x.dump(), "; expected positive numbers");
      d.rope_freq_factors.push_back(x.get<double>());
    }
    if (d.rope_llama3) fail(c.path(), ": fields 'deepmoe_rope_freq_factors' and 'rope_scaling' exclude each other");
  }
  reject_sliding_window(c);

  if (d.model_type == "qwen2") {
    d.qkv_bias = true;
  } else {
    d.qkv_bias = d.o_bias = c.get_bool("attention_bias", false);
  }
  if (d.model_type == "llama") {
    d.mlp_bias = c.get_bool("mlp_bias", false);
    if (c.get_int("pretraining_tp", 1) < 1) fail(c.path(), ": field 'pretraining_tp' must be >= 1");
  }
  d.qk_norm = qwen3;
  d.tie_word_embeddings = c.get_bool("tie_word_embeddings", false);
  if (d.model_type == "qwen3_moe") parse_moe(c, d);

  std::vector<int32_t> bos = token_ids(c, "bos_token_id");
  if (bos.size() > 1) fail(c.path(), ": field 'bos_token_id' must be one token id");
  d.bos_token_id = bos.empty() ? -1 : bos[0];
  d.eos_token_ids = token_ids(c, "eos_token_id");
  return d;
}

}  // namespace dm
