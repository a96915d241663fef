// Python semantics of template values: truthiness, ==, ordering, str(), repr(), json.dumps().
// Formatting follows CPython: float repr is the shortest round-trip form, exponent when exp < -4 or >= 16;
// json.dumps uses ", " / ": " separators (or "," + newline with indent) and escapes like ensure_ascii=False.
#include "chat/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace dm::chat {

int64_t Value::as_int() const { return is_bool() ? int64_t(as_bool()) : std::get<int64_t>(data); }
double Value::as_float() const { return is_float() ? std::get<double>(data) : double(as_int()); }

int Value::depth() const {
  if (is_list()) return list().depth;
  if (is_dict()) return dict().depth;
  return 0;
}

const Value* Dict::find(const Value& key) const {
  for (auto& [k, v] : items)
    if (equals(k, key)) return &v;
  return nullptr;
}
const Value* Dict::find(std::string_view key) const {
  for (auto& [k, v] : items)
    if (k.is_string() && k.str() == key) return &v;
  return nullptr;
}
const Value* Namespace::find(std::string_view key) const {
  for (auto& [k, v] : attrs)
    if (k == key) return &v;
  return nullptr;
}
void Namespace::set(const std::string& key, Value v) {
  for (auto& [k, old] : attrs)
    if (k == key) {
      old = std::move(v);
      return;
    }
  attrs.emplace_back(key, std::move(v));
}

static void check_depth(int depth) {
  if (depth > kMaxValueDepth) fail("value nested deeper than ", kMaxValueDepth, " levels");
}

static Value build_list(std::vector<Value> items, bool tuple, std::string view) {
  auto l = std::make_shared<List>();
  int d = 0;
  for (auto& v : items) d = std::max(d, v.depth());
  check_depth(d + 1);
  l->items = std::move(items);
  l->tuple = tuple;
  l->depth = d + 1;
  l->view = std::move(view);
  return Value(std::shared_ptr<const List>(std::move(l)));
}

Value make_list(std::vector<Value> items, bool tuple) { return build_list(std::move(items), tuple, {}); }
Value make_view(std::vector<Value> items, std::string view) { return build_list(std::move(items), false, std::move(view)); }

Value make_dict(std::vector<std::pair<Value, Value>> items) {
  auto out = std::make_shared<Dict>();
  int d = 0;
  for (auto& [k, v] : items) {
    d = std::max({d, k.depth(), v.depth()});
    bool replaced = false;
    for (auto& [ok, ov] : out->items)
      if (equals(ok, k)) {
        ov = std::move(v);
        replaced = true;
        break;
      }
    if (!replaced) out->items.emplace_back(std::move(k), std::move(v));
  }
  check_depth(d + 1);
  out->depth = d + 1;
  return Value(std::shared_ptr<const Dict>(std::move(out)));
}

Value make_callable(std::string name, std::function<Value(CallArgs&, Renderer&)> fn) {
  auto c = std::make_shared<Callable>();
  c->name = std::move(name);
  c->fn = std::move(fn);
  return Value(std::shared_ptr<const Callable>(std::move(c)));
}

bool truthy(const Value& v) {
  return std::visit(
      [](const auto& x) -> bool {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, Undefined> || std::is_same_v<T, None>) return false;
        else if constexpr (std::is_same_v<T, bool>) return x;
        else if constexpr (std::is_same_v<T, int64_t>) return x != 0;
        else if constexpr (std::is_same_v<T, double>) return x != 0.0;
        else if constexpr (std::is_same_v<T, std::string>) return !x.empty();
        else if constexpr (std::is_same_v<T, std::shared_ptr<const List>>) return !x->sized() || !x->items.empty();
        else if constexpr (std::is_same_v<T, std::shared_ptr<const Dict>>) return !x->items.empty();
        else return true;
      },
      v.data);
}

bool equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_float() == b.as_float();
    return a.as_int() == b.as_int();
  }
  if (a.data.index() != b.data.index()) return false;
  if (a.is_undefined() || a.is_none()) return true;
  if (a.is_string()) return a.str() == b.str();
  if (a.is_list()) {
    auto &x = a.list(), &y = b.list();
    if (!x.view.empty() || !y.view.empty()) return &x == &y;
    if (x.tuple != y.tuple || x.items.size() != y.items.size()) return false;
    for (size_t i = 0; i < x.items.size(); ++i)
      if (!equals(x.items[i], y.items[i])) return false;
    return true;
  }
  if (a.is_dict()) {
    auto &x = a.dict(), &y = b.dict();
    if (x.items.size() != y.items.size()) return false;
    for (auto& [k, v] : x.items) {
      const Value* o = y.find(k);
      if (!o || !equals(v, *o)) return false;
    }
    return true;
  }
  if (a.is_namespace()) return &a.ns() == &b.ns();
  if (a.is_callable()) return &a.callable() == &b.callable();
  return false;
}

int compare(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) {
      double x = a.as_float(), y = b.as_float();
      return x < y ? -1 : (x > y ? 1 : 0);
    }
    int64_t x = a.as_int(), y = b.as_int();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) {
    int c = a.str().compare(b.str());  // UTF-8 byte order is code point order
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  if (a.is_list() && b.is_list() && a.list().tuple == b.list().tuple) {
    auto &x = a.list().items, &y = b.list().items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i)
      if (!equals(x[i], y[i])) return compare(x[i], y[i]);
    return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
  }
  fail("'<' not supported between instances of '", type_name(a), "' and '", type_name(b), "'");
}

std::string type_name(const Value& v) {
  if (v.is_undefined()) return "Undefined";
  if (v.is_none()) return "NoneType";
  if (v.is_bool()) return "bool";
  if (v.is_int()) return "int";
  if (v.is_float()) return "float";
  if (v.is_string()) return "str";
  if (v.is_list()) return !v.list().view.empty() ? v.list().view : v.list().tuple ? "tuple" : "list";
  if (v.is_dict()) return "dict";
  if (v.is_namespace()) return v.ns().is_loop ? "LoopContext" : "Namespace";
  return "function";
}

std::string repr_float(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string s(buf, r.ptr);  // [-]d[.ddd]e[+-]XX
  bool neg = s[0] == '-';
  if (neg) s.erase(0, 1);
  size_t e = s.find('e');
  std::string digits = s.substr(0, e);
  int exp = std::stoi(s.substr(e + 1));
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  std::string out;
  if (exp < -4 || exp >= 16) {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char eb[16];
    std::snprintf(eb, sizeof eb, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    out += eb;
  } else if (exp < 0) {
    out = "0." + std::string(size_t(-exp - 1), '0') + digits;
  } else {
    if (digits.size() <= size_t(exp) + 1) {
      out = digits + std::string(size_t(exp) + 1 - digits.size(), '0') + ".0";
    } else {
      out = digits.substr(0, size_t(exp) + 1) + "." + digits.substr(size_t(exp) + 1);
    }
  }
  return neg ? "-" + out : out;
}

// Decodes one UTF-8 code point at s[i] (advancing i); invalid bytes come back as themselves (0x80..0xff).
static uint32_t next_cp(std::string_view s, size_t& i) {
  unsigned char c = s[i];
  int n = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
  if (n <= 0 || i + size_t(n) >= s.size()) {
    ++i;
    return c;
  }
  uint32_t cp = c & (0x3f >> n);
  for (int k = 1; k <= n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + size_t(k)]) & 0x3f);
  i += size_t(n) + 1;
  return cp;
}

static bool printable(uint32_t cp) {
  if (cp < 0x20 || cp == 0x7f) return false;
  if (cp >= 0x80 && cp <= 0xa0) return false;
  if (cp == 0xad || (cp >= 0x2000 && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202f) ||
      (cp >= 0x205f && cp <= 0x206f) || cp == 0x3000 || cp == 0xfeff || cp == 0x1680)
    return false;
  return true;
}

std::string repr_string(std::string_view s) {
  bool has_sq = s.find('\'') != std::string_view::npos, has_dq = s.find('"') != std::string_view::npos;
  char q = has_sq && !has_dq ? '"' : '\'';
  std::string out(1, q);
  for (size_t i = 0; i < s.size();) {
    size_t start = i;
    uint32_t cp = next_cp(s, i);
    char buf[16];
    if (cp == uint32_t(q) || cp == '\\') {
      out += '\\';
      out += char(cp);
    } else if (cp == '\n') out += "\\n";
    else if (cp == '\r') out += "\\r";
    else if (cp == '\t') out += "\\t";
    else if (!printable(cp)) {
      if (cp < 0x100) std::snprintf(buf, sizeof buf, "\\x%02x", cp);
      else std::snprintf(buf, sizeof buf, "\\u%04x", cp);
      out += buf;
    } else {
      out.append(s.substr(start, i - start));
    }
  }
  out += q;
  return out;
}

std::string repr(const Value& v) {
  if (v.is_string()) return repr_string(v.str());
  if (v.is_undefined()) return "Undefined";
  if (v.is_list()) {
    auto& l = v.list();
    if (!l.sized()) return "<" + l.view + " object>";
    std::string out = l.view.empty() ? "" : l.view + "(";
    out += l.tuple ? "(" : "[";
    for (size_t i = 0; i < l.items.size(); ++i) out += (i ? ", " : "") + repr(l.items[i]);
    if (l.tuple && l.items.size() == 1) out += ",";
    return out + (l.tuple ? ")" : "]") + (l.view.empty() ? "" : ")");
  }
  if (v.is_dict()) {
    std::string out = "{";
    bool first = true;
    for (auto& [k, x] : v.dict().items) {
      out += (first ? "" : ", ") + repr(k) + ": " + repr(x);
      first = false;
    }
    return out + "}";
  }
  if (v.is_namespace()) {
    if (v.ns().is_loop) return "<LoopContext>";
    std::string out = "<Namespace {";
    bool first = true;
    for (auto& [k, x] : v.ns().attrs) {
      out += (first ? "" : ", ") + repr_string(k) + ": " + repr(x);
      first = false;
    }
    return out + "}>";
  }
  return to_str(v);
}

std::string to_str(const Value& v) {
  if (v.is_undefined()) return "";
  if (v.is_none()) return "None";
  if (v.is_bool()) return v.as_bool() ? "True" : "False";
  if (v.is_int()) return std::to_string(std::get<int64_t>(v.data));
  if (v.is_float()) return repr_float(std::get<double>(v.data));
  if (v.is_string()) return v.str();
  if (v.is_callable()) return "<function " + v.callable().name + ">";
  return repr(v);
}

static void json_string(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += char(c);
        }
    }
  }
  out += '"';
}

static std::string json_key(const Value& k) {
  if (k.is_string()) return k.str();
  if (k.is_bool()) return k.as_bool() ? "true" : "false";
  if (k.is_none()) return "null";
  if (k.is_int()) return to_str(k);
  if (k.is_float()) return to_str(k);
  fail("keys must be str, int, float, bool or None, not ", type_name(k));
}

static void json_dump(std::string& out, const Value& v, int indent, bool sort_keys, int level) {
  auto newline = [&](int lvl) {
    if (indent >= 0) {
      out += '\n';
      out.append(size_t(indent) * size_t(lvl), ' ');
    }
  };
  const char* item_sep = indent >= 0 ? "," : ", ";
  if (v.is_none()) out += "null";
  else if (v.is_bool()) out += v.as_bool() ? "true" : "false";
  else if (v.is_int()) out += to_str(v);
  else if (v.is_float()) {
    double d = std::get<double>(v.data);
    out += std::isnan(d) ? "NaN" : std::isinf(d) ? (d > 0 ? "Infinity" : "-Infinity") : repr_float(d);
  } else if (v.is_string()) json_string(out, v.str());
  else if (v.is_list() && v.list().view.empty()) {
    auto& items = v.list().items;
    if (items.empty()) {
      out += "[]";
      return;
    }
    out += '[';
    for (size_t i = 0; i < items.size(); ++i) {
      if (i) out += item_sep;
      newline(level + 1);
      json_dump(out, items[i], indent, sort_keys, level + 1);
    }
    newline(level);
    out += ']';
  } else if (v.is_dict()) {
    std::vector<const std::pair<Value, Value>*> items;
    for (auto& kv : v.dict().items) items.push_back(&kv);
    if (items.empty()) {
      out += "{}";
      return;
    }
    if (sort_keys)
      std::stable_sort(items.begin(), items.end(),
                       [](auto* a, auto* b) { return compare(a->first, b->first) < 0; });
    out += '{';
    bool first = true;
    for (auto* kv : items) {
      if (!first) out += item_sep;
      first = false;
      newline(level + 1);
      json_string(out, json_key(kv->first));
      out += ": ";
      json_dump(out, kv->second, indent, sort_keys, level + 1);
    }
    newline(level);
    out += '}';
  } else {
    std::string t = type_name(v);
    fail("Object of type ", t, " is not JSON serializable");
  }
}

std::string to_json(const Value& v, int indent, bool sort_keys) {
  std::string out;
  json_dump(out, v, indent, sort_keys, 0);
  return out;
}

static Value from_json_at(const nlohmann::ordered_json& j, int depth) {
  if (depth > kMaxValueDepth) fail("JSON nested deeper than ", kMaxValueDepth, " levels");
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return Value(None{});
    case nlohmann::ordered_json::value_t::boolean: return Value(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return Value(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      uint64_t u = j.get<uint64_t>();
      if (u > uint64_t(INT64_MAX)) return Value(double(u));
      return Value(int64_t(u));
    }
    case nlohmann::ordered_json::value_t::number_float: return Value(j.get<double>());
    case nlohmann::ordered_json::value_t::string: return Value(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      std::vector<Value> items;
      for (auto& x : j) items.push_back(from_json_at(x, depth + 1));
      return make_list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      std::vector<std::pair<Value, Value>> items;
      for (auto& [k, x] : j.items()) items.emplace_back(Value(k), from_json_at(x, depth + 1));
      return make_dict(std::move(items));
    }
    default: fail("unsupported JSON value (binary or discarded)");
  }
}

Value from_json(const nlohmann::ordered_json& j) { return from_json_at(j, 1); }

}  // namespace dm::chat
