// GGUF vocabulary -> Tokenizer (byte-level BPE). Pre-tokenizer split patterns: those the tokenizer module knows,
// plus DeepSeek-LLM / DeepSeek-Coder, whose published tokenizer.json files split with the patterns below (the
// same ones llama.cpp uses for tokenizer.ggml.pre "deepseek-llm" / "deepseek-coder").
#include "cli/gguf_tokenizer.h"

#include <filesystem>

#include "core/error.h"
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
  for (size_t i = 0; i < v.merges.size(); ++i) {
    const std::string& m = v.merges[i];
    size_t sp = m.find(' ', 1);  // a merge's left part is never empty
    if (sp == std::string::npos || sp + 1 >= m.size())
      fail(path, ": tokenizer.ggml.merges[", i, "] = '", m, "' is not \"left right\"");
    spec.merges.emplace_back(m.substr(0, sp), m.substr(sp + 1));
  }
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
  if (!has_gguf_vocab(g)) fail(model, ": no tokenizer in this GGUF file (tokenizer.ggml.tokens is missing)");
  return tokenizer_from_gguf(read_gguf_vocab(g), g.path());
}

}  // namespace dm
