// Jinja2's built-in filters and tests, transformers' tojson (json.dumps with ensure_ascii=False, no HTML escaping),
// and the template globals (range with the sandbox's 100000 limit, dict, namespace, cycler, joiner,
// raise_exception, strftime_now). Reference: jinja2/filters.py, jinja2/tests.py, jinja2/defaults.py (Jinja2 3.1),
// transformers/utils/chat_template_utils.py.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>

#include "chat/jinja_builtins.h"
#include "chat/jinja_lexer.h"
#include "chat/jinja_render.h"
#include "core/error.h"

namespace dm::chat {

std::string py_upper(const std::string& s);  // jinja_methods.cpp
std::string py_lower(const std::string& s);
std::string py_capitalize(const std::string& s);

namespace {

const Value kNone{None{}};

// Jinja2's make_attrgetter: "a.b.0" looks up each part with getitem (item first, then attribute).
Value attr_path(const Value& obj, const Value& attribute) {
  if (attribute.is_int()) return get_item(obj, attribute);
  std::string path = to_str(attribute);
  Value v = obj;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
    if (v.is_undefined()) return v;
    v = digits ? get_item(v, Value(int64_t(std::stoll(part)))) : get_item(v, Value(part));
    if (dot == std::string::npos) return v;
    start = dot + 1;
  }
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

// Sort key with Jinja2's case_sensitive=False: strings compare lowercased.
Value fold(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value(py_lower(v.str()));
  return v;
}

std::string ascii_json(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    unsigned char c = s[i];
    if (c < 0x80) {
      out += char(c);
      ++i;
      continue;
    }
    uint32_t cp = decode_utf8(s, i);
    char buf[16];
    if (cp >= 0x10000) {
      cp -= 0x10000;
      std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
    } else {
      std::snprintf(buf, sizeof buf, "\\u%04x", cp);
    }
    out += buf;
  }
  return out;
}

Value filter_map(Renderer& r, const Value& input, CallArgs& a) {
  std::vector<Value> out;
  std::vector<Value> items = iterate(input);
  const Value* attribute = nullptr;
  for (auto& [k, v] : a.kwargs)
    if (k == "attribute") attribute = &v;
  if (attribute) {
    const Value& dflt = arg(a, 99, "default", Value());
    for (auto& x : items) {
      Value v = attr_path(x, *attribute);
      out.push_back(v.is_undefined() && a.kwargs.size() > 1 ? dflt : v);
    }
  } else {
    if (a.args.empty()) fail("map requires a filter argument");
    std::string name = to_str(a.args[0]);
    CallArgs rest;
    rest.args.assign(a.args.begin() + 1, a.args.end());
    rest.kwargs = a.kwargs;
    for (auto& x : items) {
      CallArgs copy = rest;
      out.push_back(apply_filter(r, name, x, copy));
    }
  }
  return make_view(std::move(out), "generator");
}

// select / reject / selectattr / rejectattr
Value filter_select(Renderer& r, const Value& input, CallArgs& a, bool keep, bool by_attr) {
  std::vector<Value> out;
  size_t off = by_attr ? 1 : 0;
  if (by_attr && a.args.empty()) fail("Missing parameter for attribute name");
  std::string test = a.args.size() > off ? to_str(a.args[off]) : "";
  CallArgs rest;
  if (a.args.size() > off + 1) rest.args.assign(a.args.begin() + long(off) + 1, a.args.end());
  rest.kwargs = a.kwargs;
  for (auto& x : iterate(input)) {
    Value v = by_attr ? attr_path(x, a.args[0]) : x;
    bool ok;
    if (test.empty()) {
      ok = truthy(v);
    } else {
      CallArgs copy = rest;
      ok = apply_test(r, test, v, copy);
    }
    if (ok == keep) out.push_back(x);
  }
  return make_view(std::move(out), "generator");
}

Value sorted_values(std::vector<Value> items, bool reverse, bool case_sensitive, const Value& attribute) {
  std::vector<std::pair<Value, Value>> keyed;
  for (auto& x : items) keyed.emplace_back(fold(attribute.is_none() ? x : attr_path(x, attribute), case_sensitive), x);
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& p, const auto& q) {
    return reverse ? compare(q.first, p.first) < 0 : compare(p.first, q.first) < 0;
  });
  std::vector<Value> out;
  for (auto& [k, x] : keyed) out.push_back(x);
  return make_list(std::move(out));
}

Value to_int(const Value& v, const Value& dflt, int base) {
  if (v.is_int() || v.is_bool()) return Value(v.as_int());
  if (v.is_float()) {
    double d = v.as_float();
    if (!std::isfinite(d) || std::fabs(d) > 9.2e18) return dflt;
    return Value(int64_t(d));
  }
  if (v.is_string()) {
    std::string s(py_rstrip(py_lstrip(v.str())));
    std::string digits = s;
    digits.erase(std::remove(digits.begin(), digits.end(), '_'), digits.end());
    if (!digits.empty()) {
      errno = 0;
      char* end = nullptr;
      long long n = std::strtoll(digits.c_str(), &end, base);
      if (errno == 0 && end && *end == 0) return Value(int64_t(n));
      double d = std::strtod(digits.c_str(), &end);  // Jinja2 retries as int(float(s))
      if (end && *end == 0 && std::isfinite(d) && std::fabs(d) < 9.2e18) return Value(int64_t(d));
    }
  }
  return dflt;
}

Value to_float(const Value& v, const Value& dflt) {
  if (v.is_number()) return Value(v.as_float());
  if (v.is_string()) {
    std::string s(py_rstrip(py_lstrip(v.str())));
    char* end = nullptr;
    double d = std::strtod(s.c_str(), &end);
    if (!s.empty() && end && *end == 0) return Value(d);
  }
  return dflt;
}

Value py_round(const Value& v, int64_t precision, const std::string& method) {
  if (!v.is_number()) fail("type ", type_name(v), " doesn't define __round__ method");
  if (method == "common") {
    if (!v.is_float()) return Value(v.as_int());
    char buf[512];
    std::snprintf(buf, sizeof buf, "%.*f", int(std::clamp<int64_t>(precision, 0, 300)), v.as_float());  // half-even on exact ties, like round()
    return Value(std::strtod(buf, nullptr));
  }
  if (method != "ceil" && method != "floor") fail("method must be common, ceil or floor");
  double m = std::pow(10.0, double(precision));
  double x = v.as_float() * m;
  return Value((method == "ceil" ? std::ceil(x) : std::floor(x)) / m);
}

std::string indent(std::string s, const Value& width, bool first, bool blank) {
  std::string ind = width.is_string() ? width.str() : std::string(size_t(std::clamp<int64_t>(width.as_int(), 0, 4096)), ' ');
  s += "\n";  // as Jinja2 does, so that splitlines keeps a trailing empty line
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i)
    if (s[i] == '\n' || s[i] == '\r') {
      lines.push_back(s.substr(start, i - start));
      if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
      start = i + 1;
    }
  if (start < s.size()) lines.push_back(s.substr(start));
  std::string rv;
  if (blank) {
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i) rv.append("\n").append(ind);
      rv.append(lines[i]);
    }
  } else {
    if (!lines.empty()) rv = lines[0];
    for (size_t i = 1; i < lines.size(); ++i) {
      rv.append("\n");
      if (!lines[i].empty()) rv.append(ind);
      rv.append(lines[i]);
    }
  }
  return first ? ind + rv : rv;
}

const char* kFilters[] = {"abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e",
                          "escape", "filesizeformat", "first", "float", "forceescape", "format", "groupby", "indent",
                          "int", "items", "join", "last", "length", "list", "lower", "map", "max", "min", "pprint",
                          "random", "reject", "rejectattr", "replace", "reverse", "round", "safe", "select",
                          "selectattr", "slice", "sort", "string", "striptags", "sum", "title", "tojson", "trim",
                          "truncate", "unique", "upper", "urlencode", "urlize", "wordcount", "wordwrap", "xmlattr"};
const char* kTests[] = {"odd", "even", "divisibleby", "defined", "undefined", "filter", "test", "none", "boolean",
                        "false", "true", "integer", "float", "lower", "upper", "string", "mapping", "number",
                        "sequence", "iterable", "callable", "sameas", "escaped", "in", "==", "eq", "equalto", "!=",
                        "ne", ">", "gt", "greaterthan", "ge", ">=", "<", "lt", "lessthan", "<=", "le"};

}  // namespace

bool has_filter(std::string_view name) {
  return std::any_of(std::begin(kFilters), std::end(kFilters), [&](const char* f) { return name == f; });
}
bool has_test(std::string_view name) {
  return std::any_of(std::begin(kTests), std::end(kTests), [&](const char* f) { return name == f; });
}

Value apply_filter(Renderer& r, const std::string& name, const Value& in, CallArgs& a) {
  r.step();
  const Value& a0 = arg(a, 0, nullptr, kNone);
  auto text = [&] { return to_str(in); };
  if (name == "default" || name == "d") {
    const Value& dflt = arg(a, 0, "default_value", Value(""));
    bool boolean = truthy(arg(a, 1, "boolean", Value(false)));
    return in.is_undefined() || (boolean && !truthy(in)) ? dflt : in;
  }
  if (name == "length" || name == "count") return Value(int64_t(length(in)));
  if (name == "tojson") {
    const Value& ind = arg(a, 0, "indent", kNone);
    if (!arg(a, 99, "separators", kNone).is_none()) fail("tojson: separators are not supported");
    int indent = ind.is_none() ? -1 : ind.is_number() ? int(std::clamp<int64_t>(ind.as_int(), 0, 64)) : -1;
    std::string s = to_json(in, indent, truthy(arg(a, 99, "sort_keys", Value(false))));
    return Value(truthy(arg(a, 99, "ensure_ascii", Value(false))) ? ascii_json(s) : s);
  }
  if (name == "trim") {
    Value chars = arg(a, 0, "chars", kNone);
    if (chars.is_none()) return Value(std::string(py_rstrip(py_lstrip(text()))));
    CallArgs args{{chars}, {}};
    return r.call(get_attr(Value(text()), "strip"), args);
  }
  if (name == "lower") return Value(py_lower(text()));
  if (name == "upper") return Value(py_upper(text()));
  if (name == "capitalize") return Value(py_capitalize(text()));
  if (name == "title") {
    // Jinja2: split on runs of [-\s({[<], capitalize each piece.
    std::string s = text(), out, word;
    auto flush = [&] {
      if (!word.empty()) out += py_capitalize(word);
      word.clear();
    };
    for (size_t i = 0; i < s.size();) {
      size_t start = i;
      uint32_t cp = decode_utf8(s, i);
      if (is_py_space(cp) || cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<') {
        flush();
        out += s.substr(start, i - start);
      } else {
        word += s.substr(start, i - start);
      }
    }
    flush();
    return Value(out);
  }
  if (name == "replace") {
    const Value& count = arg(a, 2, "count", kNone);
    CallArgs args{{Value(to_str(a0)), Value(to_str(arg(a, 1, "new", Value(""))))}, {}};
    if (!count.is_none()) args.args.push_back(count);
    return r.call(get_attr(Value(text()), "replace"), args);
  }
  if (name == "join") {
    const Value& sep = arg(a, 0, "d", Value(""));
    const Value& attribute = arg(a, 1, "attribute", kNone);
    std::string out;
    bool first = true;
    for (auto& x : iterate(in)) {
      if (!first) out += to_str(sep);
      out += to_str(attribute.is_none() ? x : attr_path(x, attribute));
      first = false;
    }
    return Value(out);
  }
  if (name == "first") {
    auto items = iterate(in);
    return items.empty() ? Value::undefined("No first item, sequence was empty.") : items.front();
  }
  if (name == "last") {
    if (in.is_list() && !in.list().sized()) fail("'", type_name(in), "' object is not reversible");
    auto items = iterate(in);
    return items.empty() ? Value::undefined("No last item, sequence was empty.") : items.back();
  }
  if (name == "items") {
    if (in.is_undefined()) return make_view({}, "generator");
    if (!in.is_dict()) fail("Can only get item pairs from a mapping.");
    std::vector<Value> out;
    for (auto& [k, v] : in.dict().items) out.push_back(make_list({k, v}, true));
    return make_view(std::move(out), "generator");
  }
  if (name == "list") return make_list(iterate(in));
  if (name == "string") {
    Value s(text());
    s.safe = in.safe;
    return s;
  }
  if (name == "map") return filter_map(r, in, a);
  if (name == "select" || name == "reject") return filter_select(r, in, a, name == "select", false);
  if (name == "selectattr" || name == "rejectattr") return filter_select(r, in, a, name == "selectattr", true);
  if (name == "int") return to_int(in, arg(a, 0, "default", Value(int64_t(0))), int(arg(a, 1, "base", Value(10)).as_int()));
  if (name == "float") return to_float(in, arg(a, 0, "default", Value(0.0)));
  if (name == "abs") {
    if (in.is_float()) return Value(std::fabs(in.as_float()));
    if (in.is_number()) return in.as_int() < 0 ? negate(in) : Value(in.as_int());
    fail("bad operand type for abs(): '", type_name(in), "'");
  }
  if (name == "round") {
    const Value& p = arg(a, 0, "precision", Value(0));
    return py_round(in, p.is_number() ? p.as_int() : 0, to_str(arg(a, 1, "method", Value("common"))));
  }
  if (name == "indent") {
    return Value(indent(text(), arg(a, 0, "width", Value(4)), truthy(arg(a, 1, "first", Value(false))),
                        truthy(arg(a, 2, "blank", Value(false)))));
  }
  if (name == "safe") {
    Value s(text());
    s.safe = true;
    return s;
  }
  if (name == "e" || name == "escape" || name == "forceescape") {
    if (in.safe && name != "forceescape") return in;
    Value s(html_escape(text()));
    s.safe = true;
    return s;
  }
  if (name == "unique") {
    bool cs = truthy(arg(a, 0, "case_sensitive", Value(false)));
    const Value& attribute = arg(a, 1, "attribute", kNone);
    std::vector<Value> out, seen;
    for (auto& x : iterate(in)) {
      Value key = fold(attribute.is_none() ? x : attr_path(x, attribute), cs);
      if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, key); })) {
        seen.push_back(key);
        out.push_back(x);
      }
    }
    return make_view(std::move(out), "generator");
  }
  if (name == "sort")
    return sorted_values(iterate(in), truthy(arg(a, 0, "reverse", Value(false))),
                         truthy(arg(a, 1, "case_sensitive", Value(false))), arg(a, 2, "attribute", kNone));
  if (name == "reverse") {
    if (in.is_string()) return slice(in, kNone, kNone, Value(int64_t(-1)));
    auto items = iterate(in);
    std::reverse(items.begin(), items.end());
    if (in.is_list() && in.list().sized()) return make_view(std::move(items), "list_reverseiterator");
    return make_list(std::move(items));
  }
  if (name == "dictsort") {
    if (!in.is_dict()) fail("dictsort: a mapping is required");
    bool cs = truthy(arg(a, 0, "case_sensitive", Value(false)));
    std::string by = to_str(arg(a, 1, "by", Value("key")));
    bool reverse = truthy(arg(a, 2, "reverse", Value(false)));
    std::vector<std::pair<Value, Value>> items(in.dict().items);
    std::stable_sort(items.begin(), items.end(), [&](const auto& p, const auto& q) {
      const Value& x = by == "key" ? p.first : p.second;
      const Value& y = by == "key" ? q.first : q.second;
      return reverse ? compare(fold(y, cs), fold(x, cs)) < 0 : compare(fold(x, cs), fold(y, cs)) < 0;
    });
    std::vector<Value> out;
    for (auto& [k, v] : items) out.push_back(make_list({k, v}, true));
    return make_list(std::move(out));
  }
  if (name == "sum") {
    const Value& attribute = arg(a, 0, "attribute", kNone);
    Value total = arg(a, 1, "start", Value(0));
    for (auto& x : iterate(in)) total = binary_op("+", total, attribute.is_none() ? x : attr_path(x, attribute), r.limits().max_output);
    return total;
  }
  if (name == "min" || name == "max") {
    bool cs = truthy(arg(a, 0, "case_sensitive", Value(false)));
    const Value& attribute = arg(a, 1, "attribute", kNone);
    auto items = iterate(in);
    if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
    Value best = items[0];
    for (size_t i = 1; i < items.size(); ++i) {
      Value k = fold(attribute.is_none() ? items[i] : attr_path(items[i], attribute), cs);
      Value bk = fold(attribute.is_none() ? best : attr_path(best, attribute), cs);
      int c = compare(k, bk);
      if (name == "min" ? c < 0 : c > 0) best = items[i];
    }
    return best;
  }
  if (name == "batch") {
    int64_t n = arg(a, 0, "linecount", Value(1)).as_int();
    if (n <= 0) fail("batch: linecount must be positive");
    const Value& fill = arg(a, 1, "fill_with", kNone);
    std::vector<Value> out, cur;
    for (auto& x : iterate(in)) {
      cur.push_back(x);
      if (int64_t(cur.size()) == n) out.push_back(make_list(std::exchange(cur, {})));
    }
    if (!cur.empty()) {
      if (!fill.is_none())
        while (int64_t(cur.size()) < n) cur.push_back(fill);
      out.push_back(make_list(std::move(cur)));
    }
    return make_view(std::move(out), "generator");
  }
  if (name == "wordcount") {
    std::string s = text();
    int64_t words = 0;
    bool in_word = false;
    for (size_t i = 0; i < s.size();) {
      uint32_t cp = decode_utf8(s, i);
      bool w = cp == '_' || (cp < 0x80 ? std::isalnum(int(cp)) != 0 : !is_py_space(cp));
      if (w && !in_word) ++words;
      in_word = w;
    }
    return Value(words);
  }
  if (name == "center") {
    std::string s = text();
    int64_t width = arg(a, 0, "width", Value(80)).as_int(), n = int64_t(length(Value(s)));
    if (width <= n) return Value(s);
    size_t pad = size_t(std::min<int64_t>(width - n, int64_t(r.limits().max_output)));
    size_t left = pad / 2 + (pad & size_t(width) & 1);  // CPython's str.center rounding
    return Value(std::string(left, ' ') + s + std::string(pad - left, ' '));
  }
  if (name == "format") {
    if (!a.kwargs.empty()) {
      std::vector<std::pair<Value, Value>> kv;
      for (auto& [k, v] : a.kwargs) kv.emplace_back(Value(k), v);
      return Value(percent_format(text(), make_dict(std::move(kv))));
    }
    return Value(percent_format(text(), make_list(a.args, true)));
  }
  if (name == "attr") {
    Value key = a0;
    if (in.is_dict() || in.is_list() || in.is_string()) {
      Value m = get_attr(in, to_str(key));
      if (in.is_dict() && in.dict().find(key)) return Value::undefined(cat("'dict object' has no attribute '", to_str(key), "'"));
      return m;
    }
    return in.is_undefined() ? in : get_attr(in, to_str(key));
  }
  if (has_filter(name)) fail("filter '", name, "' is not supported by deepmoe");
  fail("No filter named '", name, "'.");
}

bool apply_test(Renderer& r, const std::string& name, const Value& v, CallArgs& a) {
  r.step();
  const Value& a0 = arg(a, 0, nullptr, kNone);
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.is_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict();
  if (name == "sequence") return v.is_string() || v.is_dict() || v.is_undefined() || (v.is_list() && v.list().indexable());
  if (name == "iterable") return v.is_string() || v.is_dict() || v.is_list() || v.is_undefined();
  if (name == "callable") return v.is_callable() || v.is_undefined();
  if (name == "escaped") return v.safe;
  if (name == "lower" || name == "upper") {
    CallArgs none;
    return truthy(r.call(get_attr(Value(to_str(v)), name == "lower" ? "islower" : "isupper"), none));
  }
  if (name == "odd" || name == "even") {
    Value m = binary_op("%", v, Value(2), 0);
    return equals(m, Value(name == "odd" ? 1 : 0));
  }
  if (name == "divisibleby") return equals(binary_op("%", v, a0, 0), Value(0));
  if (name == "sameas") {
    if (v.is_list() || v.is_dict() || v.is_namespace() || v.is_callable()) return v.data.index() == a0.data.index() && equals(v, a0);
    return v.data.index() == a0.data.index() && equals(v, a0);
  }
  if (name == "in") return contains(a0, v);
  if (name == "==" || name == "eq" || name == "equalto") return equals(v, a0);
  if (name == "!=" || name == "ne") return !equals(v, a0);
  if (name == "filter") return has_filter(to_str(v));
  if (name == "test") return has_test(to_str(v));
  if (v.is_undefined() || a0.is_undefined()) fail("'<' comparison with an undefined value");
  int c = compare(v, a0);
  if (name == ">" || name == "gt" || name == "greaterthan") return c > 0;
  if (name == ">=" || name == "ge") return c >= 0;
  if (name == "<" || name == "lt" || name == "lessthan") return c < 0;
  if (name == "<=" || name == "le") return c <= 0;
  fail("No test named '", name, "'.");
}

std::vector<std::pair<std::string, Value>> global_functions() {
  std::vector<std::pair<std::string, Value>> g;
  g.emplace_back("range", make_callable("range", [](CallArgs& a, Renderer&) {
    for (auto& x : a.args)
      if (!x.is_int() && !x.is_bool()) fail("'", type_name(x), "' object cannot be interpreted as an integer");
    int64_t start = 0, stop, step = 1;
    if (a.args.size() == 1) stop = a.args[0].as_int();
    else if (a.args.size() == 2 || a.args.size() == 3) {
      start = a.args[0].as_int();
      stop = a.args[1].as_int();
      if (a.args.size() == 3) step = a.args[2].as_int();
    } else fail("range expected 1 to 3 arguments, got ", a.args.size());
    if (step == 0) fail("range() arg 3 must not be zero");
    double n = std::ceil((double(stop) - double(start)) / double(step));
    if (n > 100000) fail("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    std::vector<Value> items;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) items.emplace_back(i);
    return make_view(std::move(items), "range");
  }));
  auto kwargs_dict = [](CallArgs& a) {
    std::vector<std::pair<Value, Value>> kv;
    if (!a.args.empty()) {
      if (a.args.size() > 1 || !a.args[0].is_dict()) fail("expected at most one mapping argument");
      kv = a.args[0].dict().items;
    }
    for (auto& [k, v] : a.kwargs) kv.emplace_back(Value(k), v);
    return kv;
  };
  g.emplace_back("dict", make_callable("dict", [kwargs_dict](CallArgs& a, Renderer&) { return make_dict(kwargs_dict(a)); }));
  g.emplace_back("namespace", make_callable("namespace", [kwargs_dict](CallArgs& a, Renderer&) {
    auto ns = std::make_shared<Namespace>();
    for (auto& [k, v] : kwargs_dict(a)) {
      if (!k.is_string()) fail("namespace keys must be strings");
      if (v.is_namespace()) fail("a namespace attribute cannot hold a namespace");
      ns->set(k.str(), v);
    }
    return Value(std::move(ns));
  }));
  g.emplace_back("raise_exception", make_callable("raise_exception", [](CallArgs& a, Renderer&) -> Value {
    fail(a.args.empty() ? std::string("raise_exception called") : to_str(a.args[0]));
  }));
  g.emplace_back("strftime_now", make_callable("strftime_now", [](CallArgs& a, Renderer&) {
    std::string fmt = a.args.empty() ? std::string() : to_str(a.args[0]);
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    localtime_r(&t, &tm);
    char buf[512];
    size_t n = fmt.empty() ? 0 : std::strftime(buf, sizeof buf, fmt.c_str(), &tm);
    return Value(std::string(buf, n));
  }));
  g.emplace_back("joiner", make_callable("joiner", [](CallArgs& a, Renderer&) {
    std::string sep = a.args.empty() ? ", " : to_str(a.args[0]);
    auto used = std::make_shared<bool>(false);
    return make_callable("joiner", [sep, used](CallArgs&, Renderer&) {
      bool was = *used;
      *used = true;
      return Value(was ? sep : std::string());
    });
  }));
  g.emplace_back("cycler", make_callable("cycler", [](CallArgs& a, Renderer&) {
    if (a.args.empty()) fail("at least one item has to be provided");
    auto ns = std::make_shared<Namespace>();
    auto pos = std::make_shared<size_t>(0);
    auto items = std::make_shared<std::vector<Value>>(a.args);
    ns->set("next", make_callable("next", [pos, items](CallArgs&, Renderer&) {
      Value v = (*items)[*pos];
      *pos = (*pos + 1) % items->size();
      return v;
    }));
    ns->set("reset", make_callable("reset", [pos](CallArgs&, Renderer&) {
      *pos = 0;
      return Value(None{});
    }));
    ns->set("current", (*items)[0]);
    return Value(std::move(ns));
  }));
  return g;
}

}  // namespace dm::chat
