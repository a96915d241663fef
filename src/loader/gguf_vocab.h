// The tokenizer a GGUF file carries (llama.cpp's tokenizer.ggml.* keys, gguf-py constants.py Keys.Tokenizer):
// token strings by id, token types, BPE merges, pre-tokenizer name, special ids and flags, chat template.
// Plain data, checked for consistency; building a Tokenizer from it is the caller's (server/gguf_tokenizer.h).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "loader/gguf.h"

namespace dm {

// llama.cpp's token types (llama_token_type).
enum class GgufTokenType : int32_t { Undefined = 0, Normal = 1, Unknown = 2, Control = 3, UserDefined = 4,
                                     Unused = 5, Byte = 6 };

struct GgufVocab {
  std::string model;  // tokenizer.ggml.model: "gpt2" is byte-level BPE
  std::string pre;    // tokenizer.ggml.pre: pre-tokenizer name ("deepseek-v3", "qwen2", ...); "default" if absent
  std::vector<std::string> tokens;
  std::vector<GgufTokenType> types;  // as many as tokens (Normal when the key is absent)
  std::vector<std::string> merges;   // "left right", in rank order
  std::optional<int32_t> bos_id, eos_id, pad_id;
  std::optional<bool> add_bos, add_eos;  // absent: the tokenizer type's default
  std::string chat_template;             // "" if absent
};

bool has_gguf_vocab(const GgufFile& g);  // tokenizer.ggml.tokens present
// Throws dm::Error naming the file and key: missing tokens, mismatched token_type length, ids out of range.
GgufVocab read_gguf_vocab(const GgufFile& g);

}  // namespace dm
