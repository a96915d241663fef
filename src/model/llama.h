// The Llama-style decoder family: Qwen2ForCausalLM (DeepSeek-R1-Distill-Qwen, q/k/v bias), LlamaForCausalLM
// (R1-Distill-Llama; llama3 rope scaling; tied or untied embeddings), Qwen3ForCausalLM (q_norm/k_norm) and
// Qwen3MoeForCausalLM (softmax-routed experts). Reference: transformers modeling_{qwen2,llama,qwen3,qwen3_moe}.py.
// KV cache: per token and layer, K then V of every KV head after rope: kv_width = 2 · num_key_value_heads ·
// head_dim. Config extension for adapters: "deepmoe_rope_adjacent": true rotates adjacent pairs (2i, 2i+1)
// instead of halves, for q/k rows stored in llama.cpp's permuted order (q_norm/k_norm weights, if any, must be
// permuted the same way); "deepmoe_rope_freq_factors": [head_dim/2] divides the inverse frequencies (llama.cpp's
// rope_freqs tensor, its form of llama3 scaling). See loader/dense_config.h.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "loader/json_config.h"
#include "loader/weights.h"
#include "model/model.h"

namespace dm {

bool is_llama_family(const std::string& model_type);  // qwen2, llama, qwen3, qwen3_moe

// Checks every tensor of the config's spec by name, dtype and shape; throws dm::Error otherwise.
std::unique_ptr<Model> load_llama(const JsonConfig& config, std::shared_ptr<const WeightStore> weights,
                                  const LoadOptions& opts);
std::vector<TensorSpec> llama_tensor_specs(const JsonConfig& config);
// What a checkpoint of this config would be, without weights (`deepmoe inspect` on a bare config): sizes from
// the tensor specs at the config's dtype / torch_dtype (bf16 if absent).
ModelInfo llama_config_info(const JsonConfig& config);

}  // namespace dm
