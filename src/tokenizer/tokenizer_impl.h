// Internal state of a Tokenizer, shared by tokenizer.cpp (encode/decode) and tokenizer_json.cpp (loading).
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/decoder.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace dm {

// What add_special_tokens puts around the ids of the text (TemplateProcessing "single", Bert, Roberta).
struct PostProcessor {
  std::vector<int32_t> before, after;
};

struct Tokenizer::Impl {
  std::unique_ptr<Bpe> model;
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<Decoder> decoder;
  std::optional<PostProcessor> post;
  std::vector<AddedToken> added;  // all added tokens
  AddedTokenMatcher raw_matcher;         // normalized == false: matched before normalization
  AddedTokenMatcher normalized_matcher;  // normalized == true: matched in the normalized text
  std::vector<std::string_view> id_to_token;  // views into model->vocab() keys and `added`
  std::vector<uint8_t> special;               // id -> 1 if a special added token
  std::optional<int32_t> bos, eos;
  bool clean_up_spaces = false;

  // Fills the indexes above from model, added, etc. (called once after loading).
  void finish();
};

}  // namespace dm
