// Decoders of tokenizer.json: ByteLevel, ByteFallback, Replace, Fuse, Strip, Sequence, applied to the token
// strings as tokenizers' Decoder::decode_chain does; the results are concatenated.
// Reference: tokenizers/src/decoders/.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace dm {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
  // True when the decoder is ByteLevel alone: each token then stands for a fixed byte string and the text is
  // those bytes, concatenated and decoded as UTF-8 with replacement.
  virtual bool is_byte_level() const { return false; }
};

std::unique_ptr<Decoder> make_decoder(const nlohmann::json& j, const std::string& where);
std::unique_ptr<Decoder> make_byte_level_decoder();

// The bytes a token stands for under the ByteLevel decoder: its characters mapped back through the GPT-2 table,
// or its UTF-8 as it is when one character is outside the table (tokenizers does the same).
std::string byte_level_token_bytes(const std::string& token);

}  // namespace dm
