// GGUF vocabulary -> Tokenizer (byte-level BPE). Pre-tokenizer split patterns: those the tokenizer module knows,
// plus DeepSeek-LLM / DeepSeek-Coder, whose published tokenizer.json files split with the patterns below (the
// same ones llama.cpp uses for tokenizer.ggml.pre "deepseek-llm" / "deepseek-coder").
#include "server/gguf_tokenizer.h"

#include <filesystem>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "core/error.h"
#include "core/log.h"
#include "model/gguf_model.h"

namespace dm {

namespace {

std::vector<std::string> split_patterns(const std::string& pre, const std::string& path) {
  if (pre == "deepseek-llm")
    // note: \u escapes keep the characters that Unicode normalization would replace (U+1F7D, U+1FBE, U+1FD3,
    // U+1FDB, U+2126, U+212A): the class must hold exactly these code points.
    return {"[\r\n]",
            "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-\u1F7D"
            "ᾀ-ᾴᾶ-ᾼ\u1FBEῂ-ῄῆ-ῌῐ-\u1FD3ῖ-\u1FDBῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\u2126ℨ\u212A-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎ"
            "ꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
            "\\s?[!-/:-~！-／：-～‘-‟　-。]+", "\\s+$", "[一-龥ࠀ-一가-퟿]+", "\\p{N}+"};
  if (pre == "deepseek-coder") return {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[一-龥ࠀ-一가-퟿]+", "\\p{N}"};
  if (pre == "default") {  // llama.cpp's fallback when its converter did not recognise the tokenizer
    log_warn(path, ": tokenizer.ggml.pre is 'default': splitting text as GPT-2 does");
    return Tokenizer::pre_tokenizer_regexes("gpt-2");
  }
  try {
    return Tokenizer::pre_tokenizer_regexes(pre);
  } catch (const Error& e) {
    fail(path, ": tokenizer.ggml.pre '", pre, "' is not supported (", e.what(), ")");
  }
}

}  // namespace

Tokenizer tokenizer_from_gguf(const GgufVocab& v, const std::string& path) {
  if (v.model != "gpt2")
    fail(path, ": tokenizer.ggml.model '", v.model, "' is not supported (only byte-level BPE, \"gpt2\")");
  TokenizerSpec spec;
  spec.tokens = v.tokens;
  std::unordered_set<std::string_view> vocab(v.tokens.begin(), v.tokens.end());
  size_t dropped = 0;
  for (size_t i = 0; i < v.merges.size(); ++i) {
    const std::string& m = v.merges[i];
    size_t sp = m.find(' ', 1);  // a merge's left part is never empty
    if (sp == std::string::npos || sp + 1 >= m.size())
      fail(path, ": tokenizer.ggml.merges[", i, "] = '", m, "' is not \"left right\"");
    std::string left = m.substr(0, sp), right = m.substr(sp + 1);
    // note: llama.cpp tolerates merges whose result is no token (its test files carry one); they can never apply.
    if (!vocab.count(left + right)) {
      ++dropped;
      continue;
    }
    spec.merges.emplace_back(std::move(left), std::move(right));
  }
  if (dropped) log_warn(path, ": ", dropped, " merge(s) whose result is not in the vocabulary were skipped");
  spec.pre_tokenizer_regexes = split_patterns(v.pre, path);
  spec.nfc = v.pre == "qwen2" || v.pre == "deepseek-r1-qwen";  // Qwen's tokenizer.json normalizes to NFC
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    if (v.types[i] != GgufTokenType::Control && v.types[i] != GgufTokenType::UserDefined) continue;
    AddedToken t;
    t.content = v.tokens[i];
    t.id = int32_t(i);
    t.special = v.types[i] == GgufTokenType::Control;
    spec.added_tokens.push_back(std::move(t));
  }
  spec.bos_id = v.bos_id;
  spec.eos_id = v.eos_id;
  spec.add_bos = v.add_bos.value_or(false) && v.bos_id;
  spec.add_eos = v.add_eos.value_or(false) && v.eos_id;
  return Tokenizer::from_spec(spec);
}

Tokenizer load_tokenizer(const std::string& model) {
  if (!is_gguf_path(model)) return Tokenizer::from_dir(model);
  GgufFile g = GgufFile::open(model);
  if (!has_gguf_vocab(g)) {
    std::string dir = std::filesystem::path(model).parent_path().string();
    if (std::filesystem::exists(std::filesystem::path(dir) / "tokenizer.json")) return Tokenizer::from_dir(dir);
    fail(model, ": no tokenizer in this GGUF file (tokenizer.ggml.tokens is missing) nor a tokenizer.json beside it");
  }
  return tokenizer_from_gguf(read_gguf_vocab(g), g.path());
}

std::optional<chat::ChatTemplate> gguf_chat_template(const std::string& path) {
  GgufFile g = GgufFile::open(path);
  if (!has_gguf_vocab(g) || !g.has("tokenizer.chat_template")) return std::nullopt;
  GgufVocab v = read_gguf_vocab(g);
  std::vector<std::pair<std::string, chat::Value>> special;
  if (v.bos_id) special.emplace_back("bos_token", chat::Value(v.tokens[size_t(*v.bos_id)]));
  if (v.eos_id) special.emplace_back("eos_token", chat::Value(v.tokens[size_t(*v.eos_id)]));
  if (v.pad_id) special.emplace_back("pad_token", chat::Value(v.tokens[size_t(*v.pad_id)]));
  return chat::ChatTemplate(v.chat_template, std::move(special));
}

}  // namespace dm
