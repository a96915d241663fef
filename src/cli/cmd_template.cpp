// deepmoe template --model DIR --request FILE: renders the model's chat template for an OpenAI-style request
// ({"messages", "tools", "add_generation_prompt", "chat_template_kwargs"}) and prints the prompt, nothing added.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "chat/chat_template.h"
#include "cli/commands.h"
#include "core/error.h"

namespace dm::cli {

int cmd_template(int argc, char** argv) {
  CLI::App app{"Render the chat template of a model for a request (JSON file, '-' for stdin)", "deepmoe template"};
  std::string model_dir, request_path;
  app.add_option("-m,--model", model_dir, "model directory (tokenizer_config.json or chat_template.jinja)")->required();
  app.add_option("-r,--request", request_path, "request JSON: messages, tools, add_generation_prompt, chat_template_kwargs")
      ->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  std::string text;
  if (request_path == "-") {
    std::ostringstream ss;
    ss << std::cin.rdbuf();
    text = ss.str();
  } else {
    std::ifstream in(request_path, std::ios::binary);
    if (!in) fail(request_path, ": cannot open");
    std::ostringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(request_path, ": bad JSON: ", e.what());
  }
  chat::ChatRequest request;
  try {
    request = chat::ChatRequest::from_json(j);
  } catch (const Error& e) {
    fail(request_path, ": ", e.what());
  }
  chat::ChatTemplate tmpl = chat::ChatTemplate::from_model_dir(model_dir);
  std::string prompt = tmpl.render(request);
  std::fwrite(prompt.data(), 1, prompt.size(), stdout);
  std::fflush(stdout);
  return 0;
}

}  // namespace dm::cli
