// What `deepmoe run` and `deepmoe chat` share: a model with its tokenizer and generation_config.json, and the
// streaming of one answer through the engine: token ids -> incremental detokenizer -> stop strings (matched
// across tokens) -> chat::OutputParser (reasoning apart from the answer, tool calls) -> the terminal (reasoning
// dimmed on a TTY, marked with "[thinking]" / "[answer]" lines otherwise). Ctrl-C (an atomic flag) stops it.
#pragma once
#include <atomic>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "chat/chat_template.h"
#include "chat/output_parser.h"
#include "core/thread_pool.h"
#include "engine/engine.h"
#include "engine/sampler.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace dm::cli {

struct ModelBundle {
  std::string dir;
  std::unique_ptr<Model> model;
  std::optional<Tokenizer> tokenizer;
  GenerationConfig gen;
  std::vector<int32_t> eos;  // config.json, generation_config.json and the tokenizer's EOS
  std::optional<chat::ChatTemplate> chat_template;  // loaded on first use
};
ModelBundle load_bundle(const std::string& dir, bool quiet);

// The model's chat template applied to `messages` (OpenAI-style), with the generation prompt added.
// Throws dm::Error when the model has no template or it fails.
std::string render_chat_prompt(ModelBundle& b, const nlohmann::json& messages);

struct AnswerOptions {
  SamplingParams sampling;
  int64_t max_tokens = 0;
  std::vector<std::string> stop;
  std::optional<chat::ParserConfig> parser;  // how to split the output; none: print it as it is (--raw)
  bool color = false;         // ANSI dim for reasoning
  FILE* out = stdout;
  const std::atomic<bool>* interrupt = nullptr;
};

struct Answer {
  std::string reasoning, content;
  FinishReason finish = FinishReason::None;
  std::string error;
  RequestUsage usage;
  Timing timing;
};

// Submits `prompt` to `engine`, drives engine.step() on this thread until the answer is complete, printing as
// it goes. A rejected request throws dm::Error with the engine's reason.
Answer stream_answer(Engine& engine, const Tokenizer& tok, std::vector<int32_t> prompt, const AnswerOptions& opt);

// "prompt 12 tokens (8 cached), 345.6 tok/s | generated 100 tokens, 12.3 tok/s"
std::string stats_line(const Answer& a);

// The output parser settings for a prompt rendered by the bundle's chat template.
chat::ParserConfig parser_config(const ModelBundle& b, const std::string& rendered_prompt);

}  // namespace dm::cli
