// Building OpenAI / DeepSeek API response objects. Usage carries both OpenAI's prompt_tokens_details.cached_tokens
// and DeepSeek's prompt_cache_hit_tokens / prompt_cache_miss_tokens.
#include "server/openai_response.h"

#include <random>

namespace dm {

using json = nlohmann::json;

std::string new_completion_id(const char* prefix) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  static const char* hex = "0123456789abcdef";
  std::string s = prefix;
  for (int i = 0; i < 24; ++i) s.push_back(hex[rng() & 15]);
  return s;
}

json usage_json(const Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens},
          {"completion_tokens_details", {{"reasoning_tokens", u.reasoning_tokens}}},
          {"prompt_tokens_details", {{"cached_tokens", u.cached_prompt_tokens}}},
          {"prompt_cache_hit_tokens", u.cached_prompt_tokens},
          {"prompt_cache_miss_tokens", u.prompt_tokens - u.cached_prompt_tokens}};
}

void append_delta(Delta& acc, const Delta& d) {
  acc.reasoning += d.reasoning;
  acc.content += d.content;
  acc.text += d.text;
  for (auto& t : d.tool_calls) acc.tool_calls.push_back(t);
  for (auto& l : d.logprobs) acc.logprobs.push_back(l);
}

json chat_response(const ResponseMeta& m, const Delta& all, const std::string& finish, const Usage& u,
                   bool logprobs) {
  json msg = {{"role", "assistant"}};
  bool calls = !all.tool_calls.empty();
  msg["content"] = calls && all.content.empty() ? json(nullptr) : json(all.content);
  if (!all.reasoning.empty()) msg["reasoning_content"] = all.reasoning;
  if (calls) msg["tool_calls"] = all.tool_calls;
  json choice = {{"index", 0}, {"message", msg}, {"finish_reason", finish}};
  choice["logprobs"] = logprobs ? json{{"content", all.logprobs}} : json(nullptr);
  return {{"id", m.id},       {"object", "chat.completion"}, {"created", m.created}, {"model", m.model},
          {"choices", {choice}}, {"usage", usage_json(u)}};
}

json chat_chunk(const ResponseMeta& m, const json& delta, const json& finish, const json& logprobs) {
  json choice = {{"index", 0}, {"delta", delta}, {"logprobs", logprobs}, {"finish_reason", finish}};
  return {{"id", m.id}, {"object", "chat.completion.chunk"}, {"created", m.created}, {"model", m.model},
          {"choices", {choice}}};
}

json usage_chunk(const ResponseMeta& m, const char* object, const Usage& u) {
  return {{"id", m.id},       {"object", object}, {"created", m.created}, {"model", m.model},
          {"choices", json::array()}, {"usage", usage_json(u)}};
}

json completion_response(const ResponseMeta& m, const std::string& text, const json& logprobs,
                         const std::string& finish, const Usage& u) {
  json choice = {{"index", 0}, {"text", text}, {"logprobs", logprobs}, {"finish_reason", finish}};
  return {{"id", m.id},       {"object", "text_completion"}, {"created", m.created}, {"model", m.model},
          {"choices", {choice}}, {"usage", usage_json(u)}};
}

json completion_chunk(const ResponseMeta& m, const std::string& text, const json& logprobs, const json& finish) {
  json choice = {{"index", 0}, {"text", text}, {"logprobs", logprobs}, {"finish_reason", finish}};
  return {{"id", m.id}, {"object", "text_completion"}, {"created", m.created}, {"model", m.model},
          {"choices", {choice}}};
}

}  // namespace dm
