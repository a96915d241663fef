// Tokenizer metadata for GGUF files written by `deepmoe convert`, as llama.cpp's converter writes it
// (convert_hf_to_gguf.py get_vocab_base / gguf-py vocab.py SpecialVocab): token strings by id in tokenizer.json's
// byte-level form, token types (1 normal, 3 control = special added token, 4 user-defined, 5 unused = padding
// id), merges as "a b", bos/eos/pad ids, add_bos/add_eos flags and the chat template.
#include <filesystem>
#include <functional>

#include "core/error.h"
#include "core/log.h"
#include "core/mapped_file.h"
#include "model/gguf_convert.h"

namespace dm {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json load_json(const std::string& path) {
  json j = json::parse(read_file(path), nullptr, false);
  if (j.is_discarded() || !j.is_object()) fail(path, ": not a valid JSON object");
  return j;
}

// llama.cpp's pre-tokenizer name (llama-vocab.cpp LLAMA_VOCAB_PRE_TYPE_*) from the tokenizer's split regexes.
// llama.cpp itself recognises tokenizers by hashing their output on a test string; the regexes tell the same
// families apart.
std::string pre_type(const json& tok, const std::string& bos) {
  std::string pats;
  std::function<void(const json&)> walk = [&](const json& p) {
    if (p.is_object()) {
      if (p.contains("pattern") && p["pattern"].is_object() && p["pattern"].contains("Regex") &&
          p["pattern"]["Regex"].is_string())
        pats += p["pattern"]["Regex"].get<std::string>() + "\n";
      for (auto& [k, v] : p.items()) walk(v);
    } else if (p.is_array()) {
      for (auto& v : p) walk(v);
    }
  };
  if (tok.contains("pre_tokenizer")) walk(tok["pre_tokenizer"]);
  auto has = [&](const char* s) { return pats.find(s) != std::string::npos; };
  if (has("[一-龥") && has("\\p{N}{1,3}")) return "deepseek-v3";
  if (has("(?i:'s|'t|'re|'ve|'m|'ll|'d)") && has("\\p{N}{1,3}")) return "llama-bpe";
  if (has("(?i:'s|'t|'re|'ve|'m|'ll|'d)") && has("\\p{L}+|\\p{N}|"))
    return bos == "<｜begin▁of▁sentence｜>" ? "deepseek-r1-qwen" : "qwen2";
  return "";
}

std::string token_content(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

}  // namespace

std::string add_tokenizer_metadata(GgufWriter& w, const std::string& model_dir, const JsonConfig& config,
                                   int64_t vocab_size) {
  fs::path dir(model_dir);
  std::string tok_path = (dir / "tokenizer.json").string();
  int64_t cfg_bos = config.get_int("bos_token_id", -1), cfg_eos = config.get_int("eos_token_id", -1);
  if (config.has("eos_token_id") && config.json()["eos_token_id"].is_array()) {
    const auto& e = config.json()["eos_token_id"];
    cfg_eos = e.empty() || !e[0].is_number_integer() ? -1 : e[0].get<int64_t>();
  }
  if (!fs::exists(tok_path)) {
    // The stand-in llama.cpp's own tests use for models without a tokenizer: "<tN>" tokens, bos/eos control.
    std::vector<std::string> tokens;
    std::vector<int64_t> types;
    for (int64_t i = 0; i < vocab_size; ++i) {
      tokens.push_back(cat("<t", i, ">"));
      types.push_back(i == cfg_bos || i == cfg_eos ? 3 : 1);
    }
    w.set("tokenizer.ggml.model", GgufValue::string("gpt2"));
    w.set("tokenizer.ggml.pre", GgufValue::string("default"));
    w.set("tokenizer.ggml.tokens", GgufValue::string_array(std::move(tokens)));
    w.set("tokenizer.ggml.token_type", GgufValue::int_array(GgufType::I32, std::move(types)));
    w.set("tokenizer.ggml.merges", GgufValue::string_array({"<t0> <t1>"}));
    if (cfg_bos >= 0) w.set("tokenizer.ggml.bos_token_id", GgufValue::u32(uint32_t(cfg_bos)));
    if (cfg_eos >= 0) w.set("tokenizer.ggml.eos_token_id", GgufValue::u32(uint32_t(cfg_eos)));
    w.set("tokenizer.ggml.add_bos_token", GgufValue::boolean(false));
    return "no tokenizer.json: wrote a stand-in vocabulary <t0>..<tN> (feed token ids)";
  }

  json tok = load_json(tok_path);
  if (!tok.contains("model") || !tok["model"].is_object() || tok["model"].value("type", "") != "BPE")
    fail(tok_path, ": only BPE tokenizers can be converted (model.type must be \"BPE\")");
  const json& model = tok["model"];
  if (!model.contains("vocab") || !model["vocab"].is_object()) fail(tok_path, ": model.vocab must be an object");
  std::vector<std::string> tokens(static_cast<size_t>(vocab_size));
  std::vector<int64_t> types(size_t(vocab_size), 5);  // unused until filled
  auto put = [&](int64_t id, const std::string& s, int64_t type, const char* what) {
    if (id < 0 || id >= vocab_size)
      fail(tok_path, ": ", what, " '", s, "' has id ", id, " outside the vocabulary of ", vocab_size);
    tokens[size_t(id)] = s;
    types[size_t(id)] = type;
  };
  for (auto& [s, id] : model["vocab"].items()) {
    if (!id.is_number_integer()) fail(tok_path, ": model.vocab['", s, "'] is not an integer id");
    put(id.get<int64_t>(), s, 1, "token");
  }
  if (tok.contains("added_tokens") && tok["added_tokens"].is_array())
    for (auto& a : tok["added_tokens"]) {
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") ||
          !a["content"].is_string())
        fail(tok_path, ": added_tokens entries need an integer 'id' and a string 'content'");
      put(a["id"].get<int64_t>(), a["content"].get<std::string>(), a.value("special", false) ? 3 : 4, "added token");
    }
  for (int64_t i = 0; i < vocab_size; ++i)
    if (types[size_t(i)] == 5) tokens[size_t(i)] = cat("[PAD", i, "]");

  std::vector<std::string> merges;
  if (model.contains("merges") && model["merges"].is_array())
    for (auto& m : model["merges"]) {
      if (m.is_string()) merges.push_back(m.get<std::string>());
      else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string())
        merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
      else fail(tok_path, ": model.merges entries must be \"a b\" strings or [a, b] pairs");
    }

  json tc;
  std::string tc_path = (dir / "tokenizer_config.json").string();
  if (fs::exists(tc_path)) tc = load_json(tc_path);
  auto id_of = [&](const char* key) -> int64_t {
    if (!tc.contains(key)) return -1;
    std::string s = token_content(tc[key]);
    for (int64_t i = 0; i < vocab_size; ++i)
      if (tokens[size_t(i)] == s) return i;
    return -1;
  };
  int64_t bos = id_of("bos_token"), eos = id_of("eos_token"), pad = id_of("pad_token");
  if (bos < 0) bos = cfg_bos;
  if (eos < 0) eos = cfg_eos;
  std::string pre = pre_type(tok, bos >= 0 ? tokens[size_t(bos)] : "");
  if (pre.empty()) {
    log_warn(tok_path, ": pre-tokenizer not recognised; writing tokenizer.ggml.pre = default");
    pre = "default";
  }

  w.set("tokenizer.ggml.model", GgufValue::string("gpt2"));
  w.set("tokenizer.ggml.pre", GgufValue::string(pre));
  w.set("tokenizer.ggml.tokens", GgufValue::string_array(std::move(tokens)));
  w.set("tokenizer.ggml.token_type", GgufValue::int_array(GgufType::I32, std::move(types)));
  w.set("tokenizer.ggml.merges", GgufValue::string_array(std::move(merges)));
  if (bos >= 0) w.set("tokenizer.ggml.bos_token_id", GgufValue::u32(uint32_t(bos)));
  if (eos >= 0) w.set("tokenizer.ggml.eos_token_id", GgufValue::u32(uint32_t(eos)));
  if (pad >= 0) w.set("tokenizer.ggml.padding_token_id", GgufValue::u32(uint32_t(pad)));
  if (tc.contains("add_bos_token") && tc["add_bos_token"].is_boolean())
    w.set("tokenizer.ggml.add_bos_token", GgufValue::boolean(tc["add_bos_token"].get<bool>()));
  if (tc.contains("add_eos_token") && tc["add_eos_token"].is_boolean())
    w.set("tokenizer.ggml.add_eos_token", GgufValue::boolean(tc["add_eos_token"].get<bool>()));
  std::string tmpl;
  if (tc.contains("chat_template") && tc["chat_template"].is_string()) {
    tmpl = tc["chat_template"].get<std::string>();
  } else if (tc.contains("chat_template") && tc["chat_template"].is_array()) {
    for (auto& t : tc["chat_template"])
      if (t.is_object() && t.value("name", "") == "default" && t.contains("template") && t["template"].is_string())
        tmpl = t["template"].get<std::string>();
  } else if (fs::exists(dir / "chat_template.jinja")) {
    tmpl = read_file((dir / "chat_template.jinja").string());
  }
  if (!tmpl.empty()) w.set("tokenizer.chat_template", GgufValue::string(tmpl));
  return "";
}

}  // namespace dm
