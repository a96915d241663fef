// deepmoe tokenize: text on stdin -> JSON array of token ids on stdout, using a model directory's tokenizer.json.
// Bytes that are not valid UTF-8 are replaced by U+FFFD before tokenizing (see tokenizer/tokenizer.h).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>

#include "cli/commands.h"
#include "cli/gguf_tokenizer.h"
#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace dm::cli {

int cmd_tokenize(int argc, char** argv) {
  CLI::App app{"Tokenize the text on stdin (as is, a trailing newline included); prints a JSON array of token ids",
               "deepmoe tokenize"};
  std::string model;
  bool add_special = false;
  app.add_option("-m,--model", model, "model directory holding tokenizer.json, or a .gguf file")->required();
  app.add_flag("--add-special", add_special, "add the post-processor's special tokens (BOS for DeepSeek)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  Tokenizer tok = load_tokenizer(model);  // a directory or a .gguf file
  std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  std::string out = "[";
  bool first = true;
  for (int32_t id : tok.encode(text, add_special)) {
    if (!first) out += ", ";
    out += std::to_string(id);
    first = false;
  }
  out += "]\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace dm::cli
