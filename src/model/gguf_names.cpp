// The one-to-one tensor name table between llama.cpp's GGUF names and Hugging Face names (see gguf_names.h).
// Source of the GGUF names: llama.cpp gguf-py/gguf/constants.py (MODEL_TENSOR names) and tensor_mapping.py.
#include "model/gguf_names.h"

#include <cstdlib>
#include <utility>

namespace dm {

namespace {

// Whole-model tensors.
constexpr std::pair<const char*, const char*> kGlobal[] = {
    {"token_embd.weight", "model.embed_tokens.weight"},
    {"output_norm.weight", "model.norm.weight"},
    {"output.weight", "lm_head.weight"},
};

// Per-layer tensors: "blk.N.<gguf>" <-> "model.layers.N.<hf>".
constexpr std::pair<const char*, const char*> kLayer[] = {
    {"attn_norm.weight", "input_layernorm.weight"},
    {"ffn_norm.weight", "post_attention_layernorm.weight"},
    {"attn_q.weight", "self_attn.q_proj.weight"},
    {"attn_k.weight", "self_attn.k_proj.weight"},
    {"attn_v.weight", "self_attn.v_proj.weight"},
    {"attn_q.bias", "self_attn.q_proj.bias"},
    {"attn_k.bias", "self_attn.k_proj.bias"},
    {"attn_v.bias", "self_attn.v_proj.bias"},
    {"attn_output.weight", "self_attn.o_proj.weight"},
    {"attn_q_norm.weight", "self_attn.q_norm.weight"},
    {"attn_k_norm.weight", "self_attn.k_norm.weight"},
    {"attn_q_a.weight", "self_attn.q_a_proj.weight"},
    {"attn_q_a_norm.weight", "self_attn.q_a_layernorm.weight"},
    {"attn_q_b.weight", "self_attn.q_b_proj.weight"},
    {"attn_kv_a_mqa.weight", "self_attn.kv_a_proj_with_mqa.weight"},
    {"attn_kv_a_norm.weight", "self_attn.kv_a_layernorm.weight"},
    {"attn_kv_b.weight", "self_attn.kv_b_proj.weight"},
    {"ffn_gate.weight", "mlp.gate_proj.weight"},
    {"ffn_up.weight", "mlp.up_proj.weight"},
    {"ffn_down.weight", "mlp.down_proj.weight"},
    {"ffn_gate_inp.weight", "mlp.gate.weight"},
    {"exp_probs_b.bias", "mlp.gate.e_score_correction_bias"},
    {"ffn_gate_shexp.weight", "mlp.shared_experts.gate_proj.weight"},
    {"ffn_up_shexp.weight", "mlp.shared_experts.up_proj.weight"},
    {"ffn_down_shexp.weight", "mlp.shared_experts.down_proj.weight"},
};

}  // namespace

bool split_layer_name(const std::string& name, const std::string& prefix, int& layer, std::string& rest) {
  if (name.compare(0, prefix.size(), prefix) != 0) return false;
  size_t dot = name.find('.', prefix.size());
  if (dot == std::string::npos || dot == prefix.size() || dot - prefix.size() > 6) return false;
  for (size_t k = prefix.size(); k < dot; ++k)
    if (name[k] < '0' || name[k] > '9') return false;
  layer = std::atoi(name.c_str() + prefix.size());
  rest = name.substr(dot + 1);
  return true;
}

std::string hf_name_from_gguf(const std::string& g) {
  for (auto& [a, b] : kGlobal)
    if (g == a) return b;
  int layer;
  std::string rest;
  if (!split_layer_name(g, "blk.", layer, rest)) return "";
  for (auto& [a, b] : kLayer)
    if (rest == a) return "model.layers." + std::to_string(layer) + "." + b;
  return "";
}

std::string gguf_name_from_hf(const std::string& h) {
  for (auto& [a, b] : kGlobal)
    if (h == b) return a;
  int layer;
  std::string rest;
  if (!split_layer_name(h, "model.layers.", layer, rest)) return "";
  for (auto& [a, b] : kLayer)
    if (rest == b) return "blk." + std::to_string(layer) + "." + a;
  return "";
}

}  // namespace dm
