// Tensor names: llama.cpp's GGUF names (gguf-py tensor_mapping.py) <-> Hugging Face checkpoint names, for the
// tensors that map one to one (same data, GGML dims = HF shape reversed). Per-layer names use "blk.N." / "model.
// layers.N."; the stacked experts (ffn_*_exps), attn_k_b/attn_v_b and Llama's permuted Q/K are handled by the
// adapter and the converter themselves.
#pragma once
#include <string>

namespace dm {

// "blk.3.attn_q_a.weight" -> "model.layers.3.self_attn.q_a_proj.weight"; "" if not a one-to-one name.
std::string hf_name_from_gguf(const std::string& gguf_name);
// The inverse: "model.layers.3.self_attn.q_a_proj.weight" -> "blk.3.attn_q_a.weight"; "" if none.
std::string gguf_name_from_hf(const std::string& hf_name);

// Splits "blk.12.rest" into (12, "rest"); false if `name` is not of that form. Same for "model.layers.12.rest".
bool split_layer_name(const std::string& name, const std::string& prefix, int& layer, std::string& rest);

}  // namespace dm
