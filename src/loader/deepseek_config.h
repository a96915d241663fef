// Typed config of the DeepSeek family (model_type deepseek_v2 / deepseek_v3: V2, V2-Lite, V3, R1), read from a
// Hugging Face config.json. Field names are the HF ones; semantics are those of ../shared/DESIGN.md ("The DeepSeek
// architecture, precisely"). Unsupported values (other rope scalings, activations, quantizations) are dm::Errors
// naming the file and the field, so the model code can trust every value it reads here.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "loader/json_config.h"

namespace dm {

enum class ScoringFunc { Softmax, Sigmoid };
enum class TopkMethod { Greedy, GroupLimitedGreedy, NoauxTc };

struct DeepseekConfig {
  std::string path;          // config.json, for error messages
  std::string architecture;  // DeepseekV2ForCausalLM | DeepseekV3ForCausalLM
  std::string model_type;    // deepseek_v2 | deepseek_v3

  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t max_position_embeddings = 0;
  int num_nextn_predict_layers = 0;  // MTP layers stored after the main ones (skipped)
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;

  // MLA
  int64_t q_lora_rank = 0;  // 0: config has null, plain q_proj
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t v_head_dim = 0;

  // RoPE (+ YaRN when rope_scaling.type == "yarn")
  double rope_theta = 10000;
  bool yarn = false;
  double rope_factor = 1;
  int64_t original_max_position_embeddings = 0;
  double beta_fast = 32, beta_slow = 1;
  double mscale = 1, mscale_all_dim = 0;

  // FFN / MoE
  int64_t intermediate_size = 0;       // dense layers
  int64_t moe_intermediate_size = 0;   // each routed expert and each shared expert
  int64_t n_routed_experts = 0;        // 0: no MoE layers
  int64_t n_shared_experts = 0;
  int64_t num_experts_per_tok = 0;
  int first_k_dense_replace = 0;
  int moe_layer_freq = 1;
  ScoringFunc scoring_func = ScoringFunc::Softmax;
  TopkMethod topk_method = TopkMethod::Greedy;
  int64_t n_group = 1;
  int64_t topk_group = 1;
  bool norm_topk_prob = false;
  double routed_scaling_factor = 1;

  // quantization_config: quant_method fp8, fmt e4m3, weight_block_size [128, 128]
  bool fp8 = false;
  std::string torch_dtype;  // "bfloat16", "float32", ... ("" if absent); `dtype` accepted as well

  int32_t bos_token_id = -1;
  std::vector<int32_t> eos_token_ids;

  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  int64_t kv_width() const { return kv_lora_rank + qk_rope_head_dim; }  // floats per token per layer in the cache
  // HF: n_routed_experts set, layer_idx >= first_k_dense_replace and layer_idx % moe_layer_freq == 0.
  bool is_moe_layer(int i) const {
    return n_routed_experts > 0 && i >= first_k_dense_replace && i % moe_layer_freq == 0;
  }
  // YaRN attention factor m = 0.1·mscale·ln(factor) + 1 (1 without YaRN, for mscale 0 or factor <= 1).
  double yarn_mscale(double m) const;
  // (qk_nope + qk_rope)^-0.5 · m(mscale_all_dim)²
  double softmax_scale() const;
};

// True for the configs this family handles (model_type deepseek_v2 / deepseek_v3).
bool is_deepseek_config(const JsonConfig& config);
// Parses and validates; throws dm::Error "<path>: field '<name>' ..." for missing, mistyped or unsupported values.
DeepseekConfig parse_deepseek_config(const JsonConfig& config);

}  // namespace dm
