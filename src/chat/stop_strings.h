// Stop strings over streamed text: the text of a generation arrives in pieces (one per token, split anywhere), and
// a stop string may straddle pieces. The matcher holds back any tail that could still begin a stop string, so the
// text it releases never contains (a part of) a stop string; the stop string itself is not part of the output,
// as in the OpenAI API. Byte-exact matching. Not thread-safe.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace dm {

class StopStringMatcher {
 public:
  explicit StopStringMatcher(std::vector<std::string> stops);  // empty strings are ignored

  // Adds text and returns what can be shown now. Once a stop string matched, stopped() is true, the returned
  // text ends right before it, and later pushes return "".
  std::string push(std::string_view text);
  // The held-back tail, when the generation ended without a match.
  std::string flush();
  bool stopped() const { return stopped_; }
  const std::string& matched() const { return matched_; }  // the stop string that matched
  // The text that followed the match in what was pushed (for parsers that switch mode at a marker).
  const std::string& rest() const { return rest_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
  std::string matched_;
  std::string rest_;
};

}  // namespace dm
