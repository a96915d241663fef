// Test helpers: the fixture tokenizers, each loaded once per test binary, and file reading.
#pragma once
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include "tokenizer/tokenizer.h"

namespace dm {

inline std::string read_test_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// tests/data/fixtures/tokenizers/<dir>, loaded on first use (test binaries are single-threaded).
inline const Tokenizer& test_tokenizer(const std::string& dir) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> loaded;
  auto& slot = loaded[dir];
  if (!slot)
    slot = std::make_unique<Tokenizer>(Tokenizer::from_dir(std::string(DM_TEST_DATA) + "/fixtures/tokenizers/" + dir));
  return *slot;
}

}  // namespace dm
