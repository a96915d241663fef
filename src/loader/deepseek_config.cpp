// DeepSeek config.json -> DeepseekConfig, with defaults from the HF DeepseekV2Config / DeepseekV3Config classes
// where a field may be absent, and checks of every value the forward pass relies on.
// YaRN factor m: DeepSeek-V3 inference/model.py (`0.1 * mscale * math.log(rope_factor) + 1.0`).
#include "loader/deepseek_config.h"

#include <cmath>

#include "core/error.h"

namespace dm {

namespace {

[[noreturn]] void bad_field(const DeepseekConfig& c, const std::string& field, const std::string& what) {
  fail(c.path, ": field '", field, "' ", what);
}

// Sizes are bounded far above any real checkpoint so that shape arithmetic cannot overflow.
constexpr int64_t kMaxDim = int64_t(1) << 22;

void require_positive(const DeepseekConfig& c, const std::string& field, int64_t v) {
  if (v <= 0) bad_field(c, field, cat("must be > 0, found ", v));
  if (v > kMaxDim) bad_field(c, field, cat("is implausibly large (", v, ")"));
}

// A layer count or index: read as int64 and range-checked before narrowing.
int small_int(const JsonConfig& j, const DeepseekConfig& c, const std::string& field, int64_t dflt) {
  int64_t v = j.get_int(field, dflt);
  if (v < 0 || v > 4096) bad_field(c, field, cat("must be in [0, 4096], found ", v));
  return int(v);
}

void parse_rope_scaling(const JsonConfig& j, DeepseekConfig& c) {
  if (!j.has("rope_scaling")) return;
  JsonConfig rs = j.child("rope_scaling");
  std::string type = rs.has("type") ? rs.get_string("type") : rs.get_string("rope_type", "");
  if (type == "default" || type.empty()) return;
  if (type != "yarn")
    bad_field(c, "rope_scaling.type", cat("is '", type, "'; only 'yarn' (or no rope_scaling) is supported"));
  c.yarn = true;
  c.rope_factor = rs.get_double("factor");
  c.original_max_position_embeddings = rs.get_int("original_max_position_embeddings");
  c.beta_fast = rs.get_double("beta_fast", 32);
  c.beta_slow = rs.get_double("beta_slow", 1);
  c.mscale = rs.get_double("mscale", 1);
  c.mscale_all_dim = rs.get_double("mscale_all_dim", 0);
  if (!(c.rope_factor >= 1)) bad_field(c, "rope_scaling.factor", cat("must be >= 1, found ", c.rope_factor));
  if (c.original_max_position_embeddings <= 0)
    bad_field(c, "rope_scaling.original_max_position_embeddings", "must be > 0");
  if (!(c.beta_fast > 0) || !(c.beta_slow > 0)) bad_field(c, "rope_scaling.beta_fast/beta_slow", "must be > 0");
}

void parse_quantization(const JsonConfig& j, DeepseekConfig& c) {
  if (!j.has("quantization_config")) return;
  JsonConfig q = j.child("quantization_config");
  std::string method = q.get_string("quant_method", "");
  if (method != "fp8")
    bad_field(c, "quantization_config.quant_method", cat("is '", method, "'; only 'fp8' is supported"));
  std::string fmt = q.get_string("fmt", "e4m3");
  if (fmt != "e4m3") bad_field(c, "quantization_config.fmt", cat("is '", fmt, "'; only 'e4m3' is supported"));
  const auto& bs = q.json().find("weight_block_size");
  if (bs == q.json().end() || !bs->is_array() || bs->size() != 2 || !(*bs)[0].is_number_integer() ||
      !(*bs)[1].is_number_integer() || (*bs)[0].get<int64_t>() != 128 || (*bs)[1].get<int64_t>() != 128)
    bad_field(c, "quantization_config.weight_block_size", "must be [128, 128]");
  c.fp8 = true;
}

std::vector<int32_t> token_ids(const JsonConfig& j, const std::string& key) {
  std::vector<int32_t> out;
  if (!j.has(key)) return out;
  const auto& v = j.json()[key];
  auto one = [&](const nlohmann::json& e) {
    if (!e.is_number_integer() || e.get<int64_t>() < 0 || e.get<int64_t>() > INT32_MAX)
      fail(j.path(), ": field '", key, "' must be a token id or a list of them, found ", v.dump());
    out.push_back(int32_t(e.get<int64_t>()));
  };
  if (v.is_array())
    for (auto& e : v) one(e);
  else
    one(v);
  return out;
}

}  // namespace

double DeepseekConfig::yarn_mscale(double m) const {
  if (!yarn || m == 0 || rope_factor <= 1) return 1.0;
  return 0.1 * m * std::log(rope_factor) + 1.0;
}

double DeepseekConfig::softmax_scale() const {
  double m = yarn_mscale(mscale_all_dim);
  return std::pow(double(qk_head_dim()), -0.5) * m * m;
}

bool is_deepseek_config(const JsonConfig& config) {
  std::string mt = config.get_string("model_type", "");
  return mt == "deepseek_v2" || mt == "deepseek_v3";
}

DeepseekConfig parse_deepseek_config(const JsonConfig& j) {
  DeepseekConfig c;
  c.path = j.path();
  c.model_type = j.get_string("model_type");
  if (c.model_type != "deepseek_v2" && c.model_type != "deepseek_v3")
    bad_field(c, "model_type", cat("is '", c.model_type, "'; expected deepseek_v2 or deepseek_v3"));
  const bool v3 = c.model_type == "deepseek_v3";
  c.architecture = v3 ? "DeepseekV3ForCausalLM" : "DeepseekV2ForCausalLM";
  if (j.has("architectures")) {
    const auto& a = j.json()["architectures"];
    if (!a.is_array() || a.empty() || !a[0].is_string())
      bad_field(c, "architectures", "must be a list of class names");
    std::string arch = a[0].get<std::string>();
    if (arch != "DeepseekV2ForCausalLM" && arch != "DeepseekV3ForCausalLM")
      bad_field(c, "architectures", cat("is '", arch, "'; expected DeepseekV2ForCausalLM or DeepseekV3ForCausalLM"));
    c.architecture = arch;
  }

  c.vocab_size = j.get_int("vocab_size");
  c.hidden_size = j.get_int("hidden_size");
  j.get_int("num_hidden_layers");  // required: names the field if missing
  c.num_hidden_layers = small_int(j, c, "num_hidden_layers", 0);
  c.num_attention_heads = j.get_int("num_attention_heads");
  c.max_position_embeddings = j.get_int("max_position_embeddings", 4096);
  c.num_nextn_predict_layers = small_int(j, c, "num_nextn_predict_layers", 0);
  c.rms_norm_eps = j.get_double("rms_norm_eps", 1e-6);
  c.tie_word_embeddings = j.get_bool("tie_word_embeddings", false);
  for (auto [k, v] : {std::pair<const char*, int64_t>{"vocab_size", c.vocab_size}, {"hidden_size", c.hidden_size},
                      {"num_hidden_layers", c.num_hidden_layers}, {"num_attention_heads", c.num_attention_heads}})
    require_positive(c, k, v);
  if (!(c.rms_norm_eps > 0)) bad_field(c, "rms_norm_eps", "must be > 0");
  if (j.get_string("hidden_act", "silu") != "silu")
    bad_field(c, "hidden_act", cat("is '", j.get_string("hidden_act"), "'; only 'silu' is supported"));
  if (j.get_bool("attention_bias", false)) bad_field(c, "attention_bias", "true is not supported");

  auto q = j.opt_int("q_lora_rank");
  c.q_lora_rank = q.value_or(0);
  if (q) require_positive(c, "q_lora_rank", *q);
  c.kv_lora_rank = j.get_int("kv_lora_rank");
  c.qk_nope_head_dim = j.get_int("qk_nope_head_dim");
  c.qk_rope_head_dim = j.get_int("qk_rope_head_dim");
  c.v_head_dim = j.get_int("v_head_dim");
  for (auto [k, v] : {std::pair<const char*, int64_t>{"kv_lora_rank", c.kv_lora_rank},
                      {"qk_nope_head_dim", c.qk_nope_head_dim}, {"qk_rope_head_dim", c.qk_rope_head_dim},
                      {"v_head_dim", c.v_head_dim}})
    require_positive(c, k, v);
  if (c.qk_rope_head_dim % 2) bad_field(c, "qk_rope_head_dim", "must be even");

  c.rope_theta = j.get_double("rope_theta", 10000);
  if (!(c.rope_theta > 1)) bad_field(c, "rope_theta", "must be > 1");
  parse_rope_scaling(j, c);

  c.intermediate_size = j.get_int("intermediate_size");
  require_positive(c, "intermediate_size", c.intermediate_size);
  c.n_routed_experts = j.get_int("n_routed_experts", 0);
  c.first_k_dense_replace = small_int(j, c, "first_k_dense_replace", 0);
  c.moe_layer_freq = small_int(j, c, "moe_layer_freq", 1);
  if (c.n_routed_experts < 0 || c.n_routed_experts > 16384)
    bad_field(c, "n_routed_experts", cat("must be in [0, 16384], found ", c.n_routed_experts));
  require_positive(c, "moe_layer_freq", c.moe_layer_freq);
  if (c.n_routed_experts > 0) {
    c.moe_intermediate_size = j.get_int("moe_intermediate_size");
    c.n_shared_experts = j.get_int("n_shared_experts", 0);
    c.num_experts_per_tok = j.get_int("num_experts_per_tok");
    require_positive(c, "moe_intermediate_size", c.moe_intermediate_size);
    require_positive(c, "num_experts_per_tok", c.num_experts_per_tok);
    if (c.n_shared_experts < 0 || c.n_shared_experts > 1024)
      bad_field(c, "n_shared_experts", cat("must be in [0, 1024], found ", c.n_shared_experts));
    if (c.num_experts_per_tok > c.n_routed_experts)
      bad_field(c, "num_experts_per_tok", cat(c.num_experts_per_tok, " exceeds n_routed_experts ", c.n_routed_experts));

    std::string sf = j.get_string("scoring_func", v3 ? "sigmoid" : "softmax");
    if (sf == "softmax") c.scoring_func = ScoringFunc::Softmax;
    else if (sf == "sigmoid") c.scoring_func = ScoringFunc::Sigmoid;
    else bad_field(c, "scoring_func", cat("is '", sf, "'; supported: softmax, sigmoid"));
    std::string tm = j.get_string("topk_method", v3 ? "noaux_tc" : "greedy");
    if (tm == "greedy") c.topk_method = TopkMethod::Greedy;
    else if (tm == "group_limited_greedy") c.topk_method = TopkMethod::GroupLimitedGreedy;
    else if (tm == "noaux_tc") c.topk_method = TopkMethod::NoauxTc;
    else bad_field(c, "topk_method", cat("is '", tm, "'; supported: greedy, group_limited_greedy, noaux_tc"));

    c.n_group = j.get_int("n_group", 1);
    c.topk_group = j.get_int("topk_group", c.n_group);
    require_positive(c, "n_group", c.n_group);
    require_positive(c, "topk_group", c.topk_group);
    if (c.topk_group > c.n_group) bad_field(c, "topk_group", cat(c.topk_group, " exceeds n_group ", c.n_group));
    if (c.n_routed_experts % c.n_group)
      bad_field(c, "n_group", cat("must divide n_routed_experts ", c.n_routed_experts, ", found ", c.n_group));
    if (c.topk_method != TopkMethod::Greedy && c.n_group > 1) {
      const int64_t per_group = c.n_routed_experts / c.n_group;
      if (c.topk_method == TopkMethod::NoauxTc && per_group < 2)
        bad_field(c, "n_group", "noaux_tc scores a group by its top-2 experts: need >= 2 experts per group");
      if (c.num_experts_per_tok > c.topk_group * per_group)
        bad_field(c, "num_experts_per_tok", "exceeds the experts in the topk_group kept groups");
    }
    c.norm_topk_prob = j.get_bool("norm_topk_prob", false);
    c.routed_scaling_factor = j.get_double("routed_scaling_factor", 1.0);
    if (!std::isfinite(c.routed_scaling_factor)) bad_field(c, "routed_scaling_factor", "must be finite");
  }

  parse_quantization(j, c);
  c.torch_dtype = j.has("torch_dtype") ? j.get_string("torch_dtype") : j.get_string("dtype", "");
  auto bos = token_ids(j, "bos_token_id");
  if (!bos.empty()) c.bos_token_id = bos[0];
  c.eos_token_ids = token_ids(j, "eos_token_id");
  return c;
}

}  // namespace dm
