// Text <-> token ids exactly as Hugging Face tokenizers does for byte-level BPE models (DeepSeek, Qwen, Llama 3):
// added/special tokens, normalizer, pre-tokenizer, BPE, post-processor and decoder of a tokenizer.json.
// Reference: huggingface/tokenizers (Rust), checked against recorded vectors and the @huggingface/transformers port.
//
// Contracts:
// - Input text that is not valid UTF-8 is first made valid by replacing every ill-formed subsequence with U+FFFD
//   (maximal subparts, as Python's bytes.decode(errors="replace")); the ids are those of the replaced text.
// - decode() skips ids outside [0, vocab_size()) (as tokenizers does); its output is always valid UTF-8.
// - A Tokenizer is immutable after construction except for an internal, mutex-guarded BPE cache: encode and
//   decode may be called from several threads at once. It is movable, not copyable.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/added_tokens.h"

namespace dm {

// A byte-level BPE vocabulary given in memory (e.g. read from a GGUF file's tokenizer.ggml.* keys).
struct TokenizerSpec {
  std::vector<std::string> tokens;                          // id -> token text, in the GPT-2 byte alphabet
  std::vector<std::pair<std::string, std::string>> merges;  // in rank order
  std::vector<std::string> pre_tokenizer_regexes;           // Isolated splits, in order, before the byte mapping
  bool nfc = false;                                         // NFC-normalize the text first (Qwen)
  std::vector<AddedToken> added_tokens;                     // matched in the raw text; ids index `tokens`
  std::optional<int32_t> bos_id, eos_id;
  bool add_bos = false, add_eos = false;                    // what add_special_tokens adds
};

class Tokenizer {
 public:
  // dir holds tokenizer.json and optionally tokenizer_config.json (bos/eos names, clean-up of spaces);
  // a path to the tokenizer.json file itself is accepted too.
  static Tokenizer from_dir(const std::string& dir);
  // The contents of the two files; throws dm::Error naming the field that is wrong.
  static Tokenizer from_json(const std::string& tokenizer_json, const std::string& tokenizer_config_json = "");
  static Tokenizer from_spec(const TokenizerSpec& spec);
  // Split patterns (those of the published tokenizer.json files) for llama.cpp's tokenizer.ggml.pre names:
  // "deepseek-v3", "deepseek-llm", "deepseek-coder", "qwen2", "deepseek-r1-qwen", "llama-bpe", "gpt-2";
  // throws dm::Error for others. For a GGUF vocab: tokens = tokenizer.ggml.tokens, merges = tokenizer.ggml.merges
  // split at the space, added_tokens = the CONTROL (special) and USER_DEFINED (not special) token types.
  static std::vector<std::string> pre_tokenizer_regexes(std::string_view gguf_pre);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // add_special_tokens: apply the post-processor (BOS for DeepSeek). Special-token text inside `text` is always
  // matched as that token (tokenizers' default, split_special_tokens=False).
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const;
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const;

  int32_t vocab_size() const;  // one past the largest id (model vocab and added tokens)
  std::optional<int32_t> token_id(std::string_view token) const;
  std::string_view token_text(int32_t id) const;  // "" when id is out of range or unused
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  bool is_special(int32_t id) const;
  // The bytes this token contributes to decoded text when the decoder is ByteLevel (else its text).
  std::string token_bytes(int32_t id) const;
  // True when decoding is a concatenation of token_bytes() (ByteLevel decoder or none, no clean-up).
  bool decodes_bytewise() const;

  struct Impl;

 private:
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Incremental decoding for streaming: push() returns the text that became complete, never a partial UTF-8
// sequence; the pieces of push()... + flush() concatenate to decode(all ids). Not thread-safe; borrows tok.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool skip_special_tokens = false);
  std::string push(int32_t id);
  std::string flush();  // the held-back tail (an incomplete sequence becomes U+FFFD); the decoder restarts empty

 private:
  const Tokenizer* tok_;
  bool skip_special_;
  std::string pending_;       // bytes not yet emitted (byte-wise decoding)
  std::vector<int32_t> ids_;  // ids since the start (other decoders: re-decoded on each push)
  std::string emitted_;
};

}  // namespace dm
