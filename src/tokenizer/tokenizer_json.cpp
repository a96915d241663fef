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

// SAX reader of tokenizer.json: model.vocab and model.merges (nearly all of the file) go straight into their
// final form; everything else becomes a DOM. This keeps the 7 MB files well under the 0.5 s load budget.
class TokenizerSax {
 public:
  json root;
  Vocab vocab;
  std::vector<std::pair<std::string, std::string>> merges;
  bool have_vocab = false, have_merges = false;
  std::string error;

  bool null() { return capture() ? bad("null") : dom_.null(); }
  bool boolean(bool v) { return capture() ? bad("a boolean") : dom_.boolean(v); }
  bool number_integer(json::number_integer_t v) { return mode_ == Mode::Vocab ? add_id(v) : capture() ? bad("a number") : dom_.number_integer(v); }
  bool number_unsigned(json::number_unsigned_t v) {
    return mode_ == Mode::Vocab ? add_id(v > uint64_t(INT64_MAX) ? -1 : int64_t(v)) : capture() ? bad("a number") : dom_.number_unsigned(v);
  }
  bool number_float(json::number_float_t v, const std::string& s) { return capture() ? bad("a number") : dom_.number_float(v, s); }
  bool binary(json::binary_t& v) { return capture() ? bad("binary") : dom_.binary(v); }
  bool string(std::string& v) {
    if (mode_ == Mode::Vocab) return bad("a string");
    if (mode_ != Mode::Merges) return dom_.string(v);
    if (in_pair_) {
      parts_.push_back(std::move(v));
      return true;
    }
    size_t sp = v.find(' ');
    if (sp == std::string::npos || v.find(' ', sp + 1) != std::string::npos)
      return fail_here(cat("model.merges[", merges.size(), "]: '", v, "' is not two tokens separated by one space"));
    merges.emplace_back(v.substr(0, sp), v.substr(sp + 1));
    return true;
  }
  bool key(std::string& k) {
    if (mode_ == Mode::Vocab) {
      key_ = std::move(k);
      return true;
    }
    if (depth_ == 1) top_key_ = k;
    last_key_ = k;
    return dom_.key(k);
  }
  bool start_object(std::size_t n) {
    if (capture()) return bad("an object");
    if (depth_ == 2 && top_key_ == "model" && last_key_ == "vocab") {
      mode_ = Mode::Vocab;
      have_vocab = true;
      return dom_.start_object(0) && dom_.end_object();
    }
    ++depth_;
    return dom_.start_object(n);
  }
  bool end_object() {
    if (mode_ == Mode::Vocab) {
      mode_ = Mode::Dom;
      return true;
    }
    --depth_;
    return dom_.end_object();
  }
  bool start_array(std::size_t n) {
    if (mode_ == Mode::Vocab) return bad("an array");
    if (mode_ == Mode::Merges) {
      if (in_pair_) return bad("a nested array");
      in_pair_ = true;
      parts_.clear();
      return true;
    }
    if (depth_ == 2 && top_key_ == "model" && last_key_ == "merges") {
      mode_ = Mode::Merges;
      have_merges = true;
      return dom_.start_array(0) && dom_.end_array();
    }
    ++depth_;
    return dom_.start_array(n);
  }
  bool end_array() {
    if (mode_ == Mode::Merges) {
      if (!in_pair_) {
        mode_ = Mode::Dom;
        return true;
      }
      in_pair_ = false;
      if (parts_.size() != 2) return fail_here(cat("model.merges[", merges.size(), "]: expected [\"a\", \"b\"]"));
      merges.emplace_back(std::move(parts_[0]), std::move(parts_[1]));
      return true;
    }
    --depth_;
    return dom_.end_array();
  }
  bool parse_error(std::size_t pos, const std::string&, const nlohmann::detail::exception& e) {
    return fail_here(cat("not valid JSON (byte ", pos, "): ", e.what()));
  }

 private:
  enum class Mode { Dom, Vocab, Merges };
  bool capture() const { return mode_ != Mode::Dom; }
  bool fail_here(std::string msg) {
    if (error.empty()) error = std::move(msg);
    return false;
  }
  bool bad(const char* what) {
    if (mode_ == Mode::Vocab) return fail_here(cat("model.vocab['", key_, "']: expected an integer id, found ", what));
    return fail_here(cat("model.merges[", merges.size(), "]: expected \"a b\" or [\"a\", \"b\"], found ", what));
  }
  bool add_id(int64_t id) {
    if (id < 0 || id >= (1 << 24)) return fail_here(cat("model.vocab['", key_, "']: id ", id, " out of range"));
    vocab.insert(key_, int32_t(id));
    return true;
  }

  nlohmann::detail::json_sax_dom_parser<json> dom_{root, false};
  Mode mode_ = Mode::Dom;
  int depth_ = 0;
  std::string top_key_, last_key_, key_;
  bool in_pair_ = false;
  std::vector<std::string> parts_;
};

std::unique_ptr<Bpe> make_model(const json& m, TokenizerSax& sax) {
  const std::string w = "tokenizer.json: model";
  if (!m.is_object()) fail(w, ": expected an object, found ", m.type_name());
  if (auto type = opt_string(m, "type", w); type && *type != "BPE")
    fail(w, ".type: '", *type, "' is not supported (only BPE)");
  if (auto it = m.find("dropout"); it != m.end() && !it->is_null()) {
    if (!it->is_number()) fail(w, ".dropout: expected a number or null");
    double d = it->get<double>();
    if (d > 0 && d < 1) fail(w, ".dropout: ", d, " is not supported (deterministic BPE only)");
  }
  if (!sax.have_vocab) {
    const json& v = json_field(m, "vocab", w);
    fail(w, ".vocab: expected an object, found ", v.type_name());
  }
  if (!sax.have_merges) json_array(m, "merges", w);  // reports the missing or mistyped field
  BpeOptions opt;
  opt.unk_token = opt_string(m, "unk_token", w);
  opt.continuing_subword_prefix = opt_string(m, "continuing_subword_prefix", w).value_or("");
  opt.end_of_word_suffix = opt_string(m, "end_of_word_suffix", w).value_or("");
  opt.fuse_unk = json_bool(m, "fuse_unk", w, false);
  opt.byte_fallback = json_bool(m, "byte_fallback", w, false);
  opt.ignore_merges = json_bool(m, "ignore_merges", w, false);
  return std::make_unique<Bpe>(std::move(sax.vocab), sax.merges, std::move(opt));
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
    TokenizerSax sax;
    if (!json::sax_parse(tokenizer_json, &sax)) fail("tokenizer.json: ", sax.error.empty() ? "not valid JSON" : sax.error);
    const json& root = sax.root;
    if (!root.is_object()) fail("tokenizer.json: expected an object at the top, found ", root.type_name());
    t->model = make_model(json_field(root, "model", "tokenizer.json"), sax);
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
  std::error_code ec;
  if (fs::is_regular_file(d, ec)) {
    if (d.extension() == ".gguf") fail(dir, ": a GGUF file; its vocabulary is read by the GGUF loader (Tokenizer::from_spec)");
    d = d.parent_path();  // a path to tokenizer.json itself
  }
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
