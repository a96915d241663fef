// Stop strings: matched across piece boundaries (every split of the text), never leaked, earliest match wins.
#include "chat/stop_strings.h"

#include <gtest/gtest.h>

namespace dm {
namespace {

// Feeds `text` split at every position in `cuts` and returns (output, stopped).
std::pair<std::string, bool> feed(const std::vector<std::string>& stops, const std::vector<std::string>& pieces) {
  StopStringMatcher m(stops);
  std::string out;
  for (const std::string& p : pieces) {
    std::string piece = m.push(p);
    for (const std::string& s : stops)
      EXPECT_EQ(piece.find(s), std::string::npos) << "stop string leaked";
    out += piece;
  }
  out += m.flush();
  return {out, m.stopped()};
}

TEST(StopStrings, MatchesAcrossEverySplit) {
  const std::string text = "Hello world. ###END### ignored";
  for (size_t i = 0; i <= text.size(); ++i) {
    for (size_t j = i; j <= text.size(); ++j) {
      auto [out, stopped] = feed({"###END###"}, {text.substr(0, i), text.substr(i, j - i), text.substr(j)});
      EXPECT_TRUE(stopped) << i << " " << j;
      EXPECT_EQ(out, "Hello world. ") << i << " " << j;
    }
  }
}

TEST(StopStrings, ByteAtATimeAndNoMatch) {
  const std::string text = "a partial ##EN but no stop";
  std::vector<std::string> bytes;
  for (char c : text) bytes.push_back(std::string(1, c));
  auto [out, stopped] = feed({"##END"}, bytes);
  EXPECT_FALSE(stopped);
  EXPECT_EQ(out, text);  // the held-back "##EN" comes out once it can no longer match
}

TEST(StopStrings, HoldsBackOnlyAPossiblePrefix) {
  StopStringMatcher m({"</s>"});
  EXPECT_EQ(m.push("abc<"), "abc");
  EXPECT_EQ(m.push("/"), "");
  EXPECT_EQ(m.push("x"), "</x");
  EXPECT_EQ(m.push("</s"), "");
  EXPECT_EQ(m.push(">tail"), "");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.rest(), "tail");
  EXPECT_EQ(m.push("more"), "");
  EXPECT_EQ(m.flush(), "");
}

TEST(StopStrings, EarliestOfSeveralWinsAndUtf8) {
  auto [out, stopped] = feed({"世界", "b"}, {"ab", "c 世", "界"});
  EXPECT_TRUE(stopped);
  EXPECT_EQ(out, "a");
  StopStringMatcher m({"ZZ", "世界"});
  EXPECT_EQ(m.push("你好世"), "你好");
  EXPECT_EQ(m.push("界!"), "");
  EXPECT_EQ(m.matched(), "世界");
  auto [out2, stopped2] = feed({}, {"no ", "stops"});
  EXPECT_FALSE(stopped2);
  EXPECT_EQ(out2, "no stops");
}

}  // namespace
}  // namespace dm
