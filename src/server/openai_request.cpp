// Parsing and validation of OpenAI-style request bodies. Ranges follow the OpenAI API reference
// (temperature 0..2, top_p 0..1, penalties -2..2, top_logprobs 0..20, logit_bias -100..100).
#include "server/openai_request.h"

#include <cmath>
#include <set>

namespace dm {

namespace {

using json = nlohmann::ordered_json;

// Checks fields of one JSON object; the first failure wins and is reported with its path.
class Fields {
 public:
  Fields(const json& obj, std::string prefix, std::optional<ApiError>& err)
      : obj_(obj), prefix_(std::move(prefix)), err_(err) {}

  bool failed() const { return err_.has_value(); }
  std::string path(const std::string& key) const { return prefix_.empty() ? key : prefix_ + "." + key; }
  void bad(const std::string& key, const std::string& why) {
    if (!err_) err_ = ApiError{400, "'" + path(key) + "' " + why, path(key), "invalid_request_error"};
  }
  const json* get(const std::string& key) const {
    auto it = obj_.find(key);
    return it == obj_.end() || it->is_null() ? nullptr : &*it;
  }

  std::optional<bool> boolean(const std::string& key) {
    const json* v = get(key);
    if (!v) return std::nullopt;
    if (!v->is_boolean()) return bad(key, "must be a boolean"), std::nullopt;
    return v->get<bool>();
  }
  std::optional<double> number(const std::string& key, double lo, double hi) {
    const json* v = get(key);
    if (!v) return std::nullopt;
    if (!v->is_number()) return bad(key, "must be a number"), std::nullopt;
    double d = v->get<double>();
    if (!std::isfinite(d) || d < lo || d > hi)
      return bad(key, "must be between " + fmt(lo) + " and " + fmt(hi) + ", got " + v->dump()), std::nullopt;
    return d;
  }
  std::optional<int64_t> integer(const std::string& key, int64_t lo, int64_t hi) {
    const json* v = get(key);
    if (!v) return std::nullopt;
    if (!v->is_number_integer()) return bad(key, "must be an integer, got " + v->dump()), std::nullopt;
    if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX))
      return bad(key, "is too large"), std::nullopt;
    int64_t i = v->get<int64_t>();
    if (i < lo || i > hi)
      return bad(key, "must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " +
                          std::to_string(i)),
             std::nullopt;
    return i;
  }
  std::optional<std::string> string(const std::string& key) {
    const json* v = get(key);
    if (!v) return std::nullopt;
    if (!v->is_string()) return bad(key, "must be a string"), std::nullopt;
    return v->get<std::string>();
  }

 private:
  static std::string fmt(double d) {
    std::string s = std::to_string(d);
    while (s.size() > 1 && s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
    return s;
  }
  const json& obj_;
  std::string prefix_;
  std::optional<ApiError>& err_;
};

std::optional<ApiError> parse_body(const std::string& body, json& out) {
  if (body.empty()) return ApiError{400, "request body is empty; expected a JSON object", "", "invalid_json"};
  out = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (out.is_discarded())
    return ApiError{400, "request body is not valid JSON (or not valid UTF-8)", "", "invalid_json"};
  if (!out.is_object()) return ApiError{400, "request body must be a JSON object", "", "invalid_json"};
  return std::nullopt;
}

std::optional<ApiError> check_known(const json& obj, const std::set<std::string>& known) {
  for (auto& [k, v] : obj.items())
    if (!known.count(k))
      return ApiError{400, "unrecognized request argument supplied: " + k, k, "unknown_parameter"};
  return std::nullopt;
}

void parse_stop(Fields& f, const RequestLimits& limits, std::vector<std::string>& stop) {
  const json* v = f.get("stop");
  if (!v) return;
  if (v->is_string()) {
    if (!v->get<std::string>().empty()) stop.push_back(v->get<std::string>());
    return;
  }
  if (!v->is_array()) return f.bad("stop", "must be a string or an array of strings");
  if (v->size() > limits.max_stop) return f.bad("stop", "may hold at most " + std::to_string(limits.max_stop) + " strings");
  for (auto& s : *v) {
    if (!s.is_string()) return f.bad("stop", "must be a string or an array of strings");
    if (!s.get<std::string>().empty()) stop.push_back(s.get<std::string>());
  }
}

void parse_logit_bias(Fields& f, std::vector<std::pair<int32_t, float>>& out) {
  const json* v = f.get("logit_bias");
  if (!v) return;
  if (!v->is_object()) return f.bad("logit_bias", "must be an object mapping token ids to biases");
  for (auto& [k, b] : v->items()) {
    char* end = nullptr;
    long id = std::strtol(k.c_str(), &end, 10);
    if (k.empty() || *end != '\0' || id < 0 || id > INT32_MAX)
      return f.bad("logit_bias", "keys must be token ids (non-negative integers), got '" + k + "'");
    if (!b.is_number() || !std::isfinite(b.get<double>()) || b.get<double>() < -100 || b.get<double>() > 100)
      return f.bad("logit_bias", "values must be numbers between -100 and 100");
    out.emplace_back(int32_t(id), float(b.get<double>()));
  }
}

// Fields common to both endpoints.
void parse_sampling(Fields& f, const RequestLimits& limits, SamplingRequest& s, bool chat) {
  auto mt = f.integer("max_tokens", 1, limits.max_tokens);
  if (chat) {
    auto mct = f.integer("max_completion_tokens", 1, limits.max_tokens);
    if (mct) mt = mct;
  }
  s.max_tokens = mt;
  s.temperature = f.number("temperature", 0, 2);
  s.top_p = f.number("top_p", 0, 1);
  s.min_p = f.number("min_p", 0, 1);
  s.presence_penalty = f.number("presence_penalty", -2, 2);
  s.frequency_penalty = f.number("frequency_penalty", -2, 2);
  s.repetition_penalty = f.number("repetition_penalty", 0.01, 10);
  s.top_k = f.integer("top_k", -1, 1 << 20);
  s.seed = f.integer("seed", INT64_MIN, INT64_MAX);
  parse_stop(f, limits, s.stop);
  parse_logit_bias(f, s.logit_bias);
  if (auto n = f.integer("n", 1, 128); n && *n != 1) f.bad("n", "only n=1 is supported");
}

bool parse_stream_options(Fields& f, const std::string& prefix, std::optional<ApiError>& err, bool stream) {
  const json* so = f.get("stream_options");
  if (!so) return false;
  if (!so->is_object()) return f.bad("stream_options", "must be an object"), false;
  if (!stream) return f.bad("stream_options", "is only allowed when 'stream' is true"), false;
  Fields g(*so, "stream_options", err);
  return g.boolean("include_usage").value_or(false);
}

void parse_content(Fields& f, const json& m, const std::string& path, bool allow_null) {
  auto it = m.find("content");
  if (it == m.end() || it->is_null()) {
    if (!allow_null) f.bad(path + ".content", "is required");
    return;
  }
  if (it->is_string()) return;
  if (!it->is_array()) return f.bad(path + ".content", "must be a string or an array of content parts");
  for (size_t i = 0; i < it->size(); ++i) {
    const json& part = (*it)[i];
    std::string p = path + ".content[" + std::to_string(i) + "]";
    if (!part.is_object() || !part.contains("type") || !part["type"].is_string())
      return f.bad(p, "must be an object with a 'type'");
    if (part["type"] != "text") return f.bad(p + ".type", "only 'text' content parts are supported");
    if (!part.contains("text") || !part["text"].is_string()) return f.bad(p + ".text", "must be a string");
  }
}

void parse_tool_calls(Fields& f, const json& m, const std::string& path) {
  auto it = m.find("tool_calls");
  if (it == m.end() || it->is_null()) return;
  if (!it->is_array()) return f.bad(path + ".tool_calls", "must be an array");
  for (size_t i = 0; i < it->size(); ++i) {
    const json& tc = (*it)[i];
    std::string p = path + ".tool_calls[" + std::to_string(i) + "]";
    if (!tc.is_object() || !tc.contains("function") || !tc["function"].is_object())
      return f.bad(p, "must be an object with a 'function'");
    const json& fn = tc["function"];
    if (!fn.contains("name") || !fn["name"].is_string()) return f.bad(p + ".function.name", "must be a string");
    if (fn.contains("arguments") && !fn["arguments"].is_string() && !fn["arguments"].is_object())
      return f.bad(p + ".function.arguments", "must be a JSON string");
  }
}

void parse_messages(Fields& f, const json& body, const RequestLimits& limits) {
  const json* msgs = f.get("messages");
  if (!msgs) return f.bad("messages", "is required");
  if (!msgs->is_array()) return f.bad("messages", "must be an array");
  if (msgs->empty()) return f.bad("messages", "must not be empty");
  if (msgs->size() > limits.max_messages)
    return f.bad("messages", "holds " + std::to_string(msgs->size()) + " messages; the limit is " +
                                 std::to_string(limits.max_messages));
  for (size_t i = 0; i < msgs->size() && !f.failed(); ++i) {
    const json& m = (*msgs)[i];
    std::string p = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) return f.bad(p, "must be an object");
    if (!m.contains("role") || !m["role"].is_string()) return f.bad(p + ".role", "must be a string");
    std::string role = m["role"];
    if (role == "system" || role == "developer" || role == "user") {
      parse_content(f, m, p, false);
    } else if (role == "assistant") {
      bool has_calls = m.contains("tool_calls") && !m["tool_calls"].is_null();
      parse_content(f, m, p, has_calls);
      parse_tool_calls(f, m, p);
      if (m.contains("reasoning_content") && !m["reasoning_content"].is_null() && !m["reasoning_content"].is_string())
        f.bad(p + ".reasoning_content", "must be a string");
    } else if (role == "tool") {
      parse_content(f, m, p, false);
      if (m.contains("tool_call_id") && !m["tool_call_id"].is_string()) f.bad(p + ".tool_call_id", "must be a string");
    } else {
      return f.bad(p + ".role", "must be one of system, developer, user, assistant, tool; got '" + role + "'");
    }
  }
}

void parse_tools(Fields& f, ChatRequest& r, const RequestLimits& limits) {
  if (const json* t = f.get("tools")) {
    if (!t->is_array()) return f.bad("tools", "must be an array");
    if (t->size() > limits.max_tools) return f.bad("tools", "holds too many tools");
    for (size_t i = 0; i < t->size(); ++i) {
      const json& tool = (*t)[i];
      std::string p = "tools[" + std::to_string(i) + "]";
      if (!tool.is_object() || tool.value("type", "") != "function" || !tool.contains("function") ||
          !tool["function"].is_object())
        return f.bad(p, "must be {\"type\": \"function\", \"function\": {...}}");
      if (!tool["function"].contains("name") || !tool["function"]["name"].is_string())
        return f.bad(p + ".function.name", "must be a string");
    }
    if (!t->empty()) r.tools = *t;
  }
  if (const json* tc = f.get("tool_choice")) {
    if (tc->is_string()) {
      std::string s = *tc;
      if (s != "auto" && s != "none" && s != "required")
        return f.bad("tool_choice", "must be 'auto', 'none', 'required' or a named function");
      r.tool_choice = s;
    } else if (tc->is_object() && tc->value("type", "") == "function" && tc->contains("function") &&
               (*tc)["function"].is_object() && (*tc)["function"].contains("name") &&
               (*tc)["function"]["name"].is_string()) {
      r.tool_choice = "function";
      r.tool_choice_name = (*tc)["function"]["name"];
      bool found = false;
      for (auto& tool : r.tools) found |= tool["function"]["name"] == r.tool_choice_name;
      if (!found) return f.bad("tool_choice", "names function '" + r.tool_choice_name + "', which is not in 'tools'");
    } else {
      return f.bad("tool_choice", "must be 'auto', 'none', 'required' or {\"type\": \"function\", \"function\": {\"name\": ...}}");
    }
    if (r.tool_choice != "none" && r.tool_choice != "auto" && r.tools.is_null())
      return f.bad("tool_choice", "requires 'tools'");
  }
}

}  // namespace

std::variant<ChatRequest, ApiError> parse_chat_request(const std::string& body, const RequestLimits& limits) {
  json j;
  if (auto e = parse_body(body, j)) return *e;
  static const std::set<std::string> known = {
      "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature",
      "top_p", "top_k", "min_p", "presence_penalty", "frequency_penalty", "repetition_penalty", "seed", "stop",
      "logprobs", "top_logprobs", "logit_bias", "tools", "tool_choice", "response_format",
      "chat_template_kwargs", "n", "user", "store", "metadata", "parallel_tool_calls", "service_tier",
      "reasoning_effort"};
  if (auto e = check_known(j, known)) return *e;
  std::optional<ApiError> err;
  Fields f(j, "", err);
  ChatRequest r;
  r.model = f.string("model").value_or("");
  parse_messages(f, j, limits);
  if (!err) r.messages = j["messages"];
  r.stream = f.boolean("stream").value_or(false);
  r.include_usage = parse_stream_options(f, "", err, r.stream);
  parse_sampling(f, limits, r.sampling, true);
  r.sampling.logprobs = f.boolean("logprobs").value_or(false);
  if (auto tl = f.integer("top_logprobs", 0, 20)) {
    if (!r.sampling.logprobs) f.bad("top_logprobs", "requires 'logprobs' to be true");
    r.sampling.top_logprobs = int(*tl);
  }
  parse_tools(f, r, limits);
  if (const json* rf = f.get("response_format")) {
    if (!rf->is_object() || !rf->contains("type") || !(*rf)["type"].is_string())
      f.bad("response_format", "must be an object with a 'type'");
    else if ((*rf)["type"] == "json_object")
      r.json_object = true;
    else if ((*rf)["type"] != "text")
      f.bad("response_format.type", "must be 'text' or 'json_object'");
  }
  if (const json* k = f.get("chat_template_kwargs")) {
    if (!k->is_object()) f.bad("chat_template_kwargs", "must be an object");
    else r.chat_template_kwargs = *k;
  }
  if (err) return *err;
  return r;
}

std::variant<CompletionRequest, ApiError> parse_completion_request(const std::string& body,
                                                                   const RequestLimits& limits) {
  json j;
  if (auto e = parse_body(body, j)) return *e;
  static const std::set<std::string> known = {
      "model", "prompt", "stream", "stream_options", "max_tokens", "temperature", "top_p", "top_k", "min_p",
      "presence_penalty", "frequency_penalty", "repetition_penalty", "seed", "stop", "logprobs", "logit_bias",
      "echo", "n", "user", "best_of", "suffix"};
  if (auto e = check_known(j, known)) return *e;
  std::optional<ApiError> err;
  Fields f(j, "", err);
  CompletionRequest r;
  r.model = f.string("model").value_or("");
  const json* p = f.get("prompt");
  if (!p) {
    f.bad("prompt", "is required");
  } else if (p->is_string()) {
    r.prompt_text = p->get<std::string>();
  } else if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) {
    r.prompt_text = (*p)[0].get<std::string>();
  } else if (p->is_array() && !p->empty() && (*p)[0].is_number_integer()) {
    r.prompt_is_tokens = true;
    for (auto& t : *p) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > INT32_MAX) {
        f.bad("prompt", "token arrays must hold non-negative integer token ids");
        break;
      }
      r.prompt_tokens.push_back(int32_t(t.get<int64_t>()));
    }
  } else {
    f.bad("prompt", "must be a string or an array of token ids (batches of prompts are not supported)");
  }
  r.stream = f.boolean("stream").value_or(false);
  r.include_usage = parse_stream_options(f, "", err, r.stream);
  r.echo = f.boolean("echo").value_or(false);
  parse_sampling(f, limits, r.sampling, false);
  if (auto lp = f.integer("logprobs", 0, 5)) {
    r.sampling.logprobs = true;
    r.sampling.top_logprobs = int(*lp);
  }
  if (auto bo = f.integer("best_of", 1, 1); !bo && f.get("best_of")) f.bad("best_of", "only best_of=1 is supported");
  if (f.get("suffix")) f.bad("suffix", "is not supported");
  if (err) return *err;
  return r;
}

}  // namespace dm
