// A model's chat template and the OpenAI-style request it renders: the variables are those transformers'
// apply_chat_template passes (messages and tools exactly as given, documents=None, add_generation_prompt, the
// tokenizer's special tokens such as bos_token / eos_token, then each chat_template_kwargs entry).
// Reference: transformers tokenization_utils_base.apply_chat_template, utils/chat_template_utils.py.
#pragma once
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "chat/jinja.h"

namespace dm::chat {

struct ChatRequest {
  Value messages;            // a list of message dicts, passed through as given
  std::optional<Value> tools;  // absent -> the template sees tools = None
  bool add_generation_prompt = false;
  std::vector<std::pair<std::string, Value>> chat_template_kwargs;

  // From {"messages": [...], "tools": [...], "add_generation_prompt": bool, "chat_template_kwargs": {...}};
  // other keys are ignored. Throws dm::Error naming the bad field.
  static ChatRequest from_json(const nlohmann::ordered_json& j);
};

class ChatTemplate {
 public:
  // `special_tokens`: bos_token, eos_token, ... as transformers' special_tokens_map (only those that are set).
  ChatTemplate(std::string source, std::vector<std::pair<std::string, Value>> special_tokens,
               std::optional<std::string> tool_use_source = std::nullopt);

  // From a Hugging Face model directory: chat_template.jinja if present (it takes precedence, as in
  // transformers), else tokenizer_config.json "chat_template" (a string, or a list of {name, template} using
  // "default", and "tool_use" when tools are given); special tokens from tokenizer_config.json.
  static ChatTemplate from_model_dir(const std::string& dir);

  // Throws TemplateError (with line and column) when the template fails, as Jinja2 would.
  std::string render(const ChatRequest& request, const RenderLimits& limits = {}) const;

  // The template text used for a request with (or without) tools.
  const std::string& source(bool with_tools) const;

 private:
  std::string source_;
  std::optional<std::string> tool_use_source_;
  Template template_;
  std::optional<Template> tool_use_template_;
  std::vector<std::pair<std::string, Value>> special_tokens_;
};

}  // namespace dm::chat
