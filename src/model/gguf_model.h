// A GGUF file (llama.cpp's format) seen as a Hugging Face checkpoint: config.json fields built from the
// `<arch>.*` metadata keys, and a WeightStore with HF tensor names. Model code never sees GGUF.
// Architectures: deepseek2 (DeepSeek V2/V2-Lite/V3/R1, both the attn_kv_b and the attn_k_b/attn_v_b layouts),
// qwen2, llama, qwen3, qwen3moe. Layouts that agree with HF are zero-copy views into the mapped file (stacked
// experts become per-expert slices, Llama's permuted Q/K rows stay as they are with the family's
// deepmoe_rope_adjacent flag); kv_b_proj is rebuilt from attn_k_b/attn_v_b into an owned tensor. Llama-3 rope
// scaling, stored as rope_freqs.weight, becomes the family's deepmoe_rope_freq_factors.
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
