// Tokenizers from GGUF metadata: llama.cpp's vocab-only files for DeepSeek-Coder and DeepSeek-LLM (V2/V2-Lite)
// pass their recorded vocab-test vectors (tests/data/fixtures/vocab-tests), and a GGUF written by `deepmoe convert`
// from a tokenizer.json directory tokenizes like that tokenizer.json.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/mapped_file.h"
#include "model/gguf_convert.h"
#include "server/gguf_tokenizer.h"

namespace dm {
namespace {

const std::string kData = DM_TEST_DATA;
namespace fs = std::filesystem;

// .inp: strings each followed by "\n__ggml_vocab_test__\n"; .out: one line of " id id ..." per string.
std::vector<std::string> inputs(const std::string& path) {
  std::string s = read_file(path), sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> out;
  for (size_t p = 0, q; (q = s.find(sep, p)) != std::string::npos; p = q + sep.size()) out.push_back(s.substr(p, q - p));
  return out;
}
std::vector<std::vector<int32_t>> outputs(const std::string& path) {
  std::string s = read_file(path);
  std::vector<std::vector<int32_t>> out;
  size_t p = 0;
  while (p < s.size()) {
    size_t e = s.find('\n', p);
    if (e == std::string::npos) e = s.size();
    std::vector<int32_t> ids;
    for (size_t i = p; i < e;) {
      while (i < e && s[i] == ' ') ++i;
      size_t j = i;
      while (j < e && s[j] != ' ') ++j;
      if (j > i) ids.push_back(std::stoi(s.substr(i, j - i)));
      i = j;
    }
    out.push_back(ids);
    p = e + 1;
  }
  return out;
}

void check_vectors(const Tokenizer& tok, const std::string& name) {
  std::string base = kData + "/fixtures/vocab-tests/ggml-vocab-" + name + ".gguf";
  auto in = inputs(base + ".inp");
  auto out = outputs(base + ".out");
  ASSERT_GT(in.size(), 20u);
  ASSERT_EQ(in.size(), out.size());
  size_t ok = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    std::vector<int32_t> got = tok.encode(in[i], false);
    EXPECT_EQ(got, out[i]) << name << " #" << i << " '" << in[i] << "'";
    EXPECT_EQ(tok.decode(out[i], false), in[i]) << name << " #" << i;
    ok += got == out[i];
  }
  std::printf("%s: %zu/%zu vocab-test vectors\n", name.c_str(), ok, in.size());
}

TEST(GgufTokenizer, DeepseekCoderVocabOnlyFile) {
  Tokenizer tok = load_tokenizer(kData + "/fixtures/vocab-tests/ggml-vocab-deepseek-coder.gguf");
  EXPECT_EQ(tok.vocab_size(), 32256);
  EXPECT_EQ(tok.bos_id(), 32013);
  check_vectors(tok, "deepseek-coder");
}

TEST(GgufTokenizer, DeepseekLlmVocabOnlyFile) {
  Tokenizer tok = load_tokenizer(kData + "/fixtures/tokenizers/deepseek-llm-v2/ggml-vocab-deepseek-llm.gguf");
  EXPECT_EQ(tok.vocab_size(), 102400);
  check_vectors(tok, "deepseek-llm");
  // The chktxt stress string with the default special tokens (BOS: add_bos_token is true in the file).
  auto j = nlohmann::json::parse(read_file(kData + "/fixtures/vocab-tests/chktxt_vectors.json"));
  for (auto& [key, entry] : j["models"].items()) {
    if (key.rfind("deepseek-llm", 0) == 0) {
      EXPECT_EQ(tok.encode(j["chk_txt"].get<std::string>(), true), entry["ids"].get<std::vector<int32_t>>()) << key;
    }
  }
}

// deepmoe convert writes tokenizer metadata that gives back the tokenizer.json's ids.
TEST(GgufTokenizer, ConvertedTokenizerMatchesTokenizerJson) {
  std::string dir = ::testing::TempDir() + "/gguf_tok_model";
  fs::create_directories(dir);
  for (const char* f : {"config.json", "model.safetensors"})
    fs::copy_file(kData + "/golden/qwen2_tiny/hf_f32/" + f, dir + "/" + f, fs::copy_options::overwrite_existing);
  // The model's vocab_size must hold the tokenizer: widen the config (the weights are not used here).
  auto cfg = nlohmann::json::parse(read_file(dir + "/config.json"));
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(kData + "/fixtures/tokenizers/r1-distill-qwen/" + f, dir + "/" + f,
                  fs::copy_options::overwrite_existing);
  Tokenizer ref = Tokenizer::from_dir(dir);
  cfg["vocab_size"] = ref.vocab_size();
  std::ofstream(dir + "/config.json") << cfg.dump();
  GgufWriter w;
  add_tokenizer_metadata(w, dir, JsonConfig(cfg, dir + "/config.json"), ref.vocab_size());
  std::string out = dir + "/vocab.gguf";
  w.write(out);
  GgufFile g = GgufFile::open(out);
  EXPECT_EQ(g.get_string("tokenizer.ggml.pre"), "deepseek-r1-qwen");
  EXPECT_TRUE(g.has("tokenizer.chat_template"));
  Tokenizer tok = load_tokenizer(out);
  EXPECT_EQ(tok.bos_id(), ref.bos_id());
  EXPECT_EQ(tok.eos_id(), ref.eos_id());
  auto j = nlohmann::json::parse(read_file(kData + "/fixtures/vocab-tests/chktxt_vectors.json"));
  std::string text = j["chk_txt"];
  for (const std::string& s : {text, std::string("Hello <｜User｜>world<｜Assistant｜><think>\n12345 ...")}) {
    EXPECT_EQ(tok.encode(s, false), ref.encode(s, false));
    EXPECT_EQ(tok.encode(s, true), ref.encode(s, true));
  }
  check_vectors(tok, "deepseek-r1-qwen");
  // The chat template travels too, with the special tokens it refers to.
  auto tmpl = gguf_chat_template(out);
  ASSERT_TRUE(tmpl.has_value());
  auto req = chat::ChatRequest::from_json(nlohmann::ordered_json::parse(
      R"({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why is the sky blue?"},
          {"role": "assistant", "content": "Rayleigh scattering."}, {"role": "user", "content": "And sunsets?"}],
          "add_generation_prompt": true})"));
  std::string want = chat::ChatTemplate::from_model_dir(dir).render(req);
  EXPECT_EQ(tmpl->render(req), want);
  EXPECT_NE(want.find("<｜begin▁of▁sentence｜>"), std::string::npos);
}

TEST(GgufTokenizer, ErrorsNameFileAndKey) {
  EXPECT_THROW(load_tokenizer(kData + "/golden-gguf/qwen2_tiny/model-f32.gguf.missing"), Error);
  GgufWriter w;
  w.set("tokenizer.ggml.model", GgufValue::string("llama"));
  w.set("tokenizer.ggml.tokens", GgufValue::string_array({"a", "b"}));
  std::string path = ::testing::TempDir() + "/spm.gguf";
  w.write(path);
  try {
    load_tokenizer(path);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.ggml.model 'llama'"), std::string::npos) << e.what();
  }
  GgufWriter bad;
  bad.set("tokenizer.ggml.model", GgufValue::string("gpt2"));
  bad.set("tokenizer.ggml.tokens", GgufValue::string_array({"a", "b"}));
  bad.set("tokenizer.ggml.bos_token_id", GgufValue::u32(7));
  bad.write(path);
  EXPECT_THROW(load_tokenizer(path), Error);
  EXPECT_FALSE(gguf_chat_template(kData + "/golden-gguf/qwen2_tiny/model-f32.gguf").has_value());
}

}  // namespace
}  // namespace dm
