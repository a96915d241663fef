// GGUF metadata -> Hugging Face config.json fields, per architecture. Key names: llama.cpp gguf-py constants.py
// (Keys.LLM / Keys.Attention / Keys.Rope); their HF sources: llama.cpp convert_hf_to_gguf.py (DeepseekV2Model,
// Qwen2Model, LlamaModel, Qwen3Model, Qwen3MoeModel).
#include "core/error.h"
#include "model/gguf_model.h"

namespace dm {

namespace {

using nlohmann::json;

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
    // llama.cpp permutes Q/K rows so that rope rotates adjacent pairs, and stores Llama-3 scaling as per-frequency
    // divisors: both are config extensions of the llama family (see model/llama.h).
    c["deepmoe_rope_adjacent"] = true;
    if (const GgufTensor* t = g.find_tensor("rope_freqs.weight")) {
      TensorView v = g.view(*t);
      if (v.dtype != DType::F32 || v.ndim() != 1) fail(g.path(), ": rope_freqs.weight must be a 1-D F32 tensor");
      c["deepmoe_rope_freq_factors"] = std::vector<double>(v.f32(), v.f32() + v.numel());
      c["rope_scaling"] = nullptr;
    }
  } else {
    fail(g.path(), ": unsupported GGUF architecture '", k.a,
         "' (supported: deepseek2, qwen2, llama, qwen3, qwen3moe)");
  }
  return c;
}

}  // namespace dm
