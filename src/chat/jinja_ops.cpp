// Python's object model as Jinja2 templates see it: operators (+ - * / // % ** with int/float/str/list rules),
// `in`, iteration, len(), indexing and slicing by code point, and the bound methods of str, dict and list that
// jinja2.sandbox.ImmutableSandboxedEnvironment allows (mutating ones come back undefined, as there).
#include <algorithm>
#include <cmath>

#include "chat/jinja_builtins.h"
#include "chat/jinja_lexer.h"
#include "chat/jinja_render.h"
#include "core/error.h"

namespace dm::chat {

namespace {

[[noreturn]] void fail_undefined(const Value& v) {
  const std::string& why = std::get<Undefined>(v.data).name;
  fail(why.empty() ? std::string("value is undefined") : why);
}

std::vector<std::string> code_points(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    size_t start = i;
    decode_utf8(s, i);
    out.push_back(s.substr(start, i - start));
  }
  return out;
}

std::string escape_html(const std::string& s) {
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

int64_t checked(bool overflow, int64_t v) {
  if (overflow) fail("integer overflow (deepmoe integers are 64-bit)");
  return v;
}

double py_fmod(double a, double b) {
  double m = std::fmod(a, b);
  if (m != 0 && ((m < 0) != (b < 0))) m += b;
  return m;
}

}  // namespace

size_t length(const Value& v) {
  if (v.is_string()) {
    size_t n = 0;
    for (size_t i = 0; i < v.str().size();) {
      decode_utf8(v.str(), i);
      ++n;
    }
    return n;
  }
  if (v.is_list() && v.list().sized()) return v.list().items.size();
  if (v.is_dict()) return v.dict().items.size();
  if (v.is_undefined()) return 0;
  fail("object of type '", type_name(v), "' has no len()");
}

std::vector<Value> iterate(const Value& v) {
  if (v.is_list()) return v.list().items;
  if (v.is_undefined()) return {};
  if (v.is_dict()) {
    std::vector<Value> keys;
    for (auto& [k, x] : v.dict().items) keys.push_back(k);
    return keys;
  }
  if (v.is_string()) {
    std::vector<Value> out;
    for (auto& c : code_points(v.str())) out.emplace_back(c);
    return out;
  }
  fail("'", type_name(v), "' object is not iterable");
}

bool contains(const Value& c, const Value& item) {
  if (c.is_string()) {
    if (!item.is_string()) fail("'in <string>' requires string as left operand, not ", type_name(item));
    return c.str().find(item.str()) != std::string::npos;
  }
  if (c.is_dict()) {
    if (item.is_list() && !item.list().tuple) fail("unhashable type: 'list'");
    if (item.is_dict()) fail("unhashable type: 'dict'");
    return c.dict().find(item) != nullptr;
  }
  if (c.is_list() || c.is_undefined()) {
    for (auto& x : iterate(c))
      if (equals(x, item)) return true;
    return false;
  }
  fail("argument of type '", type_name(c), "' is not iterable");
}

Value negate(const Value& v) {
  if (v.is_undefined()) fail_undefined(v);
  if (v.is_float()) return Value(-v.as_float());
  if (v.is_number()) {
    checked(v.as_int() == INT64_MIN, 0);
    return Value(-v.as_int());
  }
  fail("bad operand type for unary -: '", type_name(v), "'");
}

Value binary_op(const std::string& op, const Value& a, const Value& b, size_t max_len) {
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  auto unsupported = [&]() -> Value {
    fail("unsupported operand type(s) for ", op, ": '", type_name(a), "' and '", type_name(b), "'");
  };
  bool nums = a.is_number() && b.is_number();
  bool floats = nums && (a.is_float() || b.is_float());
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      if (a.str().size() + b.str().size() > max_len) fail("string longer than ", max_len, " bytes");
      Value r;
      if (a.safe && !b.safe) r = Value(a.str() + escape_html(b.str()));  // Markup + str escapes the str
      else if (b.safe && !a.safe) r = Value(escape_html(a.str()) + b.str());
      else r = Value(a.str() + b.str());
      r.safe = a.safe || b.safe;
      return r;
    }
    if (a.is_list() && b.is_list() && a.list().tuple == b.list().tuple && a.list().view.empty() &&
        b.list().view.empty()) {
      std::vector<Value> items = a.list().items;
      items.insert(items.end(), b.list().items.begin(), b.list().items.end());
      return make_list(std::move(items), a.list().tuple);
    }
    if (floats) return Value(a.as_float() + b.as_float());
    if (nums) {
      int64_t r;
      bool overflow = __builtin_add_overflow(a.as_int(), b.as_int(), &r);
      return Value(checked(overflow, r));
    }
    if (a.is_string()) fail("can only concatenate str (not \"", type_name(b), "\") to str");
    if (a.is_list()) fail("can only concatenate ", type_name(a), " (not \"", type_name(b), "\") to ", type_name(a));
    return unsupported();
  }
  if (op == "-") {
    if (floats) return Value(a.as_float() - b.as_float());
    if (nums) {
      int64_t r;
      bool overflow = __builtin_sub_overflow(a.as_int(), b.as_int(), &r);
      return Value(checked(overflow, r));
    }
    return unsupported();
  }
  if (op == "*") {
    if (floats) return Value(a.as_float() * b.as_float());
    if (nums) {
      int64_t r;
      bool overflow = __builtin_mul_overflow(a.as_int(), b.as_int(), &r);
      return Value(checked(overflow, r));
    }
    const Value* seq = (a.is_string() || a.is_list()) && (b.is_int() || b.is_bool()) ? &a
                       : (b.is_string() || b.is_list()) && (a.is_int() || a.is_bool()) ? &b
                                                                                         : nullptr;
    if (!seq) {
      if (a.is_string() || b.is_string() || a.is_list() || b.is_list())
        fail("can't multiply sequence by non-int of type '", type_name(seq == &a ? b : (a.is_number() ? a : b)), "'");
      return unsupported();
    }
    int64_t n = std::max<int64_t>(0, (seq == &a ? b : a).as_int());
    size_t unit = seq->is_string() ? seq->str().size() : seq->list().items.size();
    if (unit && uint64_t(n) > max_len / unit) fail("repeated sequence longer than ", max_len);
    if (seq->is_string()) {
      std::string s;
      for (int64_t i = 0; i < n; ++i) s += seq->str();
      return Value(std::move(s));
    }
    std::vector<Value> items;
    for (int64_t i = 0; i < n; ++i) items.insert(items.end(), seq->list().items.begin(), seq->list().items.end());
    return make_list(std::move(items), seq->list().tuple);
  }
  if (op == "/") {
    if (!nums) return unsupported();
    if (b.as_float() == 0) fail("division by zero");
    return Value(a.as_float() / b.as_float());
  }
  if (op == "//") {
    if (!nums) return unsupported();
    if (b.as_float() == 0) fail(floats ? "float floor division by zero" : "integer division or modulo by zero");
    if (floats) return Value(std::floor(a.as_float() / b.as_float()));
    int64_t x = a.as_int(), y = b.as_int();
    if (x == INT64_MIN && y == -1) checked(true, 0);
    int64_t q = x / y;
    if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
    return Value(q);
  }
  if (op == "%") {
    if (a.is_string()) {
      Value r(percent_format(a.str(), b));
      if (r.str().size() > max_len) fail("string longer than ", max_len, " bytes");
      return r;
    }
    if (!nums) return unsupported();
    if (b.as_float() == 0) fail(floats ? "float modulo" : "integer division or modulo by zero");
    if (floats) return Value(py_fmod(a.as_float(), b.as_float()));
    int64_t x = a.as_int(), y = b.as_int();
    if (y == -1) return Value(int64_t(0));
    int64_t m = x % y;
    if (m != 0 && ((m < 0) != (y < 0))) m += y;
    return Value(m);
  }
  if (op == "**") {
    if (!nums) return unsupported();
    if (!floats && b.as_int() >= 0) {
      int64_t base = a.as_int(), e = b.as_int(), r = 1;
      while (e > 0) {
        if (e & 1) checked(__builtin_mul_overflow(r, base, &r), 0);
        e >>= 1;
        if (e) checked(__builtin_mul_overflow(base, base, &base), 0);
      }
      return Value(r);
    }
    if (a.as_float() == 0 && b.as_float() < 0) fail("0.0 cannot be raised to a negative power");
    double r = std::pow(a.as_float(), b.as_float());
    if (std::isnan(r) && a.as_float() < 0) fail("negative number cannot be raised to a fractional power");
    return Value(r);
  }
  fail("unknown operator ", op);
}

// ---- lookup -------------------------------------------------------------------------------------------------

Value string_method(const Value& self, const std::string& name);  // jinja_methods.cpp
Value dict_method(const Value& self, const std::string& name);
Value list_method(const Value& self, const std::string& name);

static Value unsafe(const Value& obj, const std::string& name) {
  return Value::undefined(cat("access to attribute '", name, "' of '", type_name(obj), "' object is unsafe."));
}

static Value no_attr(const Value& obj, const std::string& name) {
  return Value::undefined(cat("'", type_name(obj), " object' has no attribute '", name, "'"));
}

Value get_attr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) fail_undefined(obj);
  if (obj.is_dict()) {
    static const char* kMutators[] = {"clear", "pop", "popitem", "setdefault", "update"};
    for (const char* m : kMutators)
      if (name == m) return unsafe(obj, name);
    Value m = dict_method(obj, name);
    if (!m.is_undefined()) return m;
    if (const Value* v = obj.dict().find(std::string_view(name))) return *v;
    return no_attr(obj, name);
  }
  if (obj.is_namespace()) {
    if (const Value* v = obj.ns().find(name)) return *v;
    return no_attr(obj, name);
  }
  if (obj.is_string()) {
    Value m = string_method(obj, name);
    return m.is_undefined() ? no_attr(obj, name) : m;
  }
  if (obj.is_list()) {
    static const char* kMutators[] = {"append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort"};
    for (const char* m : kMutators)
      if (name == m && !obj.list().tuple) return unsafe(obj, name);
    Value m = list_method(obj, name);
    return m.is_undefined() ? no_attr(obj, name) : m;
  }
  return no_attr(obj, name);
}

static bool index_of(const Value& key, size_t size, size_t& out) {
  int64_t i = key.as_int();
  if (i < 0) i += int64_t(size);
  if (i < 0 || i >= int64_t(size)) return false;
  out = size_t(i);
  return true;
}

Value get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) fail_undefined(obj);
  if (obj.is_list() && !obj.list().indexable()) fail("'", type_name(obj), "' object is not subscriptable");
  if (obj.is_dict()) {
    if (const Value* v = obj.dict().find(key)) return *v;
  } else if (obj.is_list() && (key.is_int() || key.is_bool())) {
    size_t i;
    if (index_of(key, obj.list().items.size(), i)) return obj.list().items[i];
    return Value::undefined(cat("'", type_name(obj), " object' has no element ", to_str(key)));
  } else if (obj.is_string() && (key.is_int() || key.is_bool())) {
    auto cps = code_points(obj.str());
    size_t i;
    if (index_of(key, cps.size(), i)) return Value(cps[i]);
    return Value::undefined(cat("'str object' has no element ", to_str(key)));
  }
  if (key.is_string()) {
    if (obj.is_dict()) {
      Value v = get_attr(obj, key.str());
      if (!v.is_undefined() || obj.dict().find(key)) return v;
      return Value::undefined(cat("'dict object' has no attribute '", key.str(), "'"));
    }
    return get_attr(obj, key.str());
  }
  return Value::undefined(cat("'", type_name(obj), " object' has no element ", repr(key)));
}

Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  if ((!obj.is_list() || !obj.list().indexable()) && !obj.is_string())
    fail("'", type_name(obj), "' object is not subscriptable");
  for (const Value* v : {&start, &stop, &step})
    if (!v->is_none() && !v->is_int() && !v->is_bool())
      fail("slice indices must be integers or None or have an __index__ method");
  int64_t st = step.is_none() ? 1 : step.as_int();
  if (st == 0) fail("slice step cannot be zero");
  std::vector<std::string> cps;
  int64_t n;
  if (obj.is_string()) {
    cps = code_points(obj.str());
    n = int64_t(cps.size());
  } else {
    n = int64_t(obj.list().items.size());
  }
  auto clamp = [&](const Value& v, int64_t dflt) {
    if (v.is_none()) return dflt;
    int64_t i = v.as_int();
    if (i < 0) i = std::max<int64_t>(i + n, st < 0 ? -1 : 0);
    else i = std::min<int64_t>(i, st < 0 ? n - 1 : n);
    return i;
  };
  int64_t b = clamp(start, st < 0 ? n - 1 : 0), e = clamp(stop, st < 0 ? -1 : n);
  std::vector<size_t> idx;
  if (st > 0)
    for (int64_t i = b; i < e; i += st) idx.push_back(size_t(i));
  else
    for (int64_t i = b; i > e; i += st) idx.push_back(size_t(i));
  if (obj.is_string()) {
    std::string s;
    for (size_t i : idx) s += cps[i];
    return Value(std::move(s));
  }
  std::vector<Value> items;
  for (size_t i : idx) items.push_back(obj.list().items[i]);
  return make_list(std::move(items), obj.list().tuple);
}

Value arg(const CallArgs& a, size_t i, const char* name, const Value& fallback) {
  if (i < a.args.size()) return a.args[i];
  if (name)
    for (auto& [k, v] : a.kwargs)
      if (k == name) return v;
  return fallback;
}

}  // namespace dm::chat
