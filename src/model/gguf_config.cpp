// GGUF metadata -> Hugging Face config.json fields, per architecture. Key names: llama.cpp gguf-py constants.py
// (Keys.LLM / Keys.Attention / Keys.Rope); their HF sources: llama.cpp convert_hf_to_gguf.py (DeepseekV2Model,
// Qwen2Model, LlamaModel, Qwen3Model, Qwen3MoeModel). Llama-3 rope: transformers' _compute_llama3_parameters.
#include <cmath>
#include <numbers>

#include "core/error.h"
#include "model/gguf_model.h"

namespace dm {

namespace {

using nlohmann::json;

// HF llama3 rope: the divisor of inv_freq at x = inv_freq / 2π, for parameters (factor, low, high, orig).
double llama3_divisor(double x, double factor, double low, double high, double orig) {
  double wavelen = 1 / x;
  if (wavelen < orig / high) return 1;
  if (wavelen > orig / low) return factor;
  double s = (orig * x - low) / (high - low);
  return 1 / ((1 - s) / factor + s);
}

// rope_freqs.weight holds, for each frequency i < d/2, the divisor f_i that llama.cpp's converter computed from HF's
// llama3 parameters. Only A = orig/(high-low) and B = low/(high-low) shape the divisors (smooth s = A·x - B, clamped
// to [0, 1]), so we solve for A, B from the points where 1 < f < factor (or place the ramp between the kept and the
// divided frequencies when they are too few), pick orig, and check that every f_i is reproduced.
json llama3_rope_scaling(const std::vector<double>& f, double theta, int64_t d, const std::string& ctx) {
  double factor = 1;
  for (double v : f) factor = std::max(factor, v);
  if (factor <= 1 + 1e-6) return nullptr;
  std::vector<double> x(f.size());
  for (size_t i = 0; i < f.size(); ++i) x[i] = std::pow(theta, -2.0 * double(i) / double(d)) / (2 * std::numbers::pi);
  double x_keep = -1, x_full = -1;  // smallest x kept (f = 1), largest x fully divided (f = factor)
  std::vector<std::pair<double, double>> smooth;  // (x, s)
  for (size_t i = 0; i < f.size(); ++i) {
    if (std::fabs(f[i] - 1) <= 1e-5) {
      x_keep = x_keep < 0 ? x[i] : std::min(x_keep, x[i]);
    } else if (std::fabs(f[i] - factor) <= 1e-5 * factor) {
      x_full = std::max(x_full, x[i]);
    } else {
      smooth.emplace_back(x[i], (1 / f[i] - 1 / factor) / (1 - 1 / factor));
    }
  }
  double A = 0, B = 0;
  if (smooth.size() >= 2) {
    auto [xa, sa] = smooth.front();
    auto [xb, sb] = smooth.back();
    A = (sa - sb) / (xa - xb);
    B = A * xa - sa;
  } else if (smooth.size() == 1) {
    auto [x1, s1] = smooth[0];
    if (x_keep > 0) A = std::max(A, (1 - s1) / (x_keep - x1));
    if (x_full > 0) A = std::max(A, s1 / (x1 - x_full));
    if (A <= 0) A = 1 / x1;
    B = A * x1 - s1;
  } else if (x_keep > 0 && x_full > 0) {
    A = 1 / (x_keep - x_full);
    B = A * x_full;
  } else {  // every frequency divided: put the ramp above the highest frequency
    A = 1 / x_full;
    B = 2;
  }
  if (!(A > 0) || !(B > 0)) fail(ctx, ": rope_freqs.weight does not follow Llama-3 rope scaling");
  double orig = std::max(1.0, std::round(A / B));
  double low = B * orig / A, high = (B + 1) * orig / A;
  for (size_t i = 0; i < f.size(); ++i)
    if (std::fabs(llama3_divisor(x[i], factor, low, high, orig) - f[i]) > 1e-5 * f[i])
      fail(ctx, ": rope_freqs.weight[", i, "] = ", f[i], " does not follow Llama-3 rope scaling");
  return {{"rope_type", "llama3"},
          {"factor", factor},
          {"low_freq_factor", low},
          {"high_freq_factor", high},
          {"original_max_position_embeddings", int64_t(orig)}};
}

struct Keys {
  const GgufFile& g;
  std::string a;  // architecture prefix
  int64_t i(const std::string& k) const { return g.get_int(a + "." + k); }
  std::optional<int64_t> oi(const std::string& k) const { return g.opt_int(a + "." + k); }
  std::optional<double> of(const std::string& k) const { return g.opt_float(a + "." + k); }
};

void common(const Keys& k, json& c) {
  const GgufFile& g = k.g;
  int64_t nextn = k.oi("nextn_predict_layers").value_or(0);
  c["num_hidden_layers"] = k.i("block_count") - nextn;
  if (nextn) c["num_nextn_predict_layers"] = nextn;
  c["hidden_size"] = k.i("embedding_length");
  c["num_attention_heads"] = k.i("attention.head_count");
  c["num_key_value_heads"] = k.oi("attention.head_count_kv").value_or(c["num_attention_heads"].get<int64_t>());
  c["max_position_embeddings"] = k.oi("context_length").value_or(4096);
  c["rms_norm_eps"] = k.of("attention.layer_norm_rms_epsilon").value_or(1e-6);
  c["rope_theta"] = k.of("rope.freq_base").value_or(10000.0);
  if (auto ff = k.oi("feed_forward_length")) c["intermediate_size"] = *ff;
  c["hidden_act"] = "silu";
  if (auto v = k.oi("vocab_size")) {
    c["vocab_size"] = *v;
  } else if (g.has("tokenizer.ggml.tokens")) {
    c["vocab_size"] = g.get_array("tokenizer.ggml.tokens", GgufType::STRING).strings.size();
  } else if (const GgufTensor* e = g.find_tensor("token_embd.weight"); e && e->info->ne.size() == 2) {
    c["vocab_size"] = e->info->ne[1];
  } else {
    fail(g.path(), ": cannot tell the vocabulary size (no ", k.a, ".vocab_size, tokens or token_embd.weight)");
  }
  c["tie_word_embeddings"] = g.find_tensor("output.weight") == nullptr;
  if (auto b = g.opt_int("tokenizer.ggml.bos_token_id")) c["bos_token_id"] = *b;
  if (auto e = g.opt_int("tokenizer.ggml.eos_token_id")) c["eos_token_id"] = *e;
  c["torch_dtype"] = "float32";  // informational: GGUF tensors carry their own types
}

// rope.scaling.* -> rope_scaling (yarn or linear); null when absent or "none".
json rope_scaling(const Keys& k) {
  auto type = k.g.opt_string(k.a + ".rope.scaling.type");
  if (!type || *type == "none") return nullptr;
  json r = {{"type", *type}, {"rope_type", *type}, {"factor", k.of("rope.scaling.factor").value_or(1.0)}};
  if (*type == "yarn") {
    if (auto o = k.oi("rope.scaling.original_context_length")) r["original_max_position_embeddings"] = *o;
    r["beta_fast"] = k.of("rope.scaling.yarn_beta_fast").value_or(32.0);
    r["beta_slow"] = k.of("rope.scaling.yarn_beta_slow").value_or(1.0);
    // llama.cpp stores 0.1·mscale_all_dim as f32; going through f32 again recovers the config's value.
    if (auto m = k.of("rope.scaling.yarn_log_multiplier")) {
      float all_dim = float(*m / 0.1);
      r["mscale_all_dim"] = double(all_dim);
      r["mscale"] = double(all_dim);
    }
  }
  return r;
}

json deepseek2(const Keys& k) {
  const GgufFile& g = k.g;
  json c;
  common(k, c);
  bool has_bias = false;
  for (auto& t : g.tensors()) has_bias |= t.name().find(".exp_probs_b.") != std::string::npos;
  int64_t gating = k.oi("expert_gating_func").value_or(1);  // absent in early V2 files: softmax
  if (gating != 1 && gating != 2) fail(g.path(), ": ", k.a, ".expert_gating_func ", gating, " is not 1 or 2");
  bool v3 = has_bias || gating == 2;
  c["model_type"] = v3 ? "deepseek_v3" : "deepseek_v2";
  c["architectures"] = {v3 ? "DeepseekV3ForCausalLM" : "DeepseekV2ForCausalLM"};
  c["num_key_value_heads"] = c["num_attention_heads"];  // head_count_kv is 1 in the MLA-absorbed layout
  auto q_lora = k.oi("attention.q_lora_rank");
  c["q_lora_rank"] = q_lora ? json(*q_lora) : json(nullptr);
  c["kv_lora_rank"] = k.i("attention.kv_lora_rank");
  int64_t rope = k.i("rope.dimension_count");
  // Newer files (split attn_k_b / attn_v_b) put the per-head sizes in *_mla keys and the absorbed ones in the others.
  int64_t key = k.oi("attention.key_length_mla").value_or(k.i("attention.key_length"));
  int64_t value = k.oi("attention.value_length_mla").value_or(k.i("attention.value_length"));
  if (key <= rope) fail(g.path(), ": key length ", key, " must exceed rope.dimension_count ", rope);
  c["qk_rope_head_dim"] = rope;
  c["qk_nope_head_dim"] = key - rope;
  c["v_head_dim"] = value;
  c["rope_scaling"] = rope_scaling(k);
  int64_t n_experts = k.oi("expert_count").value_or(0);
  c["n_routed_experts"] = n_experts;
  if (n_experts > 0) {
    c["num_experts_per_tok"] = k.i("expert_used_count");
    c["n_shared_experts"] = k.oi("expert_shared_count").value_or(0);
    c["moe_intermediate_size"] = k.i("expert_feed_forward_length");
    c["first_k_dense_replace"] = k.oi("leading_dense_block_count").value_or(0);
    c["moe_layer_freq"] = 1;
    c["routed_scaling_factor"] = k.of("expert_weights_scale").value_or(1.0);
    c["norm_topk_prob"] = g.opt_bool(k.a + ".expert_weights_norm").value_or(false);
    c["scoring_func"] = gating == 2 ? "sigmoid" : "softmax";
    int64_t groups = k.oi("expert_group_count").value_or(1);
    c["n_group"] = groups;
    c["topk_group"] = k.oi("expert_group_used_count").value_or(groups);
    c["topk_method"] = has_bias ? "noaux_tc" : groups > 1 ? "group_limited_greedy" : "greedy";
  }
  return c;
}

json dense(const Keys& k, const char* model_type, const char* arch) {
  json c;
  common(k, c);
  c["model_type"] = model_type;
  c["architectures"] = {arch};
  int64_t heads = c["num_attention_heads"];
  c["head_dim"] = k.oi("attention.key_length").value_or(c["hidden_size"].get<int64_t>() / heads);
  c["rope_scaling"] = rope_scaling(k);
  return c;
}

}  // namespace

json hf_config_from_gguf(const GgufFile& g) {
  Keys k{g, g.architecture()};
  json c;
  if (k.a == "deepseek2") {
    c = deepseek2(k);
  } else if (k.a == "qwen2") {
    c = dense(k, "qwen2", "Qwen2ForCausalLM");
    c.erase("head_dim");  // Qwen2 derives it; its config has none
  } else if (k.a == "qwen3") {
    c = dense(k, "qwen3", "Qwen3ForCausalLM");
  } else if (k.a == "qwen3moe") {
    c = dense(k, "qwen3_moe", "Qwen3MoeForCausalLM");
    c["num_experts"] = k.i("expert_count");
    c["num_experts_per_tok"] = k.i("expert_used_count");
    c["moe_intermediate_size"] = k.i("expert_feed_forward_length");
    c["norm_topk_prob"] = true;  // llama.cpp always renormalises the top-k weights of qwen3moe
    c["decoder_sparse_step"] = 1;
    c["mlp_only_layers"] = json::array();
  } else if (k.a == "llama") {
    c = dense(k, "llama", "LlamaForCausalLM");
    if (const GgufTensor* t = g.find_tensor("rope_freqs.weight")) {
      TensorView v = g.view(*t);
      if (v.dtype != DType::F32 || v.ndim() != 1) fail(g.path(), ": rope_freqs.weight must be a 1-D F32 tensor");
      std::vector<double> f(v.f32(), v.f32() + v.numel());
      int64_t d = k.oi("rope.dimension_count").value_or(c["head_dim"].get<int64_t>());
      if (int64_t(f.size()) * 2 != d)
        fail(g.path(), ": rope_freqs.weight has ", f.size(), " entries, expected rope.dimension_count/2 = ", d / 2);
      c["rope_scaling"] = llama3_rope_scaling(f, c["rope_theta"].get<double>(), d, g.path());
    }
  } else {
    fail(g.path(), ": unsupported GGUF architecture '", k.a,
         "' (supported: deepseek2, qwen2, llama, qwen3, qwen3moe)");
  }
  return c;
}

}  // namespace dm
