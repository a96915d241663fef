// Whole-tokenizer tests on the fixture tokenizers: accessors, special tokens, invalid UTF-8 input, huge inputs,
// in-memory construction (the GGUF path) against tokenizer.json, malformed tokenizer.json, the stream decoder.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "core/error.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer_test_util.h"
#include "tokenizer/unicode.h"

using namespace dm;
using nlohmann::json;
using Ids = std::vector<int32_t>;

TEST(Tokenizer, AccessorsFromConfig) {
  const Tokenizer& v3 = test_tokenizer("deepseek-v3");
  EXPECT_EQ(v3.bos_id(), 0);
  EXPECT_EQ(v3.eos_id(), 1);
  EXPECT_EQ(v3.token_text(0), "<｜begin▁of▁sentence｜>");
  EXPECT_EQ(v3.token_id("<think>"), 128798);
  EXPECT_TRUE(v3.is_special(0));
  EXPECT_FALSE(v3.is_special(19923));
  EXPECT_EQ(v3.vocab_size(), 128815);
  const Tokenizer& q3 = test_tokenizer("qwen3");
  EXPECT_EQ(q3.bos_id(), std::nullopt);
  EXPECT_EQ(q3.eos_id(), 151645);  // <|im_end|>
  EXPECT_EQ(q3.encode("hi", true), q3.encode("hi", false));  // Qwen adds nothing
  const Tokenizer& rq = test_tokenizer("r1-distill-qwen");
  EXPECT_EQ(rq.bos_id(), 151646);
  EXPECT_EQ(rq.encode("hi", true).front(), 151646);
  EXPECT_EQ(rq.token_text(-1), "");
  EXPECT_EQ(rq.token_text(1 << 30), "");
  // qwen2.5 has no tokenizer_config.json: no names to look up.
  EXPECT_EQ(test_tokenizer("qwen2.5").eos_id(), std::nullopt);
}

TEST(Tokenizer, SpecialTokenTextIsMatchedAndSkippable) {
  const Tokenizer& q3 = test_tokenizer("qwen3");
  Ids ids = q3.encode("<|im_start|>user\nhi<|im_end|>", false);
  EXPECT_EQ(ids.front(), 151644);
  EXPECT_EQ(ids.back(), 151645);
  EXPECT_EQ(q3.decode(ids, false), "<|im_start|>user\nhi<|im_end|>");
  EXPECT_EQ(q3.decode(ids, true), "user\nhi");
  // <think> is an added token but not special: kept by skip_special_tokens.
  Ids t = q3.encode("<think>x</think>", false);
  EXPECT_EQ(t.size(), 3u);
  EXPECT_EQ(q3.decode(t, true), "<think>x</think>");
  const Tokenizer& v3 = test_tokenizer("deepseek-v3");
  Ids b = v3.encode("Hi", true);
  EXPECT_EQ(b.front(), 0);
  EXPECT_EQ(v3.decode(b, true), "Hi");
  EXPECT_EQ(v3.decode(b, false), "<｜begin▁of▁sentence｜>Hi");
}

TEST(Tokenizer, InvalidUtf8BecomesReplacementCharacters) {
  for (const char* dir : {"qwen3", "deepseek-v3"}) {
    const Tokenizer& t = test_tokenizer(dir);
    std::string bad = "ok \xff\xfe then \xe2\x82 and \xed\xa0\x80 end\xc3";
    std::string fixed = unicode::sanitize(bad);
    EXPECT_EQ(fixed, "ok \uFFFD\uFFFD then \uFFFD and \uFFFD\uFFFD\uFFFD end\uFFFD");
    EXPECT_EQ(t.encode(bad, false), t.encode(fixed, false)) << dir;
    EXPECT_EQ(t.decode(t.encode(bad, false), false), fixed) << dir;
    std::string junk(4096, '\0');
    std::mt19937 rng(7);
    for (auto& c : junk) c = char(rng());
    std::string back = t.decode(t.encode(junk, false), false);
    EXPECT_TRUE(unicode::is_valid(back)) << dir;
    EXPECT_TRUE(t.encode(junk, false) == t.encode(unicode::sanitize(junk), false)) << dir;
    if (std::string(dir) == "deepseek-v3") {
      EXPECT_TRUE(back == unicode::sanitize(junk));  // no normalizer
    }
  }
}

TEST(Tokenizer, HugeInputsStayLinear) {
  // A 1 MiB run of spaces and a 100 KB word: one pre-token each, merged with the heap-based BPE.
  for (const char* dir : {"qwen3", "deepseek-v3"}) {
    const Tokenizer& t = test_tokenizer(dir);
    std::string spaces(std::string(dir) == "qwen3" ? 1 << 20 : 1 << 16, ' ');
    EXPECT_TRUE(t.decode(t.encode(spaces, false), false) == spaces) << dir;
    std::string word(100000, 'x');
    for (size_t i = 0; i < word.size(); i += 3) word[i] = char('a' + i % 26);
    EXPECT_TRUE(t.decode(t.encode(word, false), false) == word) << dir;
    std::string lines;
    for (int i = 0; i < 20000; ++i) lines += " \n\t ";
    EXPECT_TRUE(t.decode(t.encode(lines, false), false) == lines) << dir;
  }
}

TEST(Tokenizer, FromSpecMatchesTokenizerJson) {
  // Build the DeepSeek-V3 and Qwen tokenizers the way a GGUF reader would: ids, merges, a pre-tokenizer name.
  for (auto [dir, pre] : {std::pair{"deepseek-v3", "deepseek-v3"}, std::pair{"qwen3", "qwen2"}}) {
    json j = json::parse(read_test_file(std::string(DM_TEST_DATA) + "/fixtures/tokenizers/" + dir + "/tokenizer.json"));
    const Tokenizer& ref = test_tokenizer(dir);
    TokenizerSpec spec;
    spec.tokens.resize(size_t(ref.vocab_size()));
    for (auto& [tok, id] : j["model"]["vocab"].items()) spec.tokens[id.get<size_t>()] = tok;
    for (const auto& m : j["model"]["merges"]) {
      std::string s = m.get<std::string>();
      spec.merges.emplace_back(s.substr(0, s.find(' ')), s.substr(s.find(' ') + 1));
    }
    for (const auto& a : j["added_tokens"]) {
      AddedToken t;
      t.id = a["id"];
      t.content = a["content"];
      t.special = a["special"];
      spec.tokens[size_t(t.id)] = t.content;
      spec.added_tokens.push_back(t);
    }
    spec.pre_tokenizer_regexes = Tokenizer::pre_tokenizer_regexes(pre);
    spec.nfc = std::string(pre) == "qwen2";
    spec.bos_id = ref.bos_id();
    spec.add_bos = ref.bos_id().has_value();
    Tokenizer t = Tokenizer::from_spec(spec);
    auto chk = json::parse(read_test_file(std::string(DM_TEST_DATA) + "/fixtures/vocab-tests/chktxt_vectors.json"));
    std::string text = chk["chk_txt"];
    text += " <think>x</think> <|im_start|> 我想在apple工作 e\u0301";
    EXPECT_EQ(t.encode(text, true), ref.encode(text, true)) << dir;
    EXPECT_EQ(t.decode(t.encode(text, false), false), ref.decode(ref.encode(text, false), false)) << dir;
  }
  EXPECT_THROW(Tokenizer::pre_tokenizer_regexes("no-such-pre"), Error);
  for (const char* name : {"deepseek-v3", "deepseek-llm", "deepseek-coder", "qwen2", "deepseek-r1-qwen", "llama-bpe", "gpt-2"})
    for (const auto& re : Tokenizer::pre_tokenizer_regexes(name))
      EXPECT_NO_THROW(make_regex_split(re, SplitBehavior::Isolated, false)) << name << ": " << re;
}

TEST(Tokenizer, MalformedTokenizerJsonNamesTheProblem) {
  auto base = [] {
    return json{{"version", "1.0"},
                {"added_tokens", {{{"id", 3}, {"content", "<s>"}, {"special", true}}}},
                {"normalizer", nullptr},
                {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
                {"post_processor", nullptr},
                {"decoder", {{"type", "ByteLevel"}}},
                {"model", {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}}}, {"merges", {"a b"}}}}};
  };
  EXPECT_EQ(Tokenizer::from_json(base().dump()).encode("ab", false), (Ids{2}));
  auto expect_error = [](const std::string& text, const std::string& needle) {
    try {
      Tokenizer::from_json(text);
      ADD_FAILURE() << "no error for " << text.substr(0, 200);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what() << "\n  wanted: " << needle;
    }
  };
  auto with = [&](auto edit) {
    json j = base();
    edit(j);
    return j.dump();
  };
  expect_error("", "not valid JSON");
  expect_error("{\"model\": {\"vocab\": {\"a\": 0", "not valid JSON");
  expect_error(base().dump().substr(0, 60), "not valid JSON");
  expect_error("[1, 2]", "expected an object at the top");
  expect_error(with([](json& j) { j.erase("model"); }), "missing field 'model'");
  expect_error(with([](json& j) { j["model"]["type"] = "Unigram"; }), "model.type: 'Unigram' is not supported");
  expect_error(with([](json& j) { j["model"]["vocab"] = json::array(); }), "model.vocab: expected an object");
  expect_error(with([](json& j) { j["model"]["vocab"]["c"] = "x"; }), "model.vocab['c']: expected an integer id");
  expect_error(with([](json& j) { j["model"]["vocab"]["c"] = -5; }), "model.vocab['c']: id -5 out of range");
  expect_error(with([](json& j) { j["model"].erase("merges"); }), "missing field 'merges'");
  expect_error(with([](json& j) { j["model"]["merges"] = {"a c"}; }), "model.merges[0] 'a c': token 'c' is not in the vocab");
  expect_error(with([](json& j) { j["model"]["merges"] = {"b a"}; }), "merged token 'ba' is not in the vocab");
  expect_error(with([](json& j) { j["model"]["merges"] = {"ab"}; }), "model.merges[0]: 'ab' is not two tokens");
  expect_error(with([](json& j) { j["model"]["merges"] = {42}; }), "model.merges[0]: expected");
  expect_error(with([](json& j) { j["model"]["dropout"] = 0.1; }), "dropout");
  expect_error(with([](json& j) { j["model"]["unk_token"] = "<unk>"; }), "unk_token '<unk>' is not in the vocab");
  expect_error(with([](json& j) { j["added_tokens"][0].erase("content"); }), "added_tokens[0]: missing field 'content'");
  expect_error(with([](json& j) { j["added_tokens"][0]["id"] = "3"; }), "added_tokens[0].id: expected an integer");
  expect_error(with([](json& j) { j["added_tokens"][0]["special"] = 1; }), "added_tokens[0].special: expected true or false");
  expect_error(with([](json& j) { j["pre_tokenizer"] = {{"type", "Magic"}}; }), "pre_tokenizer: pre-tokenizer type 'Magic'");
  expect_error(with([](json& j) { j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "[a-"}}}, {"behavior", "Isolated"}}; }),
               "pre_tokenizer.pattern: regex '[a-' does not compile");
  expect_error(with([](json& j) { j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "Sideways"}}; }),
               "behavior: 'Sideways' is not one of");
  expect_error(with([](json& j) { j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {{{"type", 7}}}}}; }),
               "pre_tokenizer.pretokenizers[0].type: expected a string");
  expect_error(with([](json& j) { j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "Wat"}}}}}; }),
               "normalizer.normalizers[0]: normalizer type 'Wat'");
  expect_error(with([](json& j) { j["decoder"] = {{"type", "CTC"}}; }), "decoder: decoder type 'CTC'");
  expect_error(with([](json& j) {
                 j["post_processor"] = {{"type", "TemplateProcessing"},
                                        {"single", {{{"SpecialToken", {{"id", "<bos>"}}}}, {{"Sequence", {{"id", "A"}}}}}},
                                        {"special_tokens", json::object()}};
               }),
               "special token '<bos>' is not in");
  // tokenizer_config.json naming a token that does not exist.
  try {
    Tokenizer::from_json(base().dump(), R"({"bos_token": "<nope>"})");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bos_token '<nope>'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Tokenizer::from_json(base().dump(), "{oops"), Error);
  EXPECT_THROW(Tokenizer::from_dir("/nonexistent/dir"), Error);
}

namespace {

// Streams ids one at a time; every piece must be valid UTF-8 and the pieces must add up to decode(ids).
void expect_stream_matches(const Tokenizer& t, const Ids& ids, bool skip_special, size_t* held = nullptr) {
  StreamDecoder sd(t, skip_special);
  std::string all;
  for (int32_t id : ids) {
    std::string piece = sd.push(id);
    EXPECT_TRUE(unicode::is_valid(piece));
    if (piece.empty() && held) ++*held;
    all += piece;
  }
  all += sd.flush();
  EXPECT_EQ(all, t.decode(ids, skip_special));
}

}  // namespace

TEST(StreamDecoder, MultiByteCharactersSplitAcrossTokens) {
  for (const char* dir : {"qwen3", "deepseek-v3"}) {
    SCOPED_TRACE(dir);
    const Tokenizer& t = test_tokenizer(dir);
    // Rare CJK, emoji and Gothic letters are split into byte tokens, so characters straddle tokens.
    std::string text = "Emoji 🦙🫠👨‍👩‍👧‍👦 rare 𠀀𠀁 𐌰𐌱 鬱龘 mixed ascii, ñ and ü.";
    Ids ids = t.encode(text, true);
    size_t held = 0;
    expect_stream_matches(t, ids, false, &held);
    expect_stream_matches(t, ids, true);
    EXPECT_GT(held, 3u) << "expected tokens that end inside a character";
    // Explicit: the 4 bytes of U+1F999 as four single-byte tokens.
    Ids bytes;
    for (unsigned char c : std::string("🦙")) bytes.push_back(*t.token_id(unicode::byte_level_table().byte_to_utf8[c]));
    StreamDecoder sd(t);
    EXPECT_EQ(sd.push(bytes[0]), "");
    EXPECT_EQ(sd.push(bytes[1]), "");
    EXPECT_EQ(sd.push(bytes[2]), "");
    EXPECT_EQ(sd.push(bytes[3]), "🦙");
    // An incomplete character at the end comes out of flush() as U+FFFD, as in decode().
    EXPECT_EQ(sd.push(bytes[0]), "");
    EXPECT_EQ(sd.flush(), "\uFFFD");
    // Random id sequences: stray continuation bytes, truncated sequences, special tokens.
    std::mt19937 rng(3);
    for (int k = 0; k < 50; ++k) {
      Ids r;
      for (int i = 0; i < 40; ++i) r.push_back(int32_t(rng() % uint32_t(k % 2 ? 512 : t.vocab_size())));
      expect_stream_matches(t, r, k % 3 == 0);
    }
  }
}

TEST(Tokenizer, ConcurrentEncodesAgree) {
  // encode() is const and shares the BPE cache between threads.
  const Tokenizer& t = test_tokenizer("deepseek-v3");
  std::vector<std::string> texts;
  for (int i = 0; i < 64; ++i) texts.push_back("Thread test " + std::to_string(i * 7919) + " über naïve 東京 🦙 words" + std::string(size_t(i), 'z'));
  std::vector<Ids> want;
  for (const auto& s : texts) want.push_back(t.encode(s, true));
  std::vector<std::thread> threads;
  std::vector<int> bad(4, 0);
  for (int k = 0; k < 4; ++k)
    threads.emplace_back([&, k] {
      for (int rep = 0; rep < 5; ++rep)
        for (size_t i = 0; i < texts.size(); ++i)
          if (t.encode(texts[(i + size_t(k)) % texts.size()], true) != want[(i + size_t(k)) % texts.size()]) ++bad[size_t(k)];
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad, std::vector<int>(4, 0));
}
