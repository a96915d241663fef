// OpenAI / DeepSeek API requests: parsing and validation of /v1/chat/completions and /v1/completions bodies into
// typed structs. Every problem is an ApiError naming the field (param) and why; nothing here throws.
// Unknown top-level fields are refused (as the OpenAI API does), except a list of known fields we accept and
// ignore (user, store, metadata, ...).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/api_error.h"

namespace dm {

// Limits applied while parsing (the server sets them from its options and the model's context).
struct RequestLimits {
  size_t max_messages = 4096;
  size_t max_stop = 16;
  size_t max_tools = 256;
  int64_t max_tokens = 1 << 20;  // upper bound for max_tokens (the server also checks the context length)
};

struct SamplingRequest {
  std::optional<int64_t> max_tokens;
  std::optional<double> temperature, top_p, min_p, presence_penalty, frequency_penalty, repetition_penalty;
  std::optional<int64_t> top_k, seed;
  std::vector<std::string> stop;
  bool logprobs = false;
  int top_logprobs = 0;
  std::vector<std::pair<int32_t, float>> logit_bias;
};

struct ChatRequest {
  std::string model;
  nlohmann::ordered_json messages;  // validated array, passed to the chat template as given (key order kept)
  nlohmann::ordered_json tools;     // array or null
  std::string tool_choice = "auto";  // auto | none | required | function
  std::string tool_choice_name;      // for tool_choice == "function"
  bool json_object = false;          // response_format {"type": "json_object"}
  nlohmann::ordered_json chat_template_kwargs = nlohmann::ordered_json::object();
  bool stream = false;
  bool include_usage = false;
  SamplingRequest sampling;
};

struct CompletionRequest {
  std::string model;
  std::string prompt_text;             // when the prompt is a string
  std::vector<int32_t> prompt_tokens;  // when the prompt is an array of token ids
  bool prompt_is_tokens = false;
  bool stream = false;
  bool include_usage = false;
  bool echo = false;
  SamplingRequest sampling;            // logprobs here is the integer form: top_logprobs holds N
};

std::variant<ChatRequest, ApiError> parse_chat_request(const std::string& body, const RequestLimits& limits);
std::variant<CompletionRequest, ApiError> parse_completion_request(const std::string& body,
                                                                   const RequestLimits& limits);

}  // namespace dm
