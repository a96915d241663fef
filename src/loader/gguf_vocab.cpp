// Reading tokenizer.ggml.* and tokenizer.chat_template from a GGUF file, with checks of every id and length.
#include "loader/gguf_vocab.h"

#include "core/error.h"

namespace dm {

bool has_gguf_vocab(const GgufFile& g) { return g.has("tokenizer.ggml.tokens"); }

GgufVocab read_gguf_vocab(const GgufFile& g) {
  GgufVocab v;
  v.model = g.get_string("tokenizer.ggml.model");
  v.pre = g.opt_string("tokenizer.ggml.pre").value_or("default");
  v.tokens = g.get_array("tokenizer.ggml.tokens", GgufType::STRING).strings;
  const int64_t n = int64_t(v.tokens.size());
  if (n == 0 || n > INT32_MAX) fail(g.path(), ": tokenizer.ggml.tokens holds ", n, " tokens");
  v.types.assign(size_t(n), GgufTokenType::Normal);
  if (g.has("tokenizer.ggml.token_type")) {
    const GgufValue& t = g.get_array("tokenizer.ggml.token_type", GgufType::I32);
    if (int64_t(t.ints.size()) != n)
      fail(g.path(), ": tokenizer.ggml.token_type has ", t.ints.size(), " entries for ", n, " tokens");
    for (size_t i = 0; i < t.ints.size(); ++i) {
      if (t.ints[i] < 0 || t.ints[i] > 6)
        fail(g.path(), ": tokenizer.ggml.token_type[", i, "] = ", t.ints[i], " is not a token type (0..6)");
      v.types[i] = GgufTokenType(t.ints[i]);
    }
  }
  if (g.has("tokenizer.ggml.merges")) v.merges = g.get_array("tokenizer.ggml.merges", GgufType::STRING).strings;
  auto id = [&](const char* key) -> std::optional<int32_t> {
    auto x = g.opt_int(key);
    if (!x) return std::nullopt;
    if (*x < 0 || *x >= n) fail(g.path(), ": ", key, " = ", *x, " is outside the vocabulary of ", n, " tokens");
    return int32_t(*x);
  };
  v.bos_id = id("tokenizer.ggml.bos_token_id");
  v.eos_id = id("tokenizer.ggml.eos_token_id");
  v.pad_id = id("tokenizer.ggml.padding_token_id");
  v.add_bos = g.opt_bool("tokenizer.ggml.add_bos_token");
  v.add_eos = g.opt_bool("tokenizer.ggml.add_eos_token");
  v.chat_template = g.opt_string("tokenizer.chat_template").value_or("");
  return v;
}

}  // namespace dm
