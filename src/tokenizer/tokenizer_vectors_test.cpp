// Recorded vectors: llama.cpp's vocab-tests (.inp/.out, add_special_tokens=False) and chktxt_vectors.json
// (default special tokens), against the tokenizer folders of tests/data/fixtures. Each tokenizer loads once.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tokenizer/tokenizer_test_util.h"

using namespace dm;

namespace {

std::vector<std::string> split_inputs(const std::string& s) {
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> out;
  size_t prev = 0;
  for (size_t p = s.find(sep); p != std::string::npos; p = s.find(sep, prev)) {
    out.push_back(s.substr(prev, p - prev));
    prev = p + sep.size();
  }
  return out;
}

std::vector<std::vector<int32_t>> parse_outputs(const std::string& s) {
  std::vector<std::vector<int32_t>> out;
  std::istringstream in(s);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::vector<int32_t> ids;
    for (int32_t id; ls >> id;) ids.push_back(id);
    out.push_back(std::move(ids));
  }
  return out;
}

// DeepSeek-LLM / V2 comes as a vocab-only GGUF plus its vocab (JSON) and merges (text): built in memory, as the
// GGUF loader will, with BOS/EOS as in the published tokenizer (ids 100000/100001).
const Tokenizer& deepseek_llm() {
  static std::unique_ptr<Tokenizer> tok;
  if (tok) return *tok;
  const std::string dir = std::string(DM_TEST_DATA) + "/fixtures/tokenizers/deepseek-llm-v2/";
  auto vocab = nlohmann::json::parse(read_test_file(dir + "vocab.from-gguf.json"));
  TokenizerSpec spec;
  spec.tokens.resize(vocab.size());
  for (auto& [t, id] : vocab.items()) spec.tokens.at(id.get<size_t>()) = t;
  std::istringstream merges(read_test_file(dir + "merges.from-gguf.txt"));
  for (std::string line; std::getline(merges, line);) {
    if (line.empty() || line[0] == '#') continue;
    spec.merges.emplace_back(line.substr(0, line.find(' ')), line.substr(line.find(' ') + 1));
  }
  for (const char* special : {"<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"}) {
    AddedToken a;
    a.id = int32_t(spec.tokens.size());
    a.content = special;
    a.special = true;
    spec.tokens.push_back(special);
    spec.added_tokens.push_back(a);
  }
  spec.pre_tokenizer_regexes = Tokenizer::pre_tokenizer_regexes("deepseek-llm");
  spec.bos_id = 100000;
  spec.eos_id = 100001;
  spec.add_bos = true;
  tok = std::make_unique<Tokenizer>(Tokenizer::from_spec(spec));
  return *tok;
}

void check_vocab_test(const std::string& name, const std::string& dir) {
  const Tokenizer& tok = dir == "deepseek-llm-v2" ? deepseek_llm() : test_tokenizer(dir);
  std::string base = std::string(DM_TEST_DATA) + "/fixtures/vocab-tests/ggml-vocab-" + name + ".gguf";
  auto inputs = split_inputs(read_test_file(base + ".inp"));
  auto outputs = parse_outputs(read_test_file(base + ".out"));
  ASSERT_GT(inputs.size(), 20u);
  ASSERT_EQ(inputs.size(), outputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    EXPECT_EQ(tok.encode(inputs[i], false), outputs[i]) << name << " #" << i << " '" << inputs[i] << "'";
    EXPECT_EQ(tok.decode(outputs[i], false), inputs[i]) << name << " #" << i;
  }
}

}  // namespace

TEST(VocabTests, Qwen2WithQwen25) { check_vocab_test("qwen2", "qwen2.5"); }
TEST(VocabTests, Qwen2WithQwen3) { check_vocab_test("qwen2", "qwen3"); }
TEST(VocabTests, DeepseekR1Qwen) { check_vocab_test("deepseek-r1-qwen", "r1-distill-qwen"); }
TEST(VocabTests, DeepseekLlmFromVocabAndMerges) { check_vocab_test("deepseek-llm", "deepseek-llm-v2"); }
// deepseek-coder comes only as vocab-tests/ggml-vocab-deepseek-coder.gguf: its vectors are checked through the GGUF
// reader in tests/golden_gguf/gguf_tokenizer_test.cpp (the tokenizer module itself cannot read GGUF).

TEST(ChktxtVectors, EveryModelWithATokenizerHere) {
  auto j = nlohmann::json::parse(read_test_file(std::string(DM_TEST_DATA) + "/fixtures/vocab-tests/chktxt_vectors.json"));
  std::string text = j["chk_txt"];
  // Each entry of chktxt_vectors.json -> the tokenizer folders that hold that tokenizer.
  const std::map<std::string, std::vector<std::string>> dirs = {
      {"deepseek-v3", {"deepseek-v3", "deepseek-r1"}},
      {"deepseek-r1-qwen", {"r1-distill-qwen"}},
      {"qwen2", {"qwen2.5", "qwen3"}},
      {"deepseek-llm", {"deepseek-llm-v2"}},  // built from its vocab and merges files
  };
  size_t checked = 0;
  for (auto& [key, entry] : j["models"].items()) {
    std::string name = key.substr(0, key.find(' '));
    auto it = dirs.find(name);
    ASSERT_NE(it, dirs.end()) << "chktxt entry without a mapping here: " << key;
    std::vector<int32_t> want = entry["ids"].get<std::vector<int32_t>>();
    for (const auto& d : it->second) {
      const Tokenizer& tok = d == "deepseek-llm-v2" ? deepseek_llm() : test_tokenizer(d);
      EXPECT_EQ(tok.encode(text, true), want) << key << " with " << d;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 6u);
}
