// Fuzz target for the Jinja lexer, parser and renderer: any bytes as a template, rendered with a small fixed
// context (messages, tools, flags) under tight limits. Must never crash, hang or leak; errors are TemplateError.
#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "chat/jinja.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto* context = [] {
    auto j = nlohmann::ordered_json::parse(R"({
      "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "héllo {{ x }}"},
                   {"role": "assistant", "content": null, "reasoning_content": "r",
                    "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"a\": 1}"}}]},
                   {"role": "tool", "tool_call_id": "c", "content": "42"}],
      "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
      "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>", "enable_thinking": false})");
    auto* vars = new std::vector<std::pair<std::string, dm::chat::Value>>;
    for (auto& [k, v] : j.items()) vars->emplace_back(k, dm::chat::from_json(v));
    return vars;
  }();
  dm::chat::RenderLimits limits;
  limits.max_steps = 200000;
  limits.max_output = 1 << 20;
  limits.max_call_depth = 32;
  try {
    dm::chat::Template t(std::string(reinterpret_cast<const char*>(data), size));
    t.render(*context, limits);
  } catch (const dm::Error&) {
  }
  return 0;
}
