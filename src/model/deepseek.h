// The DeepSeek family (DeepseekV2ForCausalLM / DeepseekV3ForCausalLM: V2, V2-Lite, V3, R1): MLA attention with a
// latent KV cache, YaRN RoPE, DeepSeekMoE routing (softmax/sigmoid, greedy / group_limited_greedy / noaux_tc).
// Semantics: ../shared/DESIGN.md, checked against the official DeepSeek-V3 inference/model.py goldens.
// GGUF adapter contract: give HF tensor names and the HF (unpermuted) rope layout — this family rotates ADJACENT
// pairs of the stored q_pe / k_pe rows; no extra config flag is read.
#pragma once
#include <memory>
#include <vector>

#include "loader/json_config.h"
#include "loader/weights.h"
#include "model/model.h"

namespace dm {

// Validates every tensor of `weights` against deepseek_tensor_specs(config) (name, dtype, shape; FP8 weights need
// their `<name>_scale_inv`), rejects unknown and missing tensors, skips MTP layers (index >= num_hidden_layers).
// Weights stay views into `weights` (kept alive by the model); only norm vectors are copied (to f32).
std::unique_ptr<Model> load_deepseek(const JsonConfig& config, std::shared_ptr<const WeightStore> weights,
                                     const LoadOptions& opts);
// Every tensor of the main model (MTP layers and FP8 `_scale_inv` companions excluded), in checkpoint order.
std::vector<TensorSpec> deepseek_tensor_specs(const JsonConfig& config);
// Parameters, bytes and KV size of the model described by `config`. With `weights` the stored dtypes are counted;
// without (a config-only directory), the dtypes the config announces (FP8 linears if quantization_config says so,
// else torch_dtype) are assumed.
ModelInfo deepseek_model_info(const JsonConfig& config, const WeightStore* weights);

// How MLA attends. Auto picks per sequence by cost: absorbed (latent) attention for decode-like calls, per-head
// K/V expansion for prefill-like ones. Both give the same numbers (to ~1e-6); tests force each.
enum class MlaImpl { Auto, Naive, Absorb };
// `model` must come from load_deepseek. Not thread-safe with forward().
void deepseek_set_mla_impl(Model& model, MlaImpl impl);

}  // namespace dm
