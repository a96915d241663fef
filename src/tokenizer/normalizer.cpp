// Normalizer implementations. Unicode forms via utf8proc_map (STABLE | COMPOSE / DECOMPOSE / COMPAT);
// ASCII text is left as it is (it is invariant under all four forms).
#include "tokenizer/normalizer.h"

#include <utf8proc.h>

#include <cstdlib>
#include <optional>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"
#include "tokenizer/json_util.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace dm {

namespace {

bool is_ascii(const std::string& s) {
  for (unsigned char c : s)
    if (c >= 0x80) return false;
  return true;
}

class UnicodeForm : public Normalizer {
 public:
  explicit UnicodeForm(int options) : options_(options) {}
  void normalize(std::string& s) const override {
    if (is_ascii(s)) return;
    utf8proc_uint8_t* out = nullptr;
    auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), utf8proc_ssize_t(s.size()), &out,
                          utf8proc_option_t(options_));
    if (n < 0) fail("normalizer: utf8proc failed: ", utf8proc_errmsg(n));  // input is sanitized, so unexpected
    s.assign(reinterpret_cast<char*>(out), size_t(n));
    std::free(out);
  }

 private:
  int options_;
};

template <typename F>
void map_chars(std::string& s, F&& f) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    unicode::Scan r = unicode::scan(s, i);
    f(out, r.cp);
    i += r.len;
  }
  s = std::move(out);
}

class Lowercase : public Normalizer {
 public:
  void normalize(std::string& s) const override {
    map_chars(s, [](std::string& out, char32_t c) { unicode::append_utf8(out, unicode::to_lower(c)); });
  }
};

class StripAccents : public Normalizer {
 public:
  void normalize(std::string& s) const override {
    map_chars(s, [](std::string& out, char32_t c) {
      if (!unicode::is_nonspacing_mark(c)) unicode::append_utf8(out, c);
    });
  }
};

class Strip : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& s) const override {
    size_t b = 0, e = s.size();
    if (left_)
      while (b < e) {
        unicode::Scan r = unicode::scan(s, b);
        if (!unicode::is_white_space(r.cp)) break;
        b += r.len;
      }
    if (right_)
      while (e > b) {
        size_t i = e - 1;
        while (i > b && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
        if (!unicode::is_white_space(unicode::scan(s, i).cp)) break;
        e = i;
      }
    s = s.substr(b, e - b);
  }

 private:
  bool left_, right_;
};

class Prepend : public Normalizer {
 public:
  explicit Prepend(std::string p) : prepend_(std::move(p)) {}
  void normalize(std::string& s) const override {
    if (!s.empty()) s.insert(0, prepend_);
  }

 private:
  std::string prepend_;
};

class Replace : public Normalizer {
 public:
  Replace(std::optional<Regex> regex, std::string literal, std::string content)
      : regex_(std::move(regex)), literal_(std::move(literal)), content_(std::move(content)) {}
  void normalize(std::string& s) const override {
    std::vector<std::pair<size_t, size_t>> m;
    if (regex_) {
      RegexScratch scratch;
      regex_->find_all(s, scratch, m);
    } else if (!literal_.empty()) {
      for (size_t p = s.find(literal_); p != std::string::npos; p = s.find(literal_, p + literal_.size()))
        m.emplace_back(p, p + literal_.size());
    }
    if (m.empty()) return;
    std::string out;
    size_t prev = 0;
    for (auto [b, e] : m) {
      out.append(s, prev, b - prev);
      out += content_;
      prev = e;
    }
    out.append(s, prev, std::string::npos);
    s = std::move(out);
  }

 private:
  std::optional<Regex> regex_;
  std::string literal_, content_;
};

class Sequence : public Normalizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Normalizer>> items) : items_(std::move(items)) {}
  void normalize(std::string& s) const override {
    for (const auto& n : items_) n->normalize(s);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> items_;
};

}  // namespace

std::unique_ptr<Normalizer> make_nfc_normalizer() {
  return std::make_unique<UnicodeForm>(UTF8PROC_STABLE | UTF8PROC_COMPOSE);
}

std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  std::string type = json_string(j, "type", where);
  if (type == "NFC") return make_nfc_normalizer();
  if (type == "NFD") return std::make_unique<UnicodeForm>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
  if (type == "NFKC") return std::make_unique<UnicodeForm>(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
  if (type == "NFKD") return std::make_unique<UnicodeForm>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "StripAccents") return std::make_unique<StripAccents>();
  if (type == "Strip")
    return std::make_unique<Strip>(json_bool(j, "strip_left", where, true), json_bool(j, "strip_right", where, true));
  if (type == "Prepend") return std::make_unique<Prepend>(json_string(j, "prepend", where));
  if (type == "Replace") {
    Pattern p = json_pattern(j, where);
    std::optional<Regex> re;
    if (p.is_regex) re.emplace(p.text);
    return std::make_unique<Replace>(std::move(re), p.is_regex ? "" : p.text, json_string(j, "content", where));
  }
  if (type == "Sequence") {
    const auto& arr = json_array(j, "normalizers", where);
    std::vector<std::unique_ptr<Normalizer>> items;
    for (size_t i = 0; i < arr.size(); ++i)
      if (auto n = make_normalizer(arr[i], cat(where, ".normalizers[", i, "]"))) items.push_back(std::move(n));
    return std::make_unique<Sequence>(std::move(items));
  }
  fail(where, ": normalizer type '", type, "' is not supported");
}

}  // namespace dm
