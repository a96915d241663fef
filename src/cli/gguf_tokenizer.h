// The tokenizer of a model given as a directory (tokenizer.json) or a .gguf file (its tokenizer.ggml.* metadata),
// for the commands that take --model. GGUF: byte-level BPE ("gpt2") only; the pre-tokenizer comes from
// tokenizer.ggml.pre; control and user-defined tokens become added tokens (control ones special).
#pragma once
#include <string>

#include "loader/gguf_vocab.h"
#include "tokenizer/tokenizer.h"

namespace dm {

Tokenizer tokenizer_from_gguf(const GgufVocab& vocab, const std::string& path);
Tokenizer load_tokenizer(const std::string& model);  // a .gguf file, else a directory (Tokenizer::from_dir)

}  // namespace dm
