// Pre-tokenizer implementations. Each step turns every current span into zero or more sub-spans; the
// delimiter behaviors follow NormalizedString::split exactly (including Contiguous merging equal neighbours),
// and empty pieces are dropped, as PreTokenizedString::split does.
#include "tokenizer/pre_tokenizer.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/json_util.h"
#include "tokenizer/unicode.h"

namespace dm {

namespace {

// GPT-2's word pattern, used by ByteLevel when use_regex is set.
constexpr const char* kGpt2Pattern = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

using Span = std::pair<size_t, size_t>;
using Piece = std::pair<Span, bool>;  // (range, is a match)

// matches (sorted, non-overlapping, relative to [0, n)) -> pieces covering [0, n), like Pattern::find_matches.
void to_pieces(size_t n, const std::vector<Span>& matches, bool invert, std::vector<Piece>& out) {
  out.clear();
  if (n == 0) {
    out.push_back({{0, 0}, invert});
    return;
  }
  size_t prev = 0;
  for (auto [s, e] : matches) {
    if (prev != s) out.push_back({{prev, s}, invert});
    out.push_back({{s, e}, !invert});
    prev = e;
  }
  if (prev != n) out.push_back({{prev, n}, invert});
}

// Applies a split behavior to pieces of the span starting at base; appends non-empty spans to out.
void apply_behavior(SplitBehavior b, size_t base, std::vector<Piece>& pieces, std::vector<Span>& out) {
  auto emit = [&](Span s) {
    if (s.second > s.first) out.emplace_back(base + s.first, base + s.second);
  };
  switch (b) {
    case SplitBehavior::Isolated:
      for (auto& [s, m] : pieces) emit(s);
      return;
    case SplitBehavior::Removed:
      for (auto& [s, m] : pieces)
        if (!m) emit(s);
      return;
    case SplitBehavior::Contiguous:
    case SplitBehavior::MergedWithPrevious: {
      std::vector<Span> acc;
      bool previous_match = false;
      for (auto& [s, m] : pieces) {
        bool merge = b == SplitBehavior::Contiguous ? m == previous_match : (m && !previous_match);
        if (merge && !acc.empty()) acc.back().second = s.second;
        else acc.push_back(s);
        previous_match = m;
      }
      for (Span s : acc) emit(s);
      return;
    }
    case SplitBehavior::MergedWithNext: {
      std::vector<Span> acc;
      bool previous_match = false;
      for (size_t i = pieces.size(); i-- > 0;) {
        auto [s, m] = pieces[i];
        if (m && !previous_match && !acc.empty()) acc.back().first = s.first;
        else acc.push_back(s);
        previous_match = m;
      }
      for (size_t i = acc.size(); i-- > 0;) emit(acc[i]);
      return;
    }
  }
}

SplitBehavior parse_behavior(const std::string& s, const std::string& where) {
  if (s == "Removed") return SplitBehavior::Removed;
  if (s == "Isolated") return SplitBehavior::Isolated;
  if (s == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (s == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (s == "Contiguous") return SplitBehavior::Contiguous;
  fail(where, ".behavior: '", s, "' is not one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous");
}

// A split step: find the delimiters of each span, then apply the behavior.
class SplitStep : public PreTokenizer {
 public:
  SplitStep(SplitBehavior b, bool invert) : behavior_(b), invert_(invert) {}
  void apply(PreTokens& p, PreTokenizeScratch& s) const override {
    if (p.byte_level) materialize_byte_level(p);
    s.spans.clear();
    for (auto [b, e] : p.spans) {
      s.matches.clear();
      find(std::string_view(p.text).substr(b, e - b), s);
      to_pieces(e - b, s.matches, invert_, s.pieces);
      apply_behavior(behavior_, b, s.pieces, s.spans);
    }
    p.spans.swap(s.spans);
  }

 protected:
  // Fills s.matches with the delimiters in word.
  virtual void find(std::string_view word, PreTokenizeScratch& s) const = 0;

 private:
  SplitBehavior behavior_;
  bool invert_;
};

class RegexSplit : public SplitStep {
 public:
  RegexSplit(const std::string& pattern, SplitBehavior b, bool invert) : SplitStep(b, invert), re_(pattern) {}
  void find(std::string_view word, PreTokenizeScratch& s) const override { re_.find_all(word, s.regex, s.matches); }

 private:
  Regex re_;
};

class StringSplit : public SplitStep {
 public:
  StringSplit(std::string needle, SplitBehavior b, bool invert) : SplitStep(b, invert), needle_(std::move(needle)) {}
  void find(std::string_view word, PreTokenizeScratch& s) const override {
    if (needle_.empty()) return;
    for (size_t p = word.find(needle_); p != std::string_view::npos; p = word.find(needle_, p + needle_.size()))
      s.matches.emplace_back(p, p + needle_.size());
  }

 private:
  std::string needle_;
};

// Every character for which pred holds is a delimiter (tokenizers' `impl Pattern for Fn(char) -> bool`).
template <bool (*Pred)(char32_t)>
class CharSplit : public SplitStep {
 public:
  using SplitStep::SplitStep;
  void find(std::string_view word, PreTokenizeScratch& s) const override {
    for (size_t i = 0; i < word.size();) {
      unicode::Scan r = unicode::scan(word, i);
      if (Pred(r.cp)) s.matches.emplace_back(i, i + r.len);
      i += r.len;
    }
  }
};

class ByteLevel : public PreTokenizer {
 public:
  ByteLevel(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space),
        split_(use_regex ? std::make_unique<RegexSplit>(kGpt2Pattern, SplitBehavior::Isolated, false) : nullptr) {}
  void apply(PreTokens& p, PreTokenizeScratch& s) const override {
    if (p.byte_level) materialize_byte_level(p);
    if (add_prefix_space_) {  // note: per span, as tokenizers' ByteLevel::pre_tokenize does
      std::string text;
      std::vector<Span> spans;
      for (auto [b, e] : p.spans) {
        size_t start = text.size();
        if (e == b || p.text[b] != ' ') text += ' ';
        text.append(p.text, b, e - b);
        spans.emplace_back(start, text.size());
      }
      p.text.swap(text);
      p.spans.swap(spans);
    }
    if (split_) split_->apply(p, s);
    p.byte_level = true;
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<RegexSplit> split_;
};

class Sequence : public PreTokenizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PreTokenizer>> items) : items_(std::move(items)) {}
  void apply(PreTokens& p, PreTokenizeScratch& s) const override {
    for (const auto& step : items_) step->apply(p, s);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> items_;
};

}  // namespace

void materialize_byte_level(PreTokens& p) {
  const auto& bl = unicode::byte_level_table();
  std::string text;
  std::vector<Span> spans;
  for (auto [b, e] : p.spans) {
    size_t start = text.size();
    for (size_t i = b; i < e; ++i) text += bl.byte_to_utf8[static_cast<unsigned char>(p.text[i])];
    spans.emplace_back(start, text.size());
  }
  p.text.swap(text);
  p.spans.swap(spans);
  p.byte_level = false;
}

std::unique_ptr<PreTokenizer> make_regex_split(const std::string& regex, SplitBehavior behavior, bool invert) {
  return std::make_unique<RegexSplit>(regex, behavior, invert);
}
std::unique_ptr<PreTokenizer> make_byte_level(bool add_prefix_space, bool use_regex) {
  return std::make_unique<ByteLevel>(add_prefix_space, use_regex);
}
std::unique_ptr<PreTokenizer> make_sequence(std::vector<std::unique_ptr<PreTokenizer>> items) {
  return std::make_unique<Sequence>(std::move(items));
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  std::string type = json_string(j, "type", where);
  if (type == "Sequence") {
    const auto& arr = json_array(j, "pretokenizers", where);
    std::vector<std::unique_ptr<PreTokenizer>> items;
    for (size_t i = 0; i < arr.size(); ++i)
      if (auto p = make_pre_tokenizer(arr[i], cat(where, ".pretokenizers[", i, "]"))) items.push_back(std::move(p));
    return make_sequence(std::move(items));
  }
  if (type == "Split") {
    Pattern pat = json_pattern(j, where);
    SplitBehavior b = parse_behavior(json_string(j, "behavior", where), where);
    bool invert = json_bool(j, "invert", where, false);
    if (pat.is_regex) {
      try {
        return make_regex_split(pat.text, b, invert);
      } catch (const Error& e) {
        fail(where, ".pattern: ", e.what());
      }
    }
    return std::make_unique<StringSplit>(pat.text, b, invert);
  }
  if (type == "ByteLevel")
    return make_byte_level(json_bool(j, "add_prefix_space", where, true), json_bool(j, "use_regex", where, true));
  if (type == "Digits") {
    bool individual = json_bool(j, "individual_digits", where, false);
    return std::make_unique<CharSplit<unicode::is_numeric>>(
        individual ? SplitBehavior::Isolated : SplitBehavior::Contiguous, false);
  }
  if (type == "Whitespace") return make_regex_split("\\w+|[^\\w\\s]+", SplitBehavior::Removed, true);
  if (type == "WhitespaceSplit")
    return std::make_unique<CharSplit<unicode::is_white_space>>(SplitBehavior::Removed, false);
  fail(where, ": pre-tokenizer type '", type, "' is not supported");
}

}  // namespace dm
