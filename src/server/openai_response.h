// OpenAI-shaped response bodies and SSE chunks for chat completions and completions.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "server/backend.h"

namespace dm {

struct ResponseMeta {
  std::string id;       // chatcmpl-... / cmpl-...
  std::string model;
  int64_t created = 0;  // unix seconds
};

std::string new_completion_id(const char* prefix);  // prefix + 24 random hex digits
nlohmann::json usage_json(const Usage& u);

// Chat: the whole reply (stream=false), one streamed chunk, and the usage-only final chunk.
nlohmann::json chat_response(const ResponseMeta& m, const Delta& all, const std::string& finish, const Usage& u,
                             bool logprobs);
nlohmann::json chat_chunk(const ResponseMeta& m, const nlohmann::json& delta, const nlohmann::json& finish,
                          const nlohmann::json& logprobs = nullptr);
nlohmann::json usage_chunk(const ResponseMeta& m, const char* object, const Usage& u);

// Completions (legacy API).
nlohmann::json completion_response(const ResponseMeta& m, const std::string& text, const nlohmann::json& logprobs,
                                   const std::string& finish, const Usage& u);
nlohmann::json completion_chunk(const ResponseMeta& m, const std::string& text, const nlohmann::json& logprobs,
                                const nlohmann::json& finish);

// "data: <json>\n\n"
inline std::string sse(const nlohmann::json& j) {
  return "data: " + j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n\n";
}

// Appends the delta to an accumulated one (non-streamed replies are built from the same deltas).
void append_delta(Delta& acc, const Delta& d);

}  // namespace dm
