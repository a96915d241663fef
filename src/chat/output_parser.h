// Splits generated text into reasoning, answer content and OpenAI-style tool calls, incrementally: push() text
// pieces as they are decoded, finish() at the end. A marker split across pieces is held back until it is known to
// be (or not be) a marker, so markers never leak into content, and the result does not depend on how the text was
// cut. Formats: <think>...</think> reasoning (optionally already open in the prompt, as DeepSeek-R1's template
// leaves it), DeepSeek V3/R1/V3.1 tool calls (<｜tool▁calls▁begin｜>...), Qwen/Hermes <tool_call>{json}</tool_call>.
// Not thread safe: one parser per generated sequence.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace dm::chat {

enum class ToolCallFormat {
  None,
  DeepSeek,  // <｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\nARGS\n```<｜tool▁call▁end｜> (V3, R1)
             // or <｜tool▁call▁begin｜>NAME<｜tool▁sep｜>ARGS<｜tool▁call▁end｜> (V3.1), inside
             // <｜tool▁calls▁begin｜> ... <｜tool▁calls▁end｜>
  Hermes,    // <tool_call>\n{"name": NAME, "arguments": {...}}\n</tool_call> (Qwen2.5, Qwen3, QwQ)
};

struct ParserConfig {
  bool reasoning = false;            // the model writes reasoning between reasoning_start and reasoning_end
  bool starts_in_reasoning = false;  // the prompt already opened reasoning_start
  std::string reasoning_start = "<think>";
  std::string reasoning_end = "</think>";
  ToolCallFormat tool_calls = ToolCallFormat::None;
  std::string tool_call_id_prefix = "call_";  // ids are prefix + 0, 1, ...; the server makes the prefix unique
};

struct ToolCall {
  std::string id;
  std::string name;
  std::string arguments;  // a JSON text (compact when the model's JSON parses, else as the model wrote it)
};

struct ParsedDelta {
  std::string reasoning;
  std::string content;
  std::vector<ToolCall> tool_calls;
  bool empty() const { return reasoning.empty() && content.empty() && tool_calls.empty(); }
  void append(const ParsedDelta& d);
};

class OutputParser {
 public:
  explicit OutputParser(ParserConfig config);
  ParsedDelta push(std::string_view text);
  ParsedDelta finish();  // flushes what is held back; call once at the end of generation

 private:
  enum class Mode { Content, Reasoning, DeepSeekCalls, HermesCall };
  ParserConfig cfg_;
  Mode mode_;
  std::string buf_;              // text not yet consumed
  std::string held_ws_;          // trailing whitespace of content / reasoning, dropped before a marker
  std::string dropped_ws_;       // the whitespace dropped before the last tool-call marker
  std::string entry_marker_;     // what opened the DeepSeek tool-call section (given back if it was not one)
  bool strip_leading_ = false;   // drop whitespace at the start of the next content / reasoning
  int n_calls_ = 0;

  void process(ParsedDelta& out, bool at_end);
  void emit(ParsedDelta& out, std::string_view text, bool reasoning);
  bool parse_deepseek_call(std::string_view body, ParsedDelta& out);
  bool parse_hermes_call(std::string_view body, ParsedDelta& out);
  std::string next_id() { return cfg_.tool_call_id_prefix + std::to_string(n_calls_++); }
};

// The parser settings a chat template implies: reasoning markers if the template writes <think>/</think>,
// starts_in_reasoning if the rendered prompt ends inside an open <think>, the tool-call format the template
// teaches or replays.
ParserConfig detect_parser_config(std::string_view template_source, std::string_view rendered_prompt);

}  // namespace dm::chat
