// A GGUF file (llama.cpp's format) seen as a Hugging Face checkpoint: config.json fields built from the
// `<arch>.*` metadata keys, and a WeightStore with HF tensor names. Model code never sees GGUF.
// Architectures: deepseek2 (DeepSeek V2/V2-Lite/V3/R1, both the attn_kv_b and the attn_k_b/attn_v_b layouts),
// qwen2, llama, qwen3, qwen3moe. Layouts that agree with HF are zero-copy views into the mapped file (stacked
// experts become per-expert slices); the others are re-laid-out into owned tensors at load (kv_b_proj from
// attn_k_b/attn_v_b, Llama's Q/K rows un-permuted). Llama-3 rope scaling stored as the per-frequency tensor
// rope_freqs.weight is turned back into HF's llama3 rope_scaling parameters.
#pragma once
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "loader/gguf.h"
#include "loader/json_config.h"
#include "loader/weights.h"

namespace dm {

struct GgufCheckpoint {
  JsonConfig config;                     // path(): the .gguf file, so field errors name it
  std::shared_ptr<WeightStore> weights;  // keeps the mapped file(s) alive
};

bool is_gguf_path(const std::string& path);  // a regular file whose name ends in .gguf

// Throws dm::Error naming the file and the key or tensor for anything missing, mistyped or unsupported.
GgufCheckpoint open_gguf_checkpoint(const std::string& path);

// The two halves, exposed for tests and tools.
nlohmann::json hf_config_from_gguf(const GgufFile& g);
std::shared_ptr<WeightStore> hf_weights_from_gguf(const GgufFile& g, const nlohmann::json& config);

}  // namespace dm
