// Hugging Face model directory -> GGUF file, following llama.cpp's converter (convert_hf_to_gguf.py) so that
// llama.cpp loads what we write: its tensor names, metadata keys and layouts (stacked experts, DeepSeek's split
// attn_k_b / attn_v_b, Llama's permuted Q/K rows, Llama-3 rope scaling as rope_freqs.weight), its choice of which
// tensors stay F32, and its tokenizer metadata. FP8 weights are dequantized first. Tensors are produced one at a
// time while writing, so memory stays near one tensor's size.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/dtype.h"

#include "loader/gguf_writer.h"
#include "loader/json_config.h"

namespace dm {

struct ConvertOptions {
  std::string type = "auto";  // f32 | f16 | bf16 | q8_0 | q4_0 | auto (the checkpoint's float type; bf16 for FP8)
  std::string name;           // general.name; default: the directory's name
};

struct ConvertSummary {
  std::string arch;       // GGUF architecture written
  std::string type;       // resolved output type
  size_t n_tensors = 0;
  uint64_t n_bytes = 0;   // tensor data bytes
  std::vector<std::string> notes;  // e.g. "no tokenizer.json: stand-in vocabulary written"
};

// Throws dm::Error naming the file, field or tensor on anything it cannot convert.
ConvertSummary convert_to_gguf(const std::string& model_dir, const std::string& out_path,
                               const ConvertOptions& opts = {});

// The tensors a conversion reads: HF names with shapes, and their values as f32 on demand (called once per tensor,
// one at a time, while the file is written). convert_to_gguf reads a safetensors checkpoint through one;
// `deepmoe synth --format gguf` generates random values through another, so no model is ever held whole.
struct TensorSource {
  std::string dir;  // tokenizer files (none: stand-in vocabulary) and the default general.name
  std::map<std::string, std::vector<int64_t>> shapes;  // HF name -> shape (FP8 `_scale_inv` tensors excluded)
  DType dtype = DType::BF16;                           // the checkpoint's float type, for type "auto"
  std::function<std::vector<float>(const std::string& name)> read;  // row-major f32 values of one tensor
};
ConvertSummary convert_to_gguf(const JsonConfig& cfg, const TensorSource& src, const std::string& out_path,
                               const ConvertOptions& opts = {});

// Tokenizer metadata (tokenizer.ggml.*, tokenizer.chat_template) from tokenizer.json / tokenizer_config.json /
// chat_template.jinja in `model_dir`; without tokenizer.json, llama.cpp-style stand-in tokens "<tN>". Returns a
// note for the summary, or "".
std::string add_tokenizer_metadata(GgufWriter& w, const std::string& model_dir, const JsonConfig& config,
                                   int64_t vocab_size);

}  // namespace dm
