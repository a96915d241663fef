// What the HTTP layer needs of a served model, so that HTTP, SSE and error handling can be written (and tested)
// apart from the engine. The real implementation (model_backend.h) joins chat template, tokenizer, engine,
// incremental detokenizer and output parsers; tests use scripted fakes.
// Threading: start_*() and every Completion method are called from HTTP worker threads; a Completion is used by
// one thread at a time.
#pragma once
#include <chrono>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/api_error.h"
#include "server/openai_request.h"

namespace dm {

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t reasoning_tokens = 0;
  int64_t cached_prompt_tokens = 0;  // prompt tokens whose KV came from the prefix cache
};

// One piece of output, already split into reasoning, answer text and tool calls.
struct Delta {
  std::string reasoning;
  std::string content;
  nlohmann::json tool_calls = nlohmann::json::array();  // OpenAI tool_call objects {id,type,function{name,arguments}}
  nlohmann::json logprobs = nlohmann::json::array();    // OpenAI logprob entries for the tokens of this delta
  std::string text;  // /v1/completions: raw text of the delta (no reasoning/tool split)
  bool empty() const {
    return reasoning.empty() && content.empty() && tool_calls.empty() && logprobs.empty() && text.empty();
  }
};

class Completion {
 public:
  virtual ~Completion() = default;
  // Waits up to `timeout` for more output. Returns false once the generation has finished and all output has
  // been returned; `out` then holds nothing.
  virtual bool next(Delta& out, std::chrono::milliseconds timeout) = 0;
  // Stops the generation and frees its memory at once (client gone, shutdown). Idempotent.
  virtual void cancel() = 0;
  virtual std::string finish_reason() const = 0;  // "stop", "length", "tool_calls", "cancelled" (after next()=false)
  virtual Usage usage() const = 0;
  virtual std::string prompt_text() const { return ""; }  // for /v1/completions echo
};

class ModelBackend {
 public:
  virtual ~ModelBackend() = default;
  virtual std::string id() const = 0;
  virtual int64_t context_length() const = 0;
  virtual std::variant<std::unique_ptr<Completion>, ApiError> start_chat(const ChatRequest& req) = 0;
  virtual std::variant<std::unique_ptr<Completion>, ApiError> start_completion(const CompletionRequest& req) = 0;
  // Prometheus text lines for this model (each line already labelled with model="<id>").
  virtual std::string metrics_text() const { return ""; }
  virtual bool ready() const { return true; }
};

}  // namespace dm
