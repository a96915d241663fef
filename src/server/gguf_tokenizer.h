// Tokenizer and chat template of a model given as a directory (tokenizer.json, tokenizer_config.json) or as a .gguf
// file (its tokenizer.ggml.* and tokenizer.chat_template metadata), for the server and the commands that take
// --model. GGUF: byte-level BPE ("gpt2") only; the pre-tokenizer comes from tokenizer.ggml.pre; control and
// user-defined tokens become added tokens (control ones special). Lives here because it joins loader (through
// engine) and tokenizer, which only server and cli may both use.
#pragma once
#include <optional>
#include <string>

#include "chat/chat_template.h"
#include "loader/gguf_vocab.h"
#include "tokenizer/tokenizer.h"

namespace dm {

Tokenizer tokenizer_from_gguf(const GgufVocab& vocab, const std::string& path);
// A .gguf file with a vocabulary: from its metadata; a .gguf without one: the directory it sits in; else the
// directory itself (Tokenizer::from_dir).
Tokenizer load_tokenizer(const std::string& model);
// tokenizer.chat_template of a .gguf file, with bos_token / eos_token from its vocabulary; nullopt if absent.
std::optional<chat::ChatTemplate> gguf_chat_template(const std::string& path);

}  // namespace dm
