// Typed config of the Llama-style decoder families: Qwen2ForCausalLM (R1-Distill-Qwen), LlamaForCausalLM
// (R1-Distill-Llama, Llama 3), Qwen3ForCausalLM and Qwen3MoeForCausalLM, parsed from an HF config.json.
// Field names and defaults are those of transformers' Qwen2Config / LlamaConfig / Qwen3Config / Qwen3MoeConfig.
// Anything the model code does not implement (sliding windows in use, other rope scalings, other activations)
// is rejected with a dm::Error naming the file and field.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "loader/json_config.h"

namespace dm {

// rope_scaling.rope_type "llama3" (transformers _compute_llama3_parameters); None = plain rope.
struct Llama3RopeScaling {
  double factor = 1;
  double low_freq_factor = 1;
  double high_freq_factor = 4;
  int64_t original_max_position_embeddings = 8192;
};

struct DenseConfig {
  std::string architecture;  // architectures[0], or derived from model_type
  std::string model_type;    // qwen2 | llama | qwen3 | qwen3_moe
  std::string dtype;         // `dtype` or `torch_dtype` (informational; tensors carry their own dtypes)

  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;  // explicit, else hidden_size / num_attention_heads (qwen3 default: 128)
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000;
  bool rope_llama3 = false;  // rope_scaling.rope_type == "llama3"
  Llama3RopeScaling llama3;
  // Extension for adapters (GGUF): "deepmoe_rope_adjacent": true means q/k rows are stored so that rotary
  // pairs are adjacent (2i, 2i+1), as llama.cpp's converter permutes Llama q/k; default: halves (rotate_half).
  bool rope_adjacent = false;
  // Extension for adapters (GGUF): "deepmoe_rope_freq_factors": [head_dim/2 numbers] divides each inverse
  // frequency, as llama.cpp's rope_freqs.weight does (how its files carry llama3 scaling). Excludes rope_scaling.
  std::vector<double> rope_freq_factors;

  bool qkv_bias = false;  // q/k/v_proj.bias: always for qwen2; attention_bias for llama/qwen3
  bool o_bias = false;    // o_proj.bias: attention_bias for llama/qwen3 (never for qwen2)
  bool mlp_bias = false;  // llama mlp_bias: gate/up/down_proj.bias
  bool qk_norm = false;   // qwen3, qwen3_moe: q_norm/k_norm [head_dim] per head, before rope
  bool tie_word_embeddings = false;

  // Qwen3-MoE (num_experts == 0 otherwise).
  int64_t num_experts = 0;
  int64_t num_experts_per_tok = 0;
  int64_t moe_intermediate_size = 0;
  bool norm_topk_prob = false;
  int64_t decoder_sparse_step = 1;
  std::vector<int64_t> mlp_only_layers;

  int32_t bos_token_id = -1;
  std::vector<int32_t> eos_token_ids;

  // Layer i uses the routed-expert FFN (transformers Qwen3MoeDecoderLayer's rule).
  bool layer_is_moe(int i) const;
  int64_t kv_width() const { return 2 * num_key_value_heads * head_dim; }  // K then V, per token and layer
};

bool is_dense_model_type(const std::string& model_type);  // qwen2, llama, qwen3, qwen3_moe
DenseConfig parse_dense_config(const JsonConfig& cfg);

}  // namespace dm
