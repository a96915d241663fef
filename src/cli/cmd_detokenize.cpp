// deepmoe detokenize: JSON array of token ids on stdin -> the decoded text on stdout (no newline added).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/gguf_tokenizer.h"
#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace dm::cli {

int cmd_detokenize(int argc, char** argv) {
  CLI::App app{"Decode a JSON array of token ids read from stdin; prints the text", "deepmoe detokenize"};
  std::string model;
  bool skip_special = false;
  app.add_option("-m,--model", model, "model directory holding tokenizer.json, or a .gguf file")->required();
  app.add_flag("--skip-special", skip_special, "leave special tokens out of the text");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  nlohmann::json j = nlohmann::json::parse(input, nullptr, false);
  if (j.is_discarded() || !j.is_array()) fail("stdin: expected a JSON array of token ids");
  Tokenizer tok = load_tokenizer(model);  // a directory or a .gguf file
  std::vector<int32_t> ids;
  for (size_t i = 0; i < j.size(); ++i) {
    if (!j[i].is_number_integer()) fail("stdin: element ", i, " is not an integer");
    int64_t id = j[i].get<int64_t>();
    if (id < 0 || id >= tok.vocab_size()) fail("stdin: element ", i, ": id ", id, " is not in the vocab (size ", tok.vocab_size(), ")");
    ids.push_back(int32_t(id));
  }
  std::string text = tok.decode(ids, skip_special);
  std::fwrite(text.data(), 1, text.size(), stdout);
  return 0;
}

}  // namespace dm::cli
