// Output parser tests: model outputs in each supported format are fed whole, in token-sized pieces and one byte
// at a time; all three must give the same reasoning, content and tool calls, no delta may carry a piece of a
// marker, and every delta must be valid UTF-8. Also: parser settings detected from the fixture templates.
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>

#include "chat/chat_template.h"
#include "chat/output_parser.h"

namespace dm::chat {
namespace {

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    unsigned char c = s[i];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
    i += n;
  }
  return true;
}

const char* kMarkerPieces[] = {"<think", "</think", "<｜tool", "<tool_call", "</tool_call", "｜>"};

// Feeds `pieces`, checks every delta, returns the merged result.
ParsedDelta run(const ParserConfig& cfg, const std::vector<std::string>& pieces, const std::string& whole) {
  OutputParser p(cfg);
  ParsedDelta all;
  auto check = [&](const ParsedDelta& d) {
    EXPECT_TRUE(valid_utf8(d.content)) << d.content;
    EXPECT_TRUE(valid_utf8(d.reasoning)) << d.reasoning;
    for (const char* m : kMarkerPieces) {
      // A marker piece may appear in a delta only if the input really has it as text there.
      if (d.content.find(m) != std::string::npos) EXPECT_NE(whole.find(m), std::string::npos) << d.content;
    }
    all.append(d);
  };
  for (auto& s : pieces) check(p.push(s));
  check(p.finish());
  return all;
}

std::vector<std::string> bytes(const std::string& s) {
  std::vector<std::string> out;
  for (char c : s) out.emplace_back(1, c);
  return out;
}

// Token-like pieces: 1 to 6 bytes, cut anywhere (including inside UTF-8 sequences and markers).
std::vector<std::string> tokens(const std::string& s, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    size_t n = std::min(s.size() - i, size_t(1 + rng() % 6));
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

void expect_same(const ParsedDelta& a, const ParsedDelta& b) {
  EXPECT_EQ(a.reasoning, b.reasoning);
  EXPECT_EQ(a.content, b.content);
  ASSERT_EQ(a.tool_calls.size(), b.tool_calls.size());
  for (size_t i = 0; i < a.tool_calls.size(); ++i) {
    EXPECT_EQ(a.tool_calls[i].id, b.tool_calls[i].id);
    EXPECT_EQ(a.tool_calls[i].name, b.tool_calls[i].name);
    EXPECT_EQ(a.tool_calls[i].arguments, b.tool_calls[i].arguments);
  }
}

// Parses `text` whole, by tokens (several cuttings) and by bytes; all must agree. Returns the whole result.
ParsedDelta parse_all_ways(const ParserConfig& cfg, const std::string& text) {
  ParsedDelta whole = run(cfg, {text}, text);
  expect_same(whole, run(cfg, bytes(text), text));
  for (unsigned seed = 1; seed <= 20; ++seed) expect_same(whole, run(cfg, tokens(text, seed), text));
  return whole;
}

ParserConfig config(bool reasoning, bool starts_in_reasoning, ToolCallFormat tools) {
  ParserConfig c;
  c.reasoning = reasoning;
  c.starts_in_reasoning = starts_in_reasoning;
  c.tool_calls = tools;
  return c;
}

TEST(OutputParser, R1ReasoningOpenedByThePrompt) {
  auto r = parse_all_ways(config(true, true, ToolCallFormat::DeepSeek),
                          "\nOkay, 2+2: add them.\nIt is 4.\n</think>\n\nThe answer is **4**.");
  EXPECT_EQ(r.reasoning, "Okay, 2+2: add them.\nIt is 4.");
  EXPECT_EQ(r.content, "The answer is **4**.");
  EXPECT_TRUE(r.tool_calls.empty());
}

TEST(OutputParser, ReasoningOpenedByTheModel) {
  auto r = parse_all_ways(config(true, false, ToolCallFormat::Hermes), "<think>\nhmm, 世界?\n</think>\n\nHello 世界!");
  EXPECT_EQ(r.reasoning, "hmm, 世界?");
  EXPECT_EQ(r.content, "Hello 世界!");
}

TEST(OutputParser, NoReasoningConfiguredKeepsTextAsIs) {
  auto r = parse_all_ways(config(false, false, ToolCallFormat::None), "<think>x</think> y ");
  EXPECT_EQ(r.reasoning, "");
  EXPECT_EQ(r.content, "<think>x</think> y ");
}

TEST(OutputParser, UnfinishedReasoningStaysReasoning) {
  auto r = parse_all_ways(config(true, true, ToolCallFormat::None), "still thinking </thi");
  EXPECT_EQ(r.reasoning, "still thinking </thi");
  EXPECT_EQ(r.content, "");
}

TEST(OutputParser, LookalikesAreContent) {
  std::string text = "a < b, <thinking> is not <think, and <tool is not <tool_call either <｜tool";
  auto r = parse_all_ways(config(false, false, ToolCallFormat::Hermes), text);
  EXPECT_EQ(r.content, text);
  auto d = parse_all_ways(config(false, false, ToolCallFormat::DeepSeek), text);
  EXPECT_EQ(d.content, text);
}

TEST(OutputParser, DeepSeekR1ToolCalls) {
  std::string text =
      "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Paris\", "
      "\"unit\": \"celsius\"}\n```<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
      "```json\n{\"city\": \"Rome\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>";
  auto r = parse_all_ways(config(true, true, ToolCallFormat::DeepSeek), "I need the weather.\n</think>\n\n" + text);
  EXPECT_EQ(r.reasoning, "I need the weather.");
  EXPECT_EQ(r.content, "");
  ASSERT_EQ(r.tool_calls.size(), 2u);
  EXPECT_EQ(r.tool_calls[0].id, "call_0");
  EXPECT_EQ(r.tool_calls[0].name, "get_weather");
  EXPECT_EQ(r.tool_calls[0].arguments, "{\"city\":\"Paris\",\"unit\":\"celsius\"}");
  EXPECT_EQ(r.tool_calls[1].id, "call_1");
  EXPECT_EQ(r.tool_calls[1].arguments, "{\"city\":\"Rome\"}");
}

TEST(OutputParser, DeepSeekV31ToolCallsAfterContent) {
  auto r = parse_all_ways(config(true, false, ToolCallFormat::DeepSeek),
                          "Let me search.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>search<｜tool▁sep｜>{\"query\": "
                          "\"jinja ü\", \"limit\": 3}<｜tool▁call▁end｜><｜tool▁calls▁end｜>");
  EXPECT_EQ(r.content, "Let me search.");
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0].name, "search");
  EXPECT_EQ(r.tool_calls[0].arguments, "{\"query\":\"jinja ü\",\"limit\":3}");
}

TEST(OutputParser, HermesToolCalls) {
  std::string text =
      "I'll check both.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n"
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Rome\\\"}\"}\n</tool_call>";
  auto r = parse_all_ways(config(true, false, ToolCallFormat::Hermes), "<think>\nTwo cities.\n</think>\n\n" + text);
  EXPECT_EQ(r.reasoning, "Two cities.");
  EXPECT_EQ(r.content, "I'll check both.");
  ASSERT_EQ(r.tool_calls.size(), 2u);
  EXPECT_EQ(r.tool_calls[0].arguments, "{\"city\":\"Paris\"}");
  EXPECT_EQ(r.tool_calls[1].arguments, "{\"city\": \"Rome\"}");  // a string stays as the model wrote it
}

TEST(OutputParser, UnterminatedToolCalls) {
  // Generation stopped before </tool_call>: a complete JSON call is kept, broken text goes back to content.
  auto ok = parse_all_ways(config(false, false, ToolCallFormat::Hermes),
                           "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n");
  ASSERT_EQ(ok.tool_calls.size(), 1u);
  EXPECT_EQ(ok.tool_calls[0].name, "f");
  auto broken = parse_all_ways(config(false, false, ToolCallFormat::Hermes), "x <tool_call>\n{\"name\": \"f\", \"argu");
  EXPECT_TRUE(broken.tool_calls.empty());
  EXPECT_EQ(broken.content, "x <tool_call>\n{\"name\": \"f\", \"argu");
  auto bad = parse_all_ways(config(false, false, ToolCallFormat::Hermes), "<tool_call>not json</tool_call>tail");
  EXPECT_TRUE(bad.tool_calls.empty());
  EXPECT_EQ(bad.content, "<tool_call>not json</tool_call>tail");
}

TEST(OutputParser, ContentWhitespaceIsKeptExceptAroundMarkers) {
  auto r = parse_all_ways(config(false, false, ToolCallFormat::None), "  two  spaces \n");
  EXPECT_EQ(r.content, "  two  spaces \n");
}

std::string fixture(const std::string& rel) { return std::string(DM_TEST_DATA) + "/fixtures/" + rel; }

std::string prompt_for(const ChatTemplate& t, const std::string& kwargs_json) {
  auto req = ChatRequest::from_json(nlohmann::ordered_json::parse(
      R"({"messages": [{"role": "user", "content": "Hi"}], "add_generation_prompt": true, "chat_template_kwargs": )" +
      kwargs_json + "}"));
  return t.render(req);
}

TEST(DetectParserConfig, FromFixtureTemplates) {
  auto qwen3 = ChatTemplate::from_model_dir(fixture("tokenizers/qwen3"));
  auto c = detect_parser_config(qwen3.source(false), prompt_for(qwen3, "{}"));
  EXPECT_TRUE(c.reasoning);
  EXPECT_TRUE(c.starts_in_reasoning);  // Qwen3-2507 thinking opens <think> in the prompt
  EXPECT_EQ(c.tool_calls, ToolCallFormat::Hermes);

  auto qwen25 = ChatTemplate::from_model_dir(fixture("tokenizers/qwen2.5"));
  c = detect_parser_config(qwen25.source(false), prompt_for(qwen25, "{}"));
  EXPECT_FALSE(c.reasoning);
  EXPECT_EQ(c.tool_calls, ToolCallFormat::Hermes);

  auto r1 = ChatTemplate::from_model_dir(fixture("tokenizers/deepseek-r1"));
  c = detect_parser_config(r1.source(false), prompt_for(r1, "{}"));
  EXPECT_TRUE(c.reasoning);
  EXPECT_FALSE(c.starts_in_reasoning);  // this R1 template leaves <think> to the model
  EXPECT_EQ(c.tool_calls, ToolCallFormat::DeepSeek);

  std::vector<std::pair<std::string, Value>> ds_tokens = {{"bos_token", Value("<｜begin▁of▁sentence｜>")}};
  auto read = [](const std::string& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  ChatTemplate distill(read(fixture("templates/deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja")), ds_tokens);
  c = detect_parser_config(distill.source(false), prompt_for(distill, "{\"enable_thinking\": true}"));
  EXPECT_TRUE(c.starts_in_reasoning);
  ChatTemplate v31(read(fixture("templates/deepseek-ai-DeepSeek-V3.1.jinja")), ds_tokens);
  EXPECT_FALSE(detect_parser_config(v31.source(false), prompt_for(v31, "{\"thinking\": false}")).starts_in_reasoning);
  c = detect_parser_config(v31.source(false), prompt_for(v31, "{\"thinking\": true}"));
  EXPECT_TRUE(c.starts_in_reasoning);
  EXPECT_EQ(c.tool_calls, ToolCallFormat::DeepSeek);

  ChatTemplate coder(read(fixture("templates/Qwen3-Coder.jinja")), {});
  EXPECT_EQ(detect_parser_config(coder.source(false), "").tool_calls, ToolCallFormat::None);  // XML calls: not parsed
}

}  // namespace
}  // namespace dm::chat
