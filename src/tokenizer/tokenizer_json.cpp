// Loading a Tokenizer from tokenizer.json (+ tokenizer_config.json): the format written by tokenizers'
// Tokenizer::save (serde of TokenizerImpl); only the BPE model is supported. Every field is checked and a bad
// one is reported by its path, e.g. "tokenizer.json: model.merges[7]: expected \"a b\" or [a, b]".
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "tokenizer/json_util.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_impl.h"

namespace dm {

namespace {

using nlohmann::json;

std::optional<std::string> opt_string(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) fail(where, ".", key, ": expected a string or null, found ", it->type_name());
  return it->get<std::string>();
}

std::unique_ptr<Bpe> make_model(const json& m) {
  const std::string w = "tokenizer.json: model";
  if (!m.is_object()) fail(w, ": expected an object, found ", m.type_name());
  if (auto type = opt_string(m, "type", w); type && *type != "BPE")
    fail(w, ".type: '", *type, "' is not supported (only BPE)");
  if (auto it = m.find("dropout"); it != m.end() && !it->is_null()) {
    if (!it->is_number()) fail(w, ".dropout: expected a number or null");
    double d = it->get<double>();
    if (d > 0 && d < 1) fail(w, ".dropout: ", d, " is not supported (deterministic BPE only)");
  }
  const json& v = json_field(m, "vocab", w);
  if (!v.is_object()) fail(w, ".vocab: expected an object, found ", v.type_name());
  TokenIndex vocab;
  vocab.reserve(v.size());
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (!it.value().is_number_integer()) fail(w, ".vocab['", it.key(), "']: expected an integer id");
    int64_t id = it.value().get<int64_t>();
    if (id < 0 || id >= (1 << 24)) fail(w, ".vocab['", it.key(), "']: id ", id, " out of range");
    vocab.emplace(it.key(), int32_t(id));
  }
  const json& ms = json_array(m, "merges", w);
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(ms.size());
  for (size_t i = 0; i < ms.size(); ++i) {
    const json& e = ms[i];
    if (e.is_string()) {
      const std::string& s = e.get_ref<const std::string&>();
      size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        fail(w, ".merges[", i, "]: '", s, "' is not two tokens separated by one space");
      merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      merges.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
    } else {
      fail(w, ".merges[", i, "]: expected \"a b\" or [\"a\", \"b\"], found ", e.dump().substr(0, 80));
    }
  }
  BpeOptions opt;
  opt.unk_token = opt_string(m, "unk_token", w);
  opt.continuing_subword_prefix = opt_string(m, "continuing_subword_prefix", w).value_or("");
  opt.end_of_word_suffix = opt_string(m, "end_of_word_suffix", w).value_or("");
  opt.fuse_unk = json_bool(m, "fuse_unk", w, false);
  opt.byte_fallback = json_bool(m, "byte_fallback", w, false);
  opt.ignore_merges = json_bool(m, "ignore_merges", w, false);
  return std::make_unique<Bpe>(std::move(vocab), merges, std::move(opt));
}

std::vector<AddedToken> parse_added_tokens(const json& root) {
  std::vector<AddedToken> out;
  auto it = root.find("added_tokens");
  if (it == root.end() || it->is_null()) return out;
  if (!it->is_array()) fail("tokenizer.json: added_tokens: expected an array, found ", it->type_name());
  for (size_t i = 0; i < it->size(); ++i) {
    const json& a = (*it)[i];
    std::string w = cat("tokenizer.json: added_tokens[", i, "]");
    AddedToken t;
    int64_t id = json_int(a, "id", w);
    if (id < 0 || id >= (1 << 24)) fail(w, ".id: ", id, " out of range");
    t.id = int32_t(id);
    t.content = json_string(a, "content", w);
    if (t.content.empty()) fail(w, ".content: empty");
    t.special = json_bool(a, "special", w, false);
    t.lstrip = json_bool(a, "lstrip", w, false);
    t.rstrip = json_bool(a, "rstrip", w, false);
    t.normalized = json_bool(a, "normalized", w, !t.special);
    t.single_word = json_bool(a, "single_word", w, false);
    out.push_back(std::move(t));
  }
  return out;
}

PostProcessor make_post(const json& j, const std::string& w) {
  std::string type = json_string(j, "type", w);
  PostProcessor p;
  if (type == "ByteLevel") return p;  // offsets only
  if (type == "TemplateProcessing") {
    const json& single = json_array(j, "single", w);
    const json& specials = json_field(j, "special_tokens", w);
    bool seen_a = false;
    for (size_t i = 0; i < single.size(); ++i) {
      const json& item = single[i];
      std::string iw = cat(w, ".single[", i, "]");
      if (item.is_object() && item.contains("Sequence")) {
        if (seen_a) fail(iw, ": the sequence appears twice");
        seen_a = true;
      } else if (item.is_object() && item.contains("SpecialToken")) {
        std::string name = json_string(item["SpecialToken"], "id", iw + ".SpecialToken");
        if (!specials.is_object() || !specials.contains(name))
          fail(iw, ": special token '", name, "' is not in ", w, ".special_tokens");
        const json& ids = json_array(specials[name], "ids", cat(w, ".special_tokens['", name, "']"));
        for (const json& id : ids) {
          if (!id.is_number_integer() || id.get<int64_t>() < 0)
            fail(w, ".special_tokens['", name, "'].ids: expected non-negative integers");
          (seen_a ? p.after : p.before).push_back(int32_t(id.get<int64_t>()));
        }
      } else {
        fail(iw, ": expected {\"Sequence\": ...} or {\"SpecialToken\": ...}");
      }
    }
    return p;
  }
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    for (const char* key : {"cls", "sep"}) {
      const json& pair = json_array(j, key, w);
      if (pair.size() != 2 || !pair[1].is_number_integer()) fail(w, ".", key, ": expected [token, id]");
      (key[0] == 'c' ? p.before : p.after).push_back(int32_t(pair[1].get<int64_t>()));
    }
    return p;
  }
  if (type == "Sequence") {
    const json& arr = json_array(j, "processors", w);
    for (size_t i = 0; i < arr.size(); ++i) {
      PostProcessor inner = make_post(arr[i], cat(w, ".processors[", i, "]"));
      p.before.insert(p.before.begin(), inner.before.begin(), inner.before.end());
      p.after.insert(p.after.end(), inner.after.begin(), inner.after.end());
    }
    return p;
  }
  fail(w, ": post-processor type '", type, "' is not supported");
}

// bos_token / eos_token of tokenizer_config.json: a string, {"content": ...} or null.
std::optional<std::string> config_token(const json& c, const char* key) {
  auto it = c.find(key);
  if (it == c.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  fail("tokenizer_config.json: ", key, ": expected a string, {\"content\": ...} or null");
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) fail(p.string(), ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

Tokenizer Tokenizer::from_json(const std::string& tokenizer_json, const std::string& tokenizer_config_json) {
  auto t = std::make_unique<Impl>();
  try {
    json root = json::parse(tokenizer_json);
    if (!root.is_object()) fail("tokenizer.json: expected an object at the top, found ", root.type_name());
    t->model = make_model(json_field(root, "model", "tokenizer.json"));
    t->added = parse_added_tokens(root);
    auto get = [&](const char* key) -> const json& {
      static const json null_value;  // immutable
      auto it = root.find(key);
      return it == root.end() ? null_value : *it;
    };
    t->normalizer = make_normalizer(get("normalizer"), "tokenizer.json: normalizer");
    t->pre_tokenizer = make_pre_tokenizer(get("pre_tokenizer"), "tokenizer.json: pre_tokenizer");
    t->decoder = make_decoder(get("decoder"), "tokenizer.json: decoder");
    if (!get("post_processor").is_null()) t->post = make_post(get("post_processor"), "tokenizer.json: post_processor");
  } catch (const json::exception& e) {
    fail("tokenizer.json: ", e.what());
  }
  t->finish();
  for (int32_t id : t->post ? t->post->before : std::vector<int32_t>{})
    if (id >= int32_t(t->id_to_token.size())) fail("tokenizer.json: post_processor: id ", id, " is not in the vocab");
  if (t->post)
    for (int32_t id : t->post->after)
      if (id >= int32_t(t->id_to_token.size())) fail("tokenizer.json: post_processor: id ", id, " is not in the vocab");

  Tokenizer tok(std::move(t));
  Impl& impl = *tok.impl_;
  if (!tokenizer_config_json.empty()) {
    try {
      json c = json::parse(tokenizer_config_json);
      if (!c.is_object()) fail("tokenizer_config.json: expected an object at the top");
      for (auto [key, slot] : {std::pair{"bos_token", &impl.bos}, std::pair{"eos_token", &impl.eos}}) {
        auto name = config_token(c, key);
        if (!name) continue;
        *slot = tok.token_id(*name);
        if (!*slot) fail("tokenizer_config.json: ", key, " '", *name, "' is not a token of tokenizer.json");
      }
      impl.clean_up_spaces = json_bool(c, "clean_up_tokenization_spaces", "tokenizer_config.json", false);
    } catch (const json::exception& e) {
      fail("tokenizer_config.json: ", e.what());
    }
  } else if (impl.post && !impl.post->before.empty() && impl.special.size() > size_t(impl.post->before[0]) &&
             impl.special[size_t(impl.post->before[0])]) {
    impl.bos = impl.post->before[0];  // no config: the template's leading special token is the BOS
  }
  return tok;
}

Tokenizer Tokenizer::from_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  fs::path d(dir);
  if (!fs::exists(d / "tokenizer.json")) fail(dir, ": no tokenizer.json in this directory");
  std::string tj = read_file(d / "tokenizer.json");
  std::string tc;
  if (fs::exists(d / "tokenizer_config.json")) tc = read_file(d / "tokenizer_config.json");
  try {
    return from_json(tj, tc);
  } catch (const Error& e) {
    fail(dir, "/", e.what());
  }
}

}  // namespace dm
