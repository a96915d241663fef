// Unit tests of the pieces: split behaviors, pre-tokenizers, normalizers, BPE merge order and options, added-token
// flags, decoders, UTF-8 replacement. Expected values from the tokenizers documentation and by hand.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

using namespace dm;
using nlohmann::json;

namespace {

std::vector<std::string> pre_tokenize(const json& spec, const std::string& text) {
  auto pt = make_pre_tokenizer(spec, "test");
  PreTokens p;
  p.text = text;
  p.spans.emplace_back(0, text.size());
  PreTokenizeScratch s;
  pt->apply(p, s);
  if (p.byte_level) materialize_byte_level(p);
  std::vector<std::string> out;
  for (auto [b, e] : p.spans) out.push_back(p.text.substr(b, e - b));
  return out;
}

json split(const std::string& behavior, bool invert = false) {
  return {{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", behavior}, {"invert", invert}};
}

using V = std::vector<std::string>;

// A tokenizer over the byte-level alphabet plus `extra` tokens, with `merges`; fields of `patch` override.
std::string mini_json(const V& extra, const std::vector<std::pair<std::string, std::string>>& merges, json patch = {}) {
  json vocab = json::object();
  const auto& bl = unicode::byte_level_table();
  int id = 0;
  for (int b = 0; b < 256; ++b) vocab[bl.byte_to_utf8[b]] = id++;
  for (const auto& t : extra) vocab[t] = id++;
  json m = json::array();
  for (auto& [a, b] : merges) m.push_back(a + " " + b);
  json j = {{"version", "1.0"},
            {"added_tokens", json::array()},
            {"normalizer", nullptr},
            {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
            {"post_processor", nullptr},
            {"decoder", {{"type", "ByteLevel"}}},
            {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", m}}}};
  if (!patch.is_null()) j.merge_patch(patch);
  return j.dump();
}

}  // namespace

TEST(Split, EveryBehaviorAsDocumented) {
  // tokenizers' SplitDelimiterBehavior docs: "the-final--countdown" split on '-'.
  const std::string t = "the-final--countdown";
  EXPECT_EQ(pre_tokenize(split("Removed"), t), (V{"the", "final", "countdown"}));
  EXPECT_EQ(pre_tokenize(split("Isolated"), t), (V{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(pre_tokenize(split("MergedWithPrevious"), t), (V{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(pre_tokenize(split("MergedWithNext"), t), (V{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(pre_tokenize(split("Contiguous"), t), (V{"the", "-", "final", "--", "countdown"}));
  // invert: the words are the delimiters.
  EXPECT_EQ(pre_tokenize(split("Removed", true), t), (V{"-", "-", "-"}));
  EXPECT_EQ(pre_tokenize(split("MergedWithPrevious", true), t), (V{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(pre_tokenize(split("MergedWithNext", true), t), (V{"the-", "final-", "-", "countdown"}));
}

TEST(Split, RegexWithUnicodeClasses) {
  json re = {{"type", "Split"}, {"pattern", {{"Regex", "\\p{N}{1,3}"}}}, {"behavior", "Isolated"}, {"invert", false}};
  EXPECT_EQ(pre_tokenize(re, "ab1234567c٣٤"), (V{"ab", "123", "456", "7", "c", "٣٤"}));
  // \s is Unicode White_Space: U+3000 and U+00A0 are spaces, U+180E and U+200B are not.
  json ws = {{"type", "Split"}, {"pattern", {{"Regex", "\\s+"}}}, {"behavior", "Removed"}, {"invert", false}};
  EXPECT_EQ(pre_tokenize(ws, "a\u3000b\u00a0c\u180Ed\u200Be"), (V{"a", "b", "c\u180Ed\u200Be"}));
  // A repeated group over a 1 MiB word overflows PCRE2's default JIT stack; the larger one takes over.
  json group = {{"type", "Split"}, {"pattern", {{"Regex", "(?:a|bc)+"}}}, {"behavior", "Isolated"}, {"invert", false}};
  std::string word(1 << 20, 'a');
  EXPECT_EQ(pre_tokenize(group, word + "x").size(), 2u);
  json bad = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  EXPECT_THROW(make_pre_tokenizer(bad, "test"), Error);
}

TEST(PreTokenizers, DigitsByteLevelWhitespace) {
  EXPECT_EQ(pre_tokenize({{"type", "Digits"}, {"individual_digits", true}}, "Call 123 please"),
            (V{"Call ", "1", "2", "3", " please"}));
  EXPECT_EQ(pre_tokenize({{"type", "Digits"}, {"individual_digits", false}}, "Call 123 please"),
            (V{"Call ", "123", " please"}));
  EXPECT_EQ(pre_tokenize({{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}}, "Hello my friend"),
            (V{"\u0120Hello", "\u0120my", "\u0120friend"}));
  EXPECT_EQ(pre_tokenize({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}, "a b\n"),
            (V{"a\u0120b\u010A"}));
  EXPECT_EQ(pre_tokenize({{"type", "Whitespace"}}, "Hey friend!     How are you?!?"),
            (V{"Hey", "friend", "!", "How", "are", "you", "?!?"}));
  EXPECT_EQ(pre_tokenize({{"type", "WhitespaceSplit"}}, " a\tb  c "), (V{"a", "b", "c"}));
  // A Split after ByteLevel sees the mapped characters.
  json seq = {{"type", "Sequence"},
              {"pretokenizers", {{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}},
                                 {{"type", "Split"}, {"pattern", {{"String", "\u0120"}}}, {"behavior", "Removed"}}}}};
  EXPECT_EQ(pre_tokenize(seq, "a b"), (V{"a", "b"}));
}

TEST(Normalizers, Forms) {
  auto run = [](const json& j, std::string s) {
    make_normalizer(j, "test")->normalize(s);
    return s;
  };
  EXPECT_EQ(run({{"type", "NFC"}}, "e\u0301A\u030A"), "\u00e9\u00c5");
  EXPECT_EQ(run({{"type", "NFD"}}, "\u00e9"), "e\u0301");
  EXPECT_EQ(run({{"type", "NFKC"}}, "\uFB01 \u2460"), "fi 1");
  EXPECT_EQ(run({{"type", "Lowercase"}}, "HeLLo ÀÉ Σ"), "hello àé σ");
  EXPECT_EQ(run({{"type", "Strip"}, {"strip_left", true}, {"strip_right", true}}, " \t hi \u3000"), "hi");
  EXPECT_EQ(run({{"type", "Sequence"}, {"normalizers", {{{"type", "NFD"}}, {{"type", "StripAccents"}}}}}, "café"), "cafe");
  EXPECT_EQ(run({{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\u2581"}}, "a b c"), "a\u2581b\u2581c");
  EXPECT_EQ(run({{"type", "Replace"}, {"pattern", {{"Regex", "\\d+"}}}, {"content", "#"}}, "a12b3"), "a#b#");
  EXPECT_EQ(run({{"type", "Prepend"}, {"prepend", "\u2581"}}, "x"), "\u2581x");
  EXPECT_EQ(run({{"type", "Prepend"}, {"prepend", "\u2581"}}, ""), "");
  EXPECT_THROW(make_normalizer({{"type", "Nope"}}, "test"), Error);
}

TEST(Bpe, MergesApplyByRankThenLeftmost) {
  // "abc": with "b c" ranked first the word goes a|bc -> abc; with "a b" first, ab|c -> abc.
  auto t1 = Tokenizer::from_json(mini_json({"ab", "bc", "abc"}, {{"b", "c"}, {"a", "b"}, {"a", "bc"}}));
  auto t2 = Tokenizer::from_json(mini_json({"ab", "bc", "abc"}, {{"a", "b"}, {"b", "c"}, {"ab", "c"}}));
  int32_t abc = *t1.token_id("abc");
  EXPECT_EQ(t1.encode("abc", false), (std::vector<int32_t>{abc}));
  EXPECT_EQ(t2.encode("abc", false), (std::vector<int32_t>{abc}));
  // Without "a bc" the first tokenizer stops at a|bc.
  auto t3 = Tokenizer::from_json(mini_json({"ab", "bc", "abc"}, {{"b", "c"}, {"a", "b"}}));
  EXPECT_EQ(t3.encode("abc", false), (std::vector<int32_t>{*t3.token_id("a"), *t3.token_id("bc")}));
  // Ties on rank go leftmost: "aaa" with "a a" -> aa|a.
  auto t4 = Tokenizer::from_json(mini_json({"aa"}, {{"a", "a"}}));
  EXPECT_EQ(t4.encode("aaa", false), (std::vector<int32_t>{*t4.token_id("aa"), *t4.token_id("a")}));
  EXPECT_EQ(t4.encode("aaaa", false), (std::vector<int32_t>{*t4.token_id("aa"), *t4.token_id("aa")}));
}

TEST(Bpe, IgnoreMergesByteFallbackUnk) {
  // ignore_merges: a word that is itself in the vocab is taken whole, without merges leading to it.
  json im = {{"model", {{"ignore_merges", true}}}};
  auto t = Tokenizer::from_json(mini_json({"abcd"}, {}, im));
  EXPECT_EQ(t.encode("abcd", false), (std::vector<int32_t>{*t.token_id("abcd")}));
  auto t0 = Tokenizer::from_json(mini_json({"abcd"}, {}));
  EXPECT_EQ(t0.encode("abcd", false).size(), 4u);
  // byte_fallback in a non-byte-level vocab: an unknown character becomes its UTF-8 bytes as <0xXX> tokens.
  json bf = {{"version", "1.0"},
             {"pre_tokenizer", nullptr},
             {"decoder", {{"type", "Sequence"}, {"decoders", {{{"type", "ByteFallback"}}, {{"type", "Fuse"}}}}}},
             {"model", {{"type", "BPE"}, {"byte_fallback", true}, {"unk_token", "<unk>"},
                        {"vocab", {{"<unk>", 0}, {"a", 1}, {"<0xC3>", 2}, {"<0xA9>", 3}}}, {"merges", json::array()}}}};
  auto tb = Tokenizer::from_json(bf.dump());
  EXPECT_EQ(tb.encode("a\u00e9a", false), (std::vector<int32_t>{1, 2, 3, 1}));
  EXPECT_EQ(tb.decode(std::vector<int32_t>{1, 2, 3, 1}, false), "a\u00e9a");
  EXPECT_EQ(tb.decode(std::vector<int32_t>{1, 2, 1}, false), "a\uFFFDa");  // a lone byte token
  EXPECT_EQ(tb.encode("xa", false), (std::vector<int32_t>{0, 1}));        // no byte tokens for 'x': <unk>
  bf["model"]["fuse_unk"] = true;
  EXPECT_EQ(Tokenizer::from_json(bf.dump()).encode("xyza", false), (std::vector<int32_t>{0, 1}));
}

TEST(AddedTokens, StripAndSingleWordFlags) {
  auto with = [](json flags) {
    json a = {{"id", 300}, {"content", "<m>"}, {"special", true}, {"normalized", false}};
    if (flags.is_object()) a.merge_patch(flags);
    json vocab_extra = {{"model", {{"vocab", {{"<m>", 300}}}}}, {"added_tokens", {a}}};
    return Tokenizer::from_json(mini_json({}, {}, vocab_extra));
  };
  auto plain = with({});
  int32_t space = *plain.token_id("\u0120");
  EXPECT_EQ(plain.encode("a <m> b", false), (std::vector<int32_t>{*plain.token_id("a"), space, 300, space, *plain.token_id("b")}));
  auto l = with({{"lstrip", true}});
  EXPECT_EQ(l.encode("a  <m> b", false), (std::vector<int32_t>{*l.token_id("a"), 300, space, *l.token_id("b")}));
  auto r = with({{"rstrip", true}});
  EXPECT_EQ(r.encode("a <m>  b", false), (std::vector<int32_t>{*r.token_id("a"), space, 300, *r.token_id("b")}));
  auto w = with({{"single_word", true}});
  EXPECT_EQ(w.encode("x<m>", false).size(), 4u);  // inside a word: not the token
  EXPECT_EQ(w.encode("x <m>", false), (std::vector<int32_t>{*w.token_id("x"), space, 300}));
  EXPECT_TRUE(plain.is_special(300));
  EXPECT_EQ(plain.decode(std::vector<int32_t>{*plain.token_id("a"), 300}, true), "a");
  EXPECT_EQ(plain.decode(std::vector<int32_t>{*plain.token_id("a"), 300}, false), "a<m>");
}

TEST(Decoders, SentencePieceStyleChain) {
  json j = {{"version", "1.0"},
            {"pre_tokenizer", nullptr},
            {"decoder", {{"type", "Sequence"},
                         {"decoders", {{{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}},
                                       {{"type", "ByteFallback"}},
                                       {{"type", "Fuse"}},
                                       {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
            {"model", {{"type", "BPE"}, {"vocab", {{"\u2581Hi", 0}, {"\u2581there", 1}, {"<0x21>", 2}}},
                       {"merges", json::array()}}}};
  auto t = Tokenizer::from_json(j.dump());
  EXPECT_EQ(t.decode(std::vector<int32_t>{0, 1, 2}, false), "Hi there!");
  StreamDecoder sd(t);
  std::string s;
  for (int32_t id : {0, 1, 2}) s += sd.push(id);
  s += sd.flush();
  EXPECT_EQ(s, "Hi there!");
  // No decoder at all: tokens joined by spaces, as tokenizers does.
  j["decoder"] = nullptr;
  EXPECT_EQ(Tokenizer::from_json(j.dump()).decode(std::vector<int32_t>{0, 1}, false), "\u2581Hi \u2581there");
}

TEST(Utf8, MaximalSubpartReplacement) {
  // Unicode 15 section 3.9 / Python errors="replace": one U+FFFD per maximal subpart.
  const std::string r = "\uFFFD";
  EXPECT_EQ(unicode::sanitize("a\xe2\x82"), "a" + r);               // truncated 3-byte sequence
  EXPECT_EQ(unicode::sanitize("\xf0\x80\x80"), r + r + r);          // F0 80: second byte out of range
  EXPECT_EQ(unicode::sanitize("\xed\xa0\x80"), r + r + r);          // surrogate
  EXPECT_EQ(unicode::sanitize("\xc0\xaf"), r + r);                  // overlong
  EXPECT_EQ(unicode::sanitize("\xf4\x90\x80\x80"), r + r + r + r);  // above U+10FFFF
  EXPECT_EQ(unicode::sanitize("\xe2\x82\xac\xff"), "\u20ac" + r);
  EXPECT_EQ(unicode::sanitize("\x61\xf1\x80\x80\xe1\x80\xc2\x62"), "a" + r + r + r + "b");  // Unicode's example
  EXPECT_TRUE(unicode::is_valid("\xf0\x9f\x9a\x80"));
}
