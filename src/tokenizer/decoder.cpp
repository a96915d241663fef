// Decoder implementations (tokenizers/src/decoders/{byte_level,byte_fallback,fuse,strip,sequence}.rs and
// normalizers/replace.rs). Invalid UTF-8 produced by byte tokens becomes U+FFFD (maximal subparts).
#include "tokenizer/decoder.h"

#include <nlohmann/json.hpp>
#include <optional>

#include "core/error.h"
#include "tokenizer/json_util.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace dm {

std::string byte_level_token_bytes(const std::string& token) {
  const auto& bl = unicode::byte_level_table();
  std::string out;
  for (size_t i = 0; i < token.size();) {
    unicode::Scan r = unicode::scan(token, i);
    int b = r.valid ? bl.byte_of(r.cp) : -1;
    if (b < 0) return token;
    out += char(b);
    i += r.len;
  }
  return out;
}

namespace {

class ByteLevel : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const auto& t : tokens) bytes += byte_level_token_bytes(t);
    tokens.assign(1, unicode::sanitize(bytes));
  }
  bool is_byte_level() const override { return true; }
};

class ByteFallback : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string bytes;
    auto flush = [&] {
      if (bytes.empty()) return;
      if (unicode::is_valid(bytes)) out.push_back(bytes);
      else
        for (size_t i = 0; i < bytes.size(); ++i) out.push_back("\xEF\xBF\xBD");
      bytes.clear();
    };
    for (auto& t : tokens) {
      int v = -1;
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') {
        auto hex = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1; };
        int h = hex(t[3]), l = hex(t[4]);
        if (h >= 0 && l >= 0) v = h * 16 + l;
      }
      if (v >= 0) {
        bytes += char(v);
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens = std::move(out);
  }
};

class Fuse : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

class Strip : public Decoder {
 public:
  Strip(char32_t content, size_t start, size_t stop) : content_(content), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) {
      std::vector<std::pair<size_t, char32_t>> chars;  // (byte offset, code point)
      for (size_t i = 0; i < t.size();) {
        unicode::Scan r = unicode::scan(t, i);
        chars.emplace_back(i, r.cp);
        i += r.len;
      }
      size_t b = 0, e = chars.size();
      while (b < start_ && b < e && chars[b].second == content_) ++b;
      for (size_t k = 0; k < stop_ && e > b && chars[e - 1].second == content_; ++k) --e;
      size_t bb = b < chars.size() ? chars[b].first : t.size();
      size_t be = e < chars.size() ? chars[e].first : t.size();
      t = t.substr(bb, be - bb);
    }
  }

 private:
  char32_t content_;
  size_t start_, stop_;
};

class Replace : public Decoder {
 public:
  Replace(std::optional<Regex> re, std::string literal, std::string content)
      : re_(std::move(re)), literal_(std::move(literal)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    RegexScratch scratch;
    std::vector<std::pair<size_t, size_t>> m;
    for (auto& t : tokens) {
      m.clear();
      if (re_) re_->find_all(t, scratch, m);
      else if (!literal_.empty())
        for (size_t p = t.find(literal_); p != std::string::npos; p = t.find(literal_, p + literal_.size()))
          m.emplace_back(p, p + literal_.size());
      if (m.empty()) continue;
      std::string out;
      size_t prev = 0;
      for (auto [b, e] : m) {
        out.append(t, prev, b - prev);
        out += content_;
        prev = e;
      }
      out.append(t, prev, std::string::npos);
      t = std::move(out);
    }
  }

 private:
  std::optional<Regex> re_;
  std::string literal_, content_;
};

class Sequence : public Decoder {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Decoder>> items) : items_(std::move(items)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& d : items_) d->decode_chain(tokens);
  }
  bool is_byte_level() const override { return items_.size() == 1 && items_[0]->is_byte_level(); }

 private:
  std::vector<std::unique_ptr<Decoder>> items_;
};

}  // namespace

std::unique_ptr<Decoder> make_byte_level_decoder() { return std::make_unique<ByteLevel>(); }

std::unique_ptr<Decoder> make_decoder(const nlohmann::json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  std::string type = json_string(j, "type", where);
  if (type == "ByteLevel") return make_byte_level_decoder();
  if (type == "ByteFallback") return std::make_unique<ByteFallback>();
  if (type == "Fuse") return std::make_unique<Fuse>();
  if (type == "Strip") {
    std::string c = json_string(j, "content", where);
    unicode::Scan r = c.empty() ? unicode::Scan{0, 0, false, false} : unicode::scan(c, 0);
    if (!r.valid || r.len != c.size()) fail(where, ".content: expected one character, found '", c, "'");
    return std::make_unique<Strip>(r.cp, size_t(json_int(j, "start", where)), size_t(json_int(j, "stop", where)));
  }
  if (type == "Replace") {
    Pattern p = json_pattern(j, where);
    std::optional<Regex> re;
    if (p.is_regex) re.emplace(p.text);
    return std::make_unique<Replace>(std::move(re), p.is_regex ? "" : p.text, json_string(j, "content", where));
  }
  if (type == "Sequence") {
    const auto& arr = json_array(j, "decoders", where);
    std::vector<std::unique_ptr<Decoder>> items;
    for (size_t i = 0; i < arr.size(); ++i)
      if (auto d = make_decoder(arr[i], cat(where, ".decoders[", i, "]"))) items.push_back(std::move(d));
    return std::make_unique<Sequence>(std::move(items));
  }
  fail(where, ": decoder type '", type, "' is not supported");
}

}  // namespace dm
