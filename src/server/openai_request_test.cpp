// Request parsing: valid bodies map to typed fields; each malformed body is a 400 naming the field.
#include <gtest/gtest.h>

#include "server/openai_request.h"

using namespace dm;

static ApiError chat_error(const std::string& body) {
  auto r = parse_chat_request(body, RequestLimits{});
  EXPECT_TRUE(std::holds_alternative<ApiError>(r)) << body;
  return std::holds_alternative<ApiError>(r) ? std::get<ApiError>(r) : ApiError{};
}

TEST(ChatRequest, ParsesFullRequest) {
  auto r = parse_chat_request(R"({
    "model": "m", "stream": true, "stream_options": {"include_usage": true},
    "messages": [{"role": "system", "content": "be brief"},
                 {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                 {"role": "assistant", "content": null, "reasoning_content": "hm",
                  "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                 {"role": "tool", "tool_call_id": "c1", "content": "42"}],
    "max_completion_tokens": 10, "temperature": 0.5, "top_p": 0.9, "top_k": 40, "min_p": 0.05, "seed": 7,
    "stop": ["\n\n", "END"], "logprobs": true, "top_logprobs": 3, "logit_bias": {"12": -100, "7": 5.5},
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
    "tool_choice": {"type": "function", "function": {"name": "f"}},
    "response_format": {"type": "json_object"}, "chat_template_kwargs": {"enable_thinking": false}})",
                              RequestLimits{});
  ASSERT_TRUE(std::holds_alternative<ChatRequest>(r)) << std::get<ApiError>(r).message;
  const ChatRequest& c = std::get<ChatRequest>(r);
  EXPECT_EQ(c.model, "m");
  EXPECT_TRUE(c.stream);
  EXPECT_TRUE(c.include_usage);
  EXPECT_EQ(c.messages.size(), 4u);
  EXPECT_EQ(*c.sampling.max_tokens, 10);
  EXPECT_DOUBLE_EQ(*c.sampling.temperature, 0.5);
  EXPECT_EQ(*c.sampling.top_k, 40);
  EXPECT_EQ(*c.sampling.seed, 7);
  EXPECT_EQ(c.sampling.stop, (std::vector<std::string>{"\n\n", "END"}));
  EXPECT_EQ(c.sampling.top_logprobs, 3);
  ASSERT_EQ(c.sampling.logit_bias.size(), 2u);
  EXPECT_EQ(c.tool_choice, "function");
  EXPECT_EQ(c.tool_choice_name, "f");
  EXPECT_TRUE(c.json_object);
  EXPECT_EQ(c.chat_template_kwargs["enable_thinking"], false);
}

TEST(ChatRequest, MalformedBodiesNameTheField) {
  struct Case {
    const char* body;
    const char* param;
  } cases[] = {
      {"", ""},
      {"{", ""},
      {"[1,2]", ""},
      {"{\"messages\": \"hi\"}", "messages"},
      {"{\"model\": \"m\"}", "messages"},
      {"{\"messages\": []}", "messages"},
      {"{\"messages\": [1]}", "messages[0]"},
      {"{\"messages\": [{\"role\": \"wizard\", \"content\": \"x\"}]}", "messages[0].role"},
      {"{\"messages\": [{\"role\": \"user\"}]}", "messages[0].content"},
      {"{\"messages\": [{\"role\": \"user\", \"content\": 5}]}", "messages[0].content"},
      {"{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\"}]}]}", "messages[0].content[0].type"},
      {"{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"temperature\": \"hot\"}", "temperature"},
      {"{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"temperature\": 9}", "temperature"},
      {"{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"max_tokens\": -1}", "max_tokens"},
      {"{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"max_tokens\": 1e300}", "max_tokens"},
      {"{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"max_tokens\": 99999999999999999999}", "max_tokens"},
      {"{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"n\": 2}", "n"},
      {"{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"stop\": 3}", "stop"},
      {"{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"logit_bias\": {\"abc\": 1}}", "logit_bias"},
      {"{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"top_logprobs\": 3}", "top_logprobs"},
      {"{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"tools\": [{\"type\": \"x\"}]}", "tools[0]"},
      {"{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"tool_choice\": \"required\"}", "tool_choice"},
      {"{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"stream_options\": {}}", "stream_options"},
      {"{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"response_format\": {\"type\": \"xml\"}}", "response_format.type"},
      {"{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"frobnicate\": 1}", "frobnicate"},
      {"{\"messages\": [{\"role\": \"user\", \"content\": \"\xff\xfe\"}]}", ""},
  };
  for (const Case& c : cases) {
    ApiError e = chat_error(c.body);
    EXPECT_EQ(e.status, 400) << c.body;
    EXPECT_EQ(e.param, c.param) << c.body << " -> " << e.message;
    EXPECT_FALSE(e.message.empty());
    EXPECT_TRUE(e.body()["error"].contains("type"));
  }
}

TEST(CompletionRequest, PromptForms) {
  auto a = parse_completion_request(R"({"prompt": "Hello", "echo": true, "logprobs": 2})", RequestLimits{});
  ASSERT_TRUE(std::holds_alternative<CompletionRequest>(a));
  EXPECT_EQ(std::get<CompletionRequest>(a).prompt_text, "Hello");
  EXPECT_TRUE(std::get<CompletionRequest>(a).echo);
  EXPECT_EQ(std::get<CompletionRequest>(a).sampling.top_logprobs, 2);
  auto b = parse_completion_request(R"({"prompt": [1, 2, 3]})", RequestLimits{});
  ASSERT_TRUE(std::holds_alternative<CompletionRequest>(b));
  EXPECT_EQ(std::get<CompletionRequest>(b).prompt_tokens, (std::vector<int32_t>{1, 2, 3}));
  for (const char* bad : {R"({})", R"({"prompt": [1, -2]})", R"({"prompt": ["a", "b"]})", R"({"prompt": 5})"}) {
    auto r = parse_completion_request(bad, RequestLimits{});
    ASSERT_TRUE(std::holds_alternative<ApiError>(r)) << bad;
    EXPECT_EQ(std::get<ApiError>(r).param, "prompt") << bad;
  }
  auto s = parse_completion_request(R"({"prompt": "x", "suffix": "y"})", RequestLimits{});
  ASSERT_TRUE(std::holds_alternative<ApiError>(s));
  EXPECT_EQ(std::get<ApiError>(s).param, "suffix");
}
