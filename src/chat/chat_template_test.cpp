// ChatTemplate loading and request handling: template sources (string, named list with default / tool_use,
// chat_template.jinja precedence), special tokens as strings or AddedToken objects, the variables a template sees
// (tools = None when absent, chat_template_kwargs), and clear errors for bad files and bad requests.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "chat/chat_template.h"

namespace dm::chat {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("dm_chat_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter()++));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  void write(const std::string& name, const std::string& text) const { std::ofstream(path / name, std::ios::binary) << text; }
  static int& counter() {
    static int n = 0;
    return n;
  }
};

ChatRequest request(const std::string& json) { return ChatRequest::from_json(nlohmann::ordered_json::parse(json)); }

TEST(ChatTemplate, StringTemplateWithAddedTokenObjects) {
  TempDir d;
  d.write("tokenizer_config.json", R"({"bos_token": {"__type": "AddedToken", "content": "<s>"}, "eos_token": "</s>",
    "unk_token": null, "chat_template": "{{ bos_token }}{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}{{ eos_token }}{{ unk_token is defined }}"})");
  auto t = ChatTemplate::from_model_dir(d.path.string());
  EXPECT_EQ(t.render(request(R"({"messages": [{"role": "user", "content": "hi"}]})")), "<s>[user:hi]</s>False");
}

TEST(ChatTemplate, NamedTemplatesUseToolUseWhenToolsAreGiven) {
  TempDir d;
  d.write("tokenizer_config.json", R"({"chat_template": [{"name": "default", "template": "plain {{ tools }}"},
    {"name": "tool_use", "template": "tools {{ tools | length }}"}]})");
  auto t = ChatTemplate::from_model_dir(d.path.string());
  EXPECT_EQ(t.render(request(R"({"messages": []})")), "plain None");  // absent tools reach the template as None
  EXPECT_EQ(t.render(request(R"({"messages": [], "tools": [{"type": "function"}]})")), "tools 1");
  EXPECT_EQ(t.source(true), "tools {{ tools | length }}");
}

TEST(ChatTemplate, JinjaFileTakesPrecedence) {
  TempDir d;
  d.write("tokenizer_config.json", R"({"chat_template": "from config", "eos_token": "E"})");
  d.write("chat_template.jinja", "from file {{ eos_token }}{{ add_generation_prompt }}\n");
  auto t = ChatTemplate::from_model_dir(d.path.string());
  EXPECT_EQ(t.render(request(R"({"messages": [], "add_generation_prompt": true})")), "from file ETrue");
}

TEST(ChatTemplate, KwargsBecomeVariables) {
  TempDir d;
  d.write("chat_template.jinja", "{{ enable_thinking }} {{ extra.k }} {{ messages[0].content[0].text }}");
  auto t = ChatTemplate::from_model_dir(d.path.string());
  EXPECT_EQ(t.render(request(R"({"messages": [{"role": "user", "content": [{"type": "text", "text": "T"}]}],
    "chat_template_kwargs": {"enable_thinking": false, "extra": {"k": 1.5}}})")),
            "False 1.5 T");
}

TEST(ChatTemplate, BadFilesAndRequestsAreClearErrors) {
  TempDir none;
  EXPECT_THROW(ChatTemplate::from_model_dir(none.path.string()), dm::Error);
  TempDir bad;
  bad.write("tokenizer_config.json", "{not json");
  EXPECT_THROW(ChatTemplate::from_model_dir(bad.path.string()), dm::Error);
  TempDir nodefault;
  nodefault.write("tokenizer_config.json", R"({"chat_template": [{"name": "rag", "template": "x"}]})");
  EXPECT_THROW(ChatTemplate::from_model_dir(nodefault.path.string()), dm::Error);
  TempDir syntax;
  syntax.write("chat_template.jinja", "{% if %}");
  EXPECT_THROW(ChatTemplate::from_model_dir(syntax.path.string()), TemplateError);

  EXPECT_THROW(request(R"([])"), dm::Error);
  EXPECT_THROW(request(R"({})"), dm::Error);
  EXPECT_THROW(request(R"({"messages": "hi"})"), dm::Error);
  EXPECT_THROW(request(R"({"messages": ["hi"]})"), dm::Error);
  EXPECT_THROW(request(R"({"messages": [], "tools": {}})"), dm::Error);
  EXPECT_THROW(request(R"({"messages": [], "add_generation_prompt": "yes"})"), dm::Error);
  EXPECT_THROW(request(R"({"messages": [], "chat_template_kwargs": {"messages": 1}})"), dm::Error);
  std::string deep(1000, '[');
  EXPECT_THROW(request(R"({"messages": [{"content": )" + deep + std::string(1000, ']') + "}]}"), dm::Error);
}

TEST(ChatTemplate, RaiseExceptionIsATemplateError) {
  TempDir d;
  d.write("chat_template.jinja", "{% if messages | length == 0 %}{{ raise_exception('No messages provided.') }}{% endif %}");
  auto t = ChatTemplate::from_model_dir(d.path.string());
  try {
    t.render(request(R"({"messages": []})"));
    FAIL() << "no error";
  } catch (const TemplateError& e) {
    EXPECT_EQ(e.message, "No messages provided.");
  }
}

}  // namespace
}  // namespace dm::chat
