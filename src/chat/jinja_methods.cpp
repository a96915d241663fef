// Bound methods of str, dict and list that chat templates call (strip, split, startswith, replace, get, items, ...),
// and Python's two string formatting forms (`%` and str.format). Semantics follow CPython's str methods; case
// mapping covers ASCII, Latin-1, Greek and Cyrillic letters.
#include <algorithm>
#include <cstdio>

#include "chat/jinja_builtins.h"
#include "chat/jinja_lexer.h"
#include "core/error.h"

namespace dm::chat {

namespace {

uint32_t upper_cp(uint32_t c) {
  if (c >= 'a' && c <= 'z') return c - 32;
  if ((c >= 0xe0 && c <= 0xfe && c != 0xf7) || (c >= 0x3b1 && c <= 0x3c9 && c != 0x3c2) || (c >= 0x430 && c <= 0x44f))
    return c - 32;
  if (c >= 0x450 && c <= 0x45f) return c - 80;
  return c;
}
uint32_t lower_cp(uint32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if ((c >= 0xc0 && c <= 0xde && c != 0xd7) || (c >= 0x391 && c <= 0x3a9 && c != 0x3a2) || (c >= 0x410 && c <= 0x42f))
    return c + 32;
  if (c >= 0x400 && c <= 0x40f) return c + 80;
  return c;
}
bool is_cased(uint32_t c) { return upper_cp(c) != c || lower_cp(c) != c; }

std::vector<uint32_t> cps(const std::string& s) {
  std::vector<uint32_t> out;
  for (size_t i = 0; i < s.size();) out.push_back(decode_utf8(s, i));
  return out;
}
std::string utf8(const std::vector<uint32_t>& v) {
  std::string s;
  for (uint32_t c : v) append_utf8(s, c);
  return s;
}

const Value kNone{None{}};

std::string need_str(const Value& v, const char* what) {
  if (!v.is_string()) fail(what, " must be str, not ", type_name(v));
  return v.str();
}

std::string strip_chars(const std::string& s, const Value& chars, bool left, bool right) {
  if (chars.is_none() || chars.is_undefined()) {
    std::string_view r = s;
    if (left) r = py_lstrip(r);
    if (right) r = py_rstrip(r);
    return std::string(r);
  }
  std::vector<uint32_t> set = cps(need_str(chars, "strip arg")), v = cps(s);
  auto in = [&](uint32_t c) { return std::find(set.begin(), set.end(), c) != set.end(); };
  size_t b = 0, e = v.size();
  if (left)
    while (b < e && in(v[b])) ++b;
  if (right)
    while (e > b && in(v[e - 1])) --e;
  return utf8(std::vector<uint32_t>(v.begin() + long(b), v.begin() + long(e)));
}

Value split(const std::string& s, const Value& sep, int64_t maxsplit, bool from_right) {
  std::vector<Value> parts;
  if (sep.is_none() || sep.is_undefined()) {
    // Runs of whitespace separate; leading/trailing whitespace gives no empty parts.
    std::vector<std::pair<size_t, size_t>> words;
    size_t i = 0;
    while (i < s.size()) {
      size_t j = i;
      if (is_py_space(decode_utf8(s, j))) {
        i = j;
        continue;
      }
      size_t start = i;
      while (i < s.size()) {
        size_t k = i;
        if (is_py_space(decode_utf8(s, k))) break;
        i = k;
      }
      words.emplace_back(start, i);
    }
    if (maxsplit >= 0 && int64_t(words.size()) > maxsplit + 1) {
      if (!from_right) {
        for (int64_t k = 0; k < maxsplit; ++k) parts.emplace_back(s.substr(words[size_t(k)].first, words[size_t(k)].second - words[size_t(k)].first));
        parts.emplace_back(std::string(py_rstrip(std::string_view(s).substr(words[size_t(maxsplit)].first))));
      } else {
        size_t keep = words.size() - size_t(maxsplit);
        parts.emplace_back(std::string(py_lstrip(std::string_view(s).substr(0, words[keep - 1].second))));
        for (size_t k = keep; k < words.size(); ++k) parts.emplace_back(s.substr(words[k].first, words[k].second - words[k].first));
      }
    } else {
      for (auto [b, e] : words) parts.emplace_back(s.substr(b, e - b));
    }
    return make_list(std::move(parts));
  }
  std::string d = need_str(sep, "separator");
  if (d.empty()) fail("empty separator");
  std::vector<std::string> all;
  size_t pos = 0;
  while (true) {
    size_t f = s.find(d, pos);
    if (f == std::string::npos) break;
    all.push_back(s.substr(pos, f - pos));
    pos = f + d.size();
  }
  all.push_back(s.substr(pos));
  if (maxsplit >= 0 && int64_t(all.size()) > maxsplit + 1) {
    std::vector<std::string> merged;
    if (!from_right) {
      for (int64_t k = 0; k < maxsplit; ++k) merged.push_back(all[size_t(k)]);
      std::string rest = all[size_t(maxsplit)];
      for (size_t k = size_t(maxsplit) + 1; k < all.size(); ++k) rest += d + all[k];
      merged.push_back(rest);
    } else {
      size_t keep = all.size() - size_t(maxsplit);
      std::string rest = all[0];
      for (size_t k = 1; k < keep; ++k) rest += d + all[k];
      merged.push_back(rest);
      for (size_t k = keep; k < all.size(); ++k) merged.push_back(all[k]);
    }
    all = std::move(merged);
  }
  for (auto& p : all) parts.emplace_back(p);
  return make_list(std::move(parts));
}

bool affix(const std::string& s, const Value& x, bool prefix) {
  auto one = [&](const Value& p) {
    const std::string a = need_str(p, prefix ? "startswith arg" : "endswith arg");
    if (a.size() > s.size()) return false;
    return prefix ? s.compare(0, a.size(), a) == 0 : s.compare(s.size() - a.size(), a.size(), a) == 0;
  };
  if (x.is_list() && x.list().tuple) {
    for (auto& p : x.list().items)
      if (one(p)) return true;
    return false;
  }
  if (!x.is_string()) fail(prefix ? "startswith" : "endswith", " first arg must be str or a tuple of str, not ", type_name(x));
  return one(x);
}

int64_t cp_index(const std::string& s, size_t byte) {
  int64_t n = 0;
  for (size_t i = 0; i < byte;) {
    decode_utf8(s, i);
    ++n;
  }
  return n;
}

std::string replace(const std::string& s, const std::string& old, const std::string& with, int64_t count) {
  std::string out;
  if (old.empty()) {  // Python inserts `with` around every code point
    int64_t n = 0;
    size_t i = 0;
    while (true) {
      if (count < 0 || n < count) {
        out += with;
        ++n;
      }
      if (i >= s.size()) break;
      size_t j = i;
      decode_utf8(s, j);
      out += s.substr(i, j - i);
      i = j;
    }
    return out;
  }
  size_t pos = 0;
  int64_t n = 0;
  while (count < 0 || n < count) {
    size_t f = s.find(old, pos);
    if (f == std::string::npos) break;
    out += s.substr(pos, f - pos) + with;
    pos = f + old.size();
    ++n;
  }
  return out + s.substr(pos);
}

}  // namespace

std::string py_upper(const std::string& s) {
  std::vector<uint32_t> v;
  for (uint32_t c : cps(s)) {
    if (c == 0xdf) {  // ß has no capital form: Python writes SS
      v.push_back('S');
      v.push_back('S');
    } else {
      v.push_back(upper_cp(c));
    }
  }
  return utf8(v);
}
std::string py_lower(const std::string& s) {
  auto v = cps(s);
  for (auto& c : v) c = lower_cp(c);
  return utf8(v);
}
std::string py_capitalize(const std::string& s) {
  auto v = cps(s);
  for (size_t i = 0; i < v.size(); ++i) v[i] = i == 0 ? upper_cp(v[i]) : lower_cp(v[i]);
  return utf8(v);
}
std::string py_title(const std::string& s) {
  auto v = cps(s);
  bool prev_cased = false;
  for (auto& c : v) {
    c = prev_cased ? lower_cp(c) : upper_cp(c);
    prev_cased = is_cased(c);
  }
  return utf8(v);
}

Value string_method(const Value& self, const std::string& name) {
  static const char* kNames[] = {"strip",    "lstrip",   "rstrip",  "split",      "rsplit",     "splitlines",
                                 "startswith", "endswith", "replace", "upper",      "lower",      "title",
                                 "capitalize", "find",     "rfind",   "index",      "rindex",     "count",
                                 "format",   "join",     "isdigit", "isalpha",    "isalnum",    "isspace",
                                 "isupper",  "islower",  "removeprefix", "removesuffix", "zfill", "swapcase"};
  if (std::find_if(std::begin(kNames), std::end(kNames), [&](const char* n) { return name == n; }) == std::end(kNames))
    return Value::undefined();
  std::string s = self.str();
  return make_callable("str." + name, [s, name](CallArgs& a, Renderer&) -> Value {
    const Value& a0 = arg(a, 0, nullptr, kNone);
    if (name == "strip") return Value(strip_chars(s, arg(a, 0, "chars", kNone), true, true));
    if (name == "lstrip") return Value(strip_chars(s, arg(a, 0, "chars", kNone), true, false));
    if (name == "rstrip") return Value(strip_chars(s, arg(a, 0, "chars", kNone), false, true));
    if (name == "split" || name == "rsplit") {
      const Value& ms = arg(a, 1, "maxsplit", Value(int64_t(-1)));
      if (!ms.is_int() && !ms.is_bool()) fail("maxsplit must be an integer");
      return split(s, arg(a, 0, "sep", kNone), ms.as_int(), name == "rsplit");
    }
    if (name == "splitlines") {
      std::vector<Value> lines;
      bool keep = truthy(arg(a, 0, "keepends", Value(false)));
      size_t start = 0;
      for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\n' || s[i] == '\r') {
          size_t end = i;
          if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
          lines.emplace_back(s.substr(start, (keep ? i + 1 : end) - start));
          start = i + 1;
        }
      }
      if (start < s.size()) lines.emplace_back(s.substr(start));
      return make_list(std::move(lines));
    }
    if (name == "startswith" || name == "endswith") return Value(affix(s, a0, name == "startswith"));
    if (name == "replace") {
      const Value& c = arg(a, 2, "count", Value(int64_t(-1)));
      return Value(replace(s, need_str(a0, "replace arg 1"), need_str(arg(a, 1, nullptr, kNone), "replace arg 2"),
                           c.is_number() ? c.as_int() : -1));
    }
    if (name == "upper") return Value(py_upper(s));
    if (name == "lower") return Value(py_lower(s));
    if (name == "title") return Value(py_title(s));
    if (name == "capitalize") return Value(py_capitalize(s));
    if (name == "swapcase") {
      auto v = cps(s);
      for (auto& c : v) c = upper_cp(c) != c ? upper_cp(c) : lower_cp(c);
      return Value(utf8(v));
    }
    if (name == "find" || name == "rfind" || name == "index" || name == "rindex") {
      std::string sub = need_str(a0, "substring");
      size_t f = name[0] == 'r' ? s.rfind(sub) : s.find(sub);
      if (f == std::string::npos) {
        if (name.find("index") != std::string::npos) fail("substring not found");
        return Value(int64_t(-1));
      }
      return Value(cp_index(s, f));
    }
    if (name == "count") {
      std::string sub = need_str(a0, "substring");
      if (sub.empty()) return Value(int64_t(length(Value(s)) + 1));
      int64_t n = 0;
      for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
      return Value(n);
    }
    if (name == "format") return Value(str_format(s, a));
    if (name == "join") {
      std::string out;
      bool first = true;
      for (auto& x : iterate(a0)) {
        if (!x.is_string()) fail("sequence item: expected str instance, ", type_name(x), " found");
        if (!first) out += s;
        out += x.str();
        first = false;
      }
      return Value(out);
    }
    if (name == "removeprefix") {
      std::string p = need_str(a0, "prefix");
      return Value(s.compare(0, p.size(), p) == 0 ? s.substr(p.size()) : s);
    }
    if (name == "removesuffix") {
      std::string p = need_str(a0, "suffix");
      return Value(!p.empty() && s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0
                       ? s.substr(0, s.size() - p.size())
                       : s);
    }
    if (name == "zfill") {
      int64_t w = a0.is_number() ? a0.as_int() : 0;
      int64_t n = int64_t(length(Value(s)));
      if (w <= n) return Value(s);
      size_t sign = !s.empty() && (s[0] == '-' || s[0] == '+') ? 1 : 0;
      return Value(s.substr(0, sign) + std::string(size_t(w - n), '0') + s.substr(sign));
    }
    auto v = cps(s);
    auto all = [&](auto pred) { return !v.empty() && std::all_of(v.begin(), v.end(), pred); };
    if (name == "isdigit") return Value(all([](uint32_t c) { return c >= '0' && c <= '9'; }));
    if (name == "isalpha") return Value(all([](uint32_t c) { return is_cased(c) || c > 0x7f; }));
    if (name == "isalnum") return Value(all([](uint32_t c) { return (c >= '0' && c <= '9') || is_cased(c) || c > 0x7f; }));
    if (name == "isspace") return Value(all([](uint32_t c) { return is_py_space(c); }));
    bool any_cased = std::any_of(v.begin(), v.end(), is_cased);
    if (name == "isupper") return Value(any_cased && std::none_of(v.begin(), v.end(), [](uint32_t c) { return upper_cp(c) != c; }));
    return Value(any_cased && std::none_of(v.begin(), v.end(), [](uint32_t c) { return lower_cp(c) != c; }));  // islower
  });
}

Value dict_method(const Value& self, const std::string& name) {
  if (name != "get" && name != "items" && name != "keys" && name != "values" && name != "copy") return Value::undefined();
  Value d = self;
  return make_callable("dict." + name, [d, name](CallArgs& a, Renderer&) -> Value {
    const Dict& dict = d.dict();
    if (name == "get") {
      const Value* v = dict.find(arg(a, 0, nullptr, kNone));
      return v ? *v : arg(a, 1, nullptr, kNone);
    }
    if (name == "copy") return d;
    std::vector<Value> out;
    for (auto& [k, v] : dict.items) {
      if (name == "items") out.push_back(make_list({k, v}, true));
      else out.push_back(name == "keys" ? k : v);
    }
    return make_view(std::move(out), "dict_" + name);
  });
}

Value list_method(const Value& self, const std::string& name) {
  if (name != "index" && name != "count" && name != "copy") return Value::undefined();
  Value l = self;
  return make_callable("list." + name, [l, name](CallArgs& a, Renderer&) -> Value {
    const auto& items = l.list().items;
    if (name == "copy") return l;
    const Value& x = arg(a, 0, nullptr, kNone);
    int64_t n = 0;
    for (size_t i = 0; i < items.size(); ++i)
      if (equals(items[i], x)) {
        if (name == "index") return Value(int64_t(i));
        ++n;
      }
    if (name == "index") fail(repr(x), " is not in list");
    return Value(n);
  });
}

// printf-style: %[(key)][flags][width][.prec]type
std::string percent_format(const std::string& fmt, const Value& args) {
  std::vector<Value> list;
  if (args.is_list() && args.list().tuple) list = args.list().items;
  else if (!args.is_dict()) list = {args};
  size_t next = 0;
  std::string out;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    if (++i >= fmt.size()) fail("incomplete format");
    const Value* v = nullptr;
    if (fmt[i] == '(') {
      size_t close = fmt.find(')', i);
      if (close == std::string::npos || !args.is_dict()) fail("format requires a mapping");
      v = args.dict().find(std::string_view(fmt).substr(i + 1, close - i - 1));
      if (!v) fail("KeyError: ", fmt.substr(i + 1, close - i - 1));
      i = close + 1;
    }
    std::string spec = "%";
    while (i < fmt.size() && std::string_view("-+ #0").find(fmt[i]) != std::string_view::npos) spec += fmt[i++];
    while (i < fmt.size() && (std::isdigit(static_cast<unsigned char>(fmt[i])) || fmt[i] == '.')) spec += fmt[i++];
    if (i >= fmt.size()) fail("incomplete format");
    char t = fmt[i];
    if (t == '%') {
      out += '%';
      continue;
    }
    if (!v) {
      if (next >= list.size()) fail("not enough arguments for format string");
      v = &list[next++];
    }
    char buf[512];
    if (t == 's' || t == 'r' || t == 'a') {
      std::string s = t == 's' ? to_str(*v) : repr(*v);
      size_t dot = spec.find('.');
      if (dot != std::string::npos) s = slice(Value(s), Value(None{}), Value(int64_t(std::atoll(spec.c_str() + dot + 1))), Value(None{})).str();
      size_t width = 0;
      for (size_t k = 1; k < spec.size() && k < dot; ++k)
        if (std::isdigit(static_cast<unsigned char>(spec[k]))) width = std::min<size_t>(width * 10 + size_t(spec[k] - '0'), 4096);
      size_t n = length(Value(s));
      if (n < width) s = spec.find('-') != std::string::npos ? s + std::string(width - n, ' ') : std::string(width - n, ' ') + s;
      out += s;
    } else if (t == 'd' || t == 'i' || t == 'x' || t == 'X' || t == 'o' || t == 'c') {
      if (!v->is_number()) fail("%", t, " format: a number is required, not ", type_name(*v));
      int64_t n = v->is_float() ? int64_t(v->as_float()) : v->as_int();
      std::snprintf(buf, sizeof buf, (spec + "ll" + (t == 'i' || t == 'c' ? 'd' : t)).c_str(), (long long)n);
      out += buf;
    } else if (std::string_view("fFeEgG").find(t) != std::string_view::npos) {
      if (!v->is_number()) fail("must be real number, not ", type_name(*v));
      std::snprintf(buf, sizeof buf, (spec + t).c_str(), v->as_float());
      out += buf;
    } else {
      fail("unsupported format character '", std::string(1, t), "'");
    }
  }
  if (next < list.size() && !args.is_dict()) fail("not all arguments converted during string formatting");
  return out;
}

std::string str_format(const std::string& fmt, const CallArgs& args) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    char c = fmt[i];
    if (c == '}' ) {
      if (i + 1 < fmt.size() && fmt[i + 1] == '}') ++i;
      else fail("Single '}' encountered in format string");
      out += '}';
      continue;
    }
    if (c != '{') {
      out += c;
      continue;
    }
    if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out += '{';
      ++i;
      continue;
    }
    size_t close = fmt.find('}', i);
    if (close == std::string::npos) fail("Single '{' encountered in format string");
    std::string field = fmt.substr(i + 1, close - i - 1);
    std::string spec;
    if (size_t colon = field.find(':'); colon != std::string::npos) {
      spec = field.substr(colon + 1);
      field = field.substr(0, colon);
    }
    Value v;
    if (field.empty()) {
      if (auto_index >= args.args.size()) fail("Replacement index ", auto_index, " out of range");
      v = args.args[auto_index++];
    } else if (std::all_of(field.begin(), field.end(), [](char d) { return std::isdigit(static_cast<unsigned char>(d)); })) {
      size_t k = std::stoul(field);
      if (k >= args.args.size()) fail("Replacement index ", k, " out of range");
      v = args.args[k];
    } else {
      const Value* found = nullptr;
      for (auto& [k, x] : args.kwargs)
        if (k == field) found = &x;
      if (!found) fail("KeyError: '", field, "'");
      v = *found;
    }
    std::string s = to_str(v);
    if (!spec.empty()) {
      // [[fill]align][width][.precision][type]
      char fill = ' ', align = v.is_number() ? '>' : '<';
      size_t p = 0;
      if (spec.size() >= 2 && std::string_view("<>^").find(spec[1]) != std::string_view::npos) {
        fill = spec[0];
        align = spec[1];
        p = 2;
      } else if (!spec.empty() && std::string_view("<>^").find(spec[0]) != std::string_view::npos) {
        align = spec[0];
        p = 1;
      }
      size_t width = 0;
      while (p < spec.size() && std::isdigit(static_cast<unsigned char>(spec[p]))) width = width * 10 + size_t(spec[p++] - '0');
      if (p < spec.size() && spec[p] == '.') {
        int prec = 0;
        ++p;
        while (p < spec.size() && std::isdigit(static_cast<unsigned char>(spec[p]))) prec = prec * 10 + (spec[p++] - '0');
        if (p < spec.size() && spec[p] == 'f' && v.is_number()) {
          char buf[512];
          std::snprintf(buf, sizeof buf, "%.*f", std::min(prec, 100), v.as_float());
          s = buf;
        } else if (v.is_string()) {
          s = std::string(slice(v, Value(None{}), Value(int64_t(prec)), Value(None{})).str());
        }
      }
      size_t n = length(Value(s));
      if (n < width) {
        size_t pad = width - n;
        if (align == '<') s += std::string(pad, fill);
        else if (align == '>') s = std::string(pad, fill) + s;
        else s = std::string(pad / 2, fill) + s + std::string(pad - pad / 2, fill);
      }
    }
    out += s;
    i = close;
  }
  return out;
}

}  // namespace dm::chat
