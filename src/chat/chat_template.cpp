// Loading a model's chat template and rendering requests with it, with the variables transformers passes
// (apply_chat_template -> render_jinja_template: messages, tools, documents, add_generation_prompt,
// **special_tokens_map, **chat_template_kwargs).
#include "chat/chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace dm::chat {

namespace {

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) fail(p.string(), ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A special token in tokenizer_config.json: "text", {"content": "text", ...}, or null.
std::optional<std::string> token_text(const nlohmann::ordered_json& j, const std::string& where) {
  if (j.is_null()) return std::nullopt;
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content") && j["content"].is_string()) return j["content"].get<std::string>();
  fail(where, ": expected a string or {\"content\": ...}");
}

}  // namespace

ChatRequest ChatRequest::from_json(const nlohmann::ordered_json& j) {
  if (!j.is_object()) fail("request: expected a JSON object");
  ChatRequest r;
  if (!j.contains("messages")) fail("request: missing field 'messages'");
  const auto& m = j["messages"];
  if (!m.is_array()) fail("request: 'messages' must be an array");
  for (size_t i = 0; i < m.size(); ++i)
    if (!m[i].is_object()) fail("request: messages[", i, "] must be an object");
  r.messages = chat::from_json(m);
  if (j.contains("tools") && !j["tools"].is_null()) {
    if (!j["tools"].is_array()) fail("request: 'tools' must be an array");
    r.tools = chat::from_json(j["tools"]);
  }
  if (j.contains("add_generation_prompt")) {
    if (!j["add_generation_prompt"].is_boolean()) fail("request: 'add_generation_prompt' must be a boolean");
    r.add_generation_prompt = j["add_generation_prompt"].get<bool>();
  }
  if (j.contains("chat_template_kwargs") && !j["chat_template_kwargs"].is_null()) {
    const auto& k = j["chat_template_kwargs"];
    if (!k.is_object()) fail("request: 'chat_template_kwargs' must be an object");
    for (auto& [key, v] : k.items()) {
      if (key == "messages" || key == "tools" || key == "documents" || key == "add_generation_prompt")
        fail("request: chat_template_kwargs may not set '", key, "'");
      r.chat_template_kwargs.emplace_back(key, chat::from_json(v));
    }
  }
  return r;
}

ChatTemplate::ChatTemplate(std::string source, std::vector<std::pair<std::string, Value>> special_tokens,
                           std::optional<std::string> tool_use_source)
    : source_(std::move(source)),
      tool_use_source_(std::move(tool_use_source)),
      template_(source_),
      special_tokens_(std::move(special_tokens)) {
  if (tool_use_source_) tool_use_template_.emplace(*tool_use_source_);
}

ChatTemplate ChatTemplate::from_model_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  fs::path config_path = fs::path(dir) / "tokenizer_config.json";
  fs::path jinja_path = fs::path(dir) / "chat_template.jinja";
  nlohmann::ordered_json config = nlohmann::ordered_json::object();
  std::error_code ec;
  if (fs::exists(config_path, ec)) {
    try {
      config = nlohmann::ordered_json::parse(read_file(config_path));
    } catch (const nlohmann::json::exception& e) {
      fail(config_path.string(), ": bad JSON: ", e.what());
    }
    if (!config.is_object()) fail(config_path.string(), ": expected a JSON object");
  }
  std::vector<std::pair<std::string, Value>> tokens;
  for (const char* name : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"}) {
    if (!config.contains(name)) continue;
    if (auto t = token_text(config[name], config_path.string() + " field " + name)) tokens.emplace_back(name, Value(*t));
  }
  if (config.contains("additional_special_tokens") && config["additional_special_tokens"].is_array()) {
    std::vector<Value> extra;
    for (auto& t : config["additional_special_tokens"])
      if (auto s = token_text(t, config_path.string() + " field additional_special_tokens")) extra.emplace_back(*s);
    tokens.emplace_back("additional_special_tokens", make_list(std::move(extra)));
  }

  if (fs::exists(jinja_path, ec)) return ChatTemplate(read_file(jinja_path), std::move(tokens));
  if (!config.contains("chat_template"))
    fail(dir, ": no chat template (neither chat_template.jinja nor tokenizer_config.json 'chat_template')");
  const auto& ct = config["chat_template"];
  if (ct.is_string()) return ChatTemplate(ct.get<std::string>(), std::move(tokens));
  if (!ct.is_array()) fail(config_path.string(), ": 'chat_template' must be a string or a list of {name, template}");
  std::optional<std::string> dflt, tool_use;
  for (auto& e : ct) {
    if (!e.is_object() || !e.contains("name") || !e.contains("template") || !e["name"].is_string() ||
        !e["template"].is_string())
      fail(config_path.string(), ": 'chat_template' entries must be {\"name\": str, \"template\": str}");
    if (e["name"] == "default") dflt = e["template"].get<std::string>();
    if (e["name"] == "tool_use") tool_use = e["template"].get<std::string>();
  }
  if (!dflt) fail(config_path.string(), ": 'chat_template' has several templates and none named 'default'");
  return ChatTemplate(*dflt, std::move(tokens), tool_use);
}

const std::string& ChatTemplate::source(bool with_tools) const {
  return with_tools && tool_use_source_ ? *tool_use_source_ : source_;
}

std::string ChatTemplate::render(const ChatRequest& req, const RenderLimits& limits) const {
  std::vector<std::pair<std::string, Value>> vars;
  vars.emplace_back("messages", req.messages);
  vars.emplace_back("tools", req.tools ? *req.tools : Value(None{}));
  vars.emplace_back("documents", Value(None{}));
  vars.emplace_back("add_generation_prompt", Value(req.add_generation_prompt));
  for (auto& t : special_tokens_) vars.push_back(t);
  for (auto& kv : req.chat_template_kwargs) {
    bool replaced = false;
    for (auto& [k, v] : vars)
      if (k == kv.first) {
        v = kv.second;
        replaced = true;
      }
    if (!replaced) vars.push_back(kv);
  }
  const Template& t = req.tools && tool_use_template_ ? *tool_use_template_ : template_;
  return t.render(vars, limits);
}

}  // namespace dm::chat
