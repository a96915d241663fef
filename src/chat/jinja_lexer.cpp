// Jinja lexer, following jinja2/lexer.py: root state finds the next `{{`, `{%` or `{#` (lazy match), applies the
// `-` (strip all whitespace before), lstrip_blocks (strip spaces before a block/comment tag alone on its line) and
// trim_blocks (drop the one newline after `%}` / `#}`) rules; inside tags it yields names, numbers, strings and
// operators, and a tag ends only where brackets are balanced.
#include "chat/jinja_lexer.h"

#include <algorithm>
#include <cstring>

#include "chat/jinja.h"

namespace dm::chat {

bool is_py_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x20) || cp == 0x85 || cp == 0xa0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f ||
         cp == 0x3000;
}

uint32_t decode_utf8(std::string_view s, size_t& i) {
  unsigned char c = s[i];
  int n = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
  if (n <= 0 || i + size_t(n) >= s.size()) {
    ++i;
    return c;
  }
  uint32_t cp = c & (0x3f >> n);
  for (int k = 1; k <= n; ++k) {
    unsigned char d = s[i + size_t(k)];
    if ((d & 0xc0) != 0x80) {
      ++i;
      return c;
    }
    cp = (cp << 6) | (d & 0x3f);
  }
  i += size_t(n) + 1;
  return cp;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xc0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += char(0xe0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3f));
    out += char(0x80 | (cp & 0x3f));
  } else {
    out += char(0xf0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3f));
    out += char(0x80 | ((cp >> 6) & 0x3f));
    out += char(0x80 | (cp & 0x3f));
  }
}

std::string_view py_lstrip(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t j = i;
    if (!is_py_space(decode_utf8(s, j))) break;
    i = j;
  }
  return s.substr(i);
}

std::string_view py_rstrip(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xc0) == 0x80 && end - start < 4) --start;
    size_t j = start;
    uint32_t cp = decode_utf8(s, j);
    if (j != end || !is_py_space(cp)) {
      if (j != end) {  // not a whole code point: test the last byte alone
        size_t k = end - 1;
        if (!is_py_space(decode_utf8(s, k))) break;
        --end;
        continue;
      }
      break;
    }
    end = start;
  }
  return s.substr(0, end);
}

namespace {

constexpr const char* kOperators[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[",
                                      "]",  "(",  ")",  "{",  "}",  ">",  "<", "=", ".", ":", "|", ",", ";"};

bool is_name_start(unsigned char c) { return std::isalpha(c) || c == '_' || c >= 0x80; }
bool is_name_char(unsigned char c) { return std::isalnum(c) || c == '_' || c >= 0x80; }

class Lexer {
 public:
  explicit Lexer(std::string_view src) {
    // Newlines normalized to "\n"; one trailing newline dropped (keep_trailing_newline=False).
    src_.reserve(src.size());
    for (size_t i = 0; i < src.size(); ++i) {
      if (src[i] == '\r') {
        if (i + 1 < src.size() && src[i + 1] == '\n') ++i;
        src_ += '\n';
      } else {
        src_ += src[i];
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
    line_starts_.push_back(0);
    for (size_t i = 0; i < src_.size(); ++i)
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
  }

  std::vector<Token> run() {
    size_t pos = 0;
    bool line_starting = true;
    while (pos < src_.size()) {
      size_t tag = find_tag(pos);
      if (tag == std::string::npos) {
        emit_data(pos, src_.substr(pos));
        break;
      }
      char kind = src_[tag + 1];  // '{', '%' or '#'
      char sign = tag + 2 < src_.size() && (src_[tag + 2] == '-' || src_[tag + 2] == '+') ? src_[tag + 2] : 0;
      std::string text = src_.substr(pos, tag - pos);
      if (sign == '-') {
        text = std::string(py_rstrip(text));
      } else if (sign != '+' && kind != '{') {  // lstrip_blocks
        size_t l_pos = text.rfind('\n');
        l_pos = l_pos == std::string::npos ? 0 : l_pos + 1;
        if ((l_pos > 0 || line_starting) && l_pos < text.size() && py_lstrip(std::string_view(text).substr(l_pos)).empty())
          text.resize(l_pos);
      }
      emit_data(pos, text);
      size_t body = tag + 2 + (sign ? 1 : 0);
      if (kind == '#') {
        pos = end_comment(body, tag);
      } else if (kind == '%' && is_raw(body)) {
        pos = raw_block(body, tag);
      } else {
        pos = tag_body(body, kind == '%', tag);
      }
      line_starting = pos > 0 && src_[pos - 1] == '\n';
    }
    tokens_.push_back({Tok::Eof, "", line_of(src_.size()), col_of(src_.size())});
    return std::move(tokens_);
  }

 private:
  std::string src_;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;

  int line_of(size_t pos) const {
    return int(std::upper_bound(line_starts_.begin(), line_starts_.end(), pos) - line_starts_.begin());
  }
  int col_of(size_t pos) const { return int(pos - line_starts_[size_t(line_of(pos) - 1)]) + 1; }
  [[noreturn]] void error(size_t pos, const std::string& msg) const {
    throw TemplateError(msg, line_of(pos), col_of(pos));
  }
  void push(Tok k, std::string text, size_t pos) { tokens_.push_back({k, std::move(text), line_of(pos), col_of(pos)}); }
  void emit_data(size_t pos, std::string text) {
    if (!text.empty()) push(Tok::Data, std::move(text), pos);
  }

  size_t find_tag(size_t pos) const {
    for (size_t i = src_.find('{', pos); i != std::string::npos; i = src_.find('{', i + 1))
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    return std::string::npos;
  }
  size_t skip_space(size_t p) const {
    while (p < src_.size()) {
      size_t j = p;
      if (!is_py_space(decode_utf8(src_, j))) break;
      p = j;
    }
    return p;
  }
  bool word_at(size_t p, std::string_view w) const {
    return src_.compare(p, w.size(), w) == 0 && (p + w.size() >= src_.size() || !is_name_char(src_[p + w.size()]));
  }
  // After a block end `%}` or comment end `#}` at p (pointing at the closing two characters, sign before them):
  // returns the position after the trimmed suffix.
  size_t after_end(size_t p, char sign) const {
    if (sign == '-') return skip_space(p);
    if (sign != '+' && p < src_.size() && src_[p] == '\n') return p + 1;  // trim_blocks
    return p;
  }

  size_t end_comment(size_t p, size_t tag) {
    size_t e = src_.find("#}", p);
    if (e == std::string::npos) error(tag, "Missing end of comment tag");
    char sign = e > p && (src_[e - 1] == '-' || src_[e - 1] == '+') ? src_[e - 1] : 0;
    return after_end(e + 2, sign);
  }

  bool is_raw(size_t p) const {
    p = skip_space(p);
    if (!word_at(p, "raw")) return false;
    p = skip_space(p + 3);
    return src_.compare(p, 2, "%}") == 0 || src_.compare(p, 3, "-%}") == 0;
  }

  size_t raw_block(size_t p, size_t tag) {
    p = skip_space(p) + 3;
    p = skip_space(p);
    if (src_[p] == '-') p = skip_space(p + 3);  // `-%}` strips what follows; no trim_blocks after raw begin
    else p += 2;
    for (size_t e = src_.find("{%", p); e != std::string::npos; e = src_.find("{%", e + 1)) {
      size_t q = e + 2;
      char sign = q < src_.size() && (src_[q] == '-' || src_[q] == '+') ? src_[q] : 0;
      if (sign) ++q;
      q = skip_space(q);
      if (!word_at(q, "endraw")) continue;
      q = skip_space(q + 6);
      char esign = 0;
      if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) esign = src_[q++];
      if (src_.compare(q, 2, "%}") != 0) continue;
      std::string text = src_.substr(p, e - p);
      if (sign == '-') {
        text = std::string(py_rstrip(text));
      } else if (sign != '+') {
        size_t l_pos = text.rfind('\n');
        l_pos = l_pos == std::string::npos ? 0 : l_pos + 1;
        if (l_pos > 0 && l_pos < text.size() && py_lstrip(std::string_view(text).substr(l_pos)).empty())
          text.resize(l_pos);
      }
      emit_data(p, text);
      return after_end(q + 2, esign);
    }
    error(tag, "Missing end of raw directive");
  }

  size_t tag_body(size_t p, bool block, size_t tag) {
    push(block ? Tok::BlockBegin : Tok::VarBegin, "", tag);
    std::vector<char> brackets;
    while (true) {
      p = skip_space(p);
      if (p >= src_.size()) error(tag, block ? "unexpected end of template, expected end of block tag"
                                             : "unexpected end of template, expected end of print statement");
      if (brackets.empty()) {
        if (block) {
          char sign = src_[p] == '-' || src_[p] == '+' ? src_[p] : 0;
          size_t q = p + (sign ? 1 : 0);
          if (src_.compare(q, 2, "%}") == 0) {
            push(Tok::BlockEnd, "", p);
            return after_end(q + 2, sign);
          }
        } else {
          if (src_.compare(p, 3, "-}}") == 0) {
            push(Tok::VarEnd, "", p);
            return skip_space(p + 3);
          }
          if (src_.compare(p, 2, "}}") == 0) {
            push(Tok::VarEnd, "", p);
            return p + 2;
          }
        }
      }
      unsigned char c = src_[p];
      if (std::isdigit(c)) {
        p = number(p);
      } else if (is_name_start(c)) {
        size_t q = p;
        while (q < src_.size() && is_name_char(src_[q])) ++q;
        push(Tok::Name, src_.substr(p, q - p), p);
        p = q;
      } else if (c == '\'' || c == '"') {
        p = string_literal(p);
      } else {
        const char* op = nullptr;
        for (const char* o : kOperators)
          if (src_.compare(p, std::strlen(o), o) == 0) {
            op = o;
            break;
          }
        if (!op) error(p, cat("unexpected char '", src_.substr(p, 1), "'"));
        std::string o(op);
        if (o == "(" || o == "[" || o == "{") {
          brackets.push_back(o == "(" ? ')' : o == "[" ? ']' : '}');
        } else if (o == ")" || o == "]" || o == "}") {
          if (brackets.empty()) error(p, cat("unexpected '", o, "'"));
          if (brackets.back() != o[0]) error(p, cat("unexpected '", o, "', expected '", brackets.back(), "'"));
          brackets.pop_back();
        }
        push(Tok::Op, o, p);
        p += o.size();
      }
    }
  }

  size_t number(size_t p) {
    size_t start = p;
    auto digits = [&](size_t q, auto pred) {
      size_t r = q;
      while (r < src_.size() && (pred(static_cast<unsigned char>(src_[r])) ||
                                 (src_[r] == '_' && r + 1 < src_.size() && pred(static_cast<unsigned char>(src_[r + 1])))))
        ++r;
      return r;
    };
    auto isdig = [](unsigned char c) { return std::isdigit(c) != 0; };
    auto strip_us = [](std::string s) {
      s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
      return s;
    };
    if (src_[p] == '0' && p + 1 < src_.size() && std::strchr("xXoObB", src_[p + 1]) && src_[p + 1] != 0) {
      char k = char(std::tolower(src_[p + 1]));
      int base = k == 'x' ? 16 : k == 'o' ? 8 : 2;
      auto pred = [base](unsigned char c) {
        return base == 16 ? std::isxdigit(c) != 0 : base == 8 ? (c >= '0' && c <= '7') : (c == '0' || c == '1');
      };
      size_t q = p + 2;
      if (q < src_.size() && src_[q] == '_') ++q;
      size_t e = digits(q, pred);
      if (e > q) {
        std::string d = strip_us(src_.substr(q, e - q));
        Token t{Tok::Int, src_.substr(start, e - start), line_of(p), col_of(p)};
        try {
          t.ival = std::stoll(d, nullptr, base);
        } catch (...) {
          error(p, "integer literal too large");
        }
        tokens_.push_back(t);
        return e;
      }
    }
    size_t e = digits(p, isdig);
    bool is_float = false;
    if (e + 1 < src_.size() && src_[e] == '.' && std::isdigit(static_cast<unsigned char>(src_[e + 1]))) {
      e = digits(e + 1, isdig);
      is_float = true;
    }
    if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
      size_t q = e + 1;
      if (q < src_.size() && (src_[q] == '+' || src_[q] == '-')) ++q;
      if (q < src_.size() && std::isdigit(static_cast<unsigned char>(src_[q]))) {
        e = digits(q, isdig);
        is_float = true;
      }
    }
    std::string text = strip_us(src_.substr(start, e - start));
    Token t{is_float ? Tok::Float : Tok::Int, text, line_of(p), col_of(p)};
    if (is_float) {
      t.fval = std::strtod(text.c_str(), nullptr);
    } else {
      if (text.size() > 1 && text[0] == '0' && text.find_first_not_of('0') != std::string::npos) {
        // "01": Jinja2 lexes "0" then "1"; the parser then fails. Do the same.
        e = start + 1;
        text = "0";
      }
      try {
        t.ival = std::stoll(text);
      } catch (...) {
        error(p, "integer literal too large");
      }
      t.text = text;
    }
    tokens_.push_back(t);
    return e;
  }

  // A Python string literal with its escapes (Jinja2 decodes with "unicode-escape").
  size_t string_literal(size_t p) {
    char q = src_[p];
    std::string out;
    size_t i = p + 1;
    auto hex = [&](size_t at, int n) -> uint32_t {
      uint32_t v = 0;
      for (int k = 0; k < n; ++k) {
        if (at + size_t(k) >= src_.size() || !std::isxdigit(static_cast<unsigned char>(src_[at + size_t(k)])))
          error(p, "truncated \\x/\\u escape in string literal");
        char c = src_[at + size_t(k)];
        v = v * 16 + uint32_t(std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : std::tolower(c) - 'a' + 10);
      }
      return v;
    };
    while (true) {
      if (i >= src_.size()) error(p, "unexpected end of string literal");
      char c = src_[i];
      if (c == q) break;
      if (c != '\\') {
        out += c;
        ++i;
        continue;
      }
      if (i + 1 >= src_.size()) error(p, "unexpected end of string literal");
      char n = src_[i + 1];
      i += 2;
      switch (n) {
        case '\n': break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'v': out += '\v'; break;
        case 'x': append_utf8(out, hex(i, 2)); i += 2; break;
        case 'u': append_utf8(out, hex(i, 4)); i += 4; break;
        case 'U': {
          uint32_t cp = hex(i, 8);
          if (cp > 0x10ffff) error(p, "illegal Unicode character in string literal");
          append_utf8(out, cp);
          i += 8;
          break;
        }
        default:
          if (n >= '0' && n <= '7') {
            uint32_t v = uint32_t(n - '0');
            for (int k = 0; k < 2 && i < src_.size() && src_[i] >= '0' && src_[i] <= '7'; ++k) v = v * 8 + uint32_t(src_[i++] - '0');
            append_utf8(out, v);
          } else {
            out += '\\';
            out += n;
          }
      }
    }
    push(Tok::String, std::move(out), p);
    return i + 1;
  }
};

}  // namespace

std::vector<Token> tokenize(std::string_view source) { return Lexer(source).run(); }

}  // namespace dm::chat
