// The values a Jinja template computes with, modelled on the Python objects Jinja2 sees: undefined, None, bool,
// int, float, str (with a "safe" mark for Markup), list/tuple, dict (insertion ordered), namespace, callables.
// str() / repr() / json.dumps() follow CPython's formatting so rendered prompts match transformers byte for byte.
// Lists and dicts are immutable once built (ImmutableSandboxedEnvironment forbids append/update); namespaces are
// the only mutable objects, and may not hold other namespaces, so values never form reference cycles.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace dm::chat {

struct Value;
struct List;
struct Dict;
struct Namespace;
struct Callable;
class Renderer;

// Deepest nesting of lists/dicts a value may have; deeper input is refused so that printing, comparing and
// freeing a value never recurse without bound.
constexpr int kMaxValueDepth = 256;

struct Undefined {
  std::string name;  // what was looked up, for error messages ("'dict object' has no attribute 'x'")
};
struct None {};

struct Value {
  using Data = std::variant<Undefined, None, bool, int64_t, double, std::string, std::shared_ptr<const List>,
                            std::shared_ptr<const Dict>, std::shared_ptr<Namespace>, std::shared_ptr<const Callable>>;
  Data data;
  bool safe = false;  // a str marked safe (jinja2 Markup)

  Value() : data(Undefined{}) {}
  Value(None) : data(None{}) {}
  Value(bool b) : data(b) {}
  Value(int v) : data(int64_t(v)) {}
  Value(int64_t v) : data(v) {}
  Value(double v) : data(v) {}
  Value(std::string s) : data(std::move(s)) {}
  Value(const char* s) : data(std::string(s)) {}
  Value(std::shared_ptr<const List> l) : data(std::move(l)) {}
  Value(std::shared_ptr<const Dict> d) : data(std::move(d)) {}
  Value(std::shared_ptr<Namespace> n) : data(std::move(n)) {}
  Value(std::shared_ptr<const Callable> c) : data(std::move(c)) {}
  static Value undefined(std::string name = {}) {
    Value v;
    v.data = Undefined{std::move(name)};
    return v;
  }

  bool is_undefined() const { return std::holds_alternative<Undefined>(data); }
  bool is_none() const { return std::holds_alternative<None>(data); }
  bool is_bool() const { return std::holds_alternative<bool>(data); }
  bool is_int() const { return std::holds_alternative<int64_t>(data); }  // not bool
  bool is_float() const { return std::holds_alternative<double>(data); }
  bool is_number() const { return is_int() || is_float() || is_bool(); }  // Python: bool is an int
  bool is_string() const { return std::holds_alternative<std::string>(data); }
  bool is_list() const { return std::holds_alternative<std::shared_ptr<const List>>(data); }
  bool is_dict() const { return std::holds_alternative<std::shared_ptr<const Dict>>(data); }
  bool is_namespace() const { return std::holds_alternative<std::shared_ptr<Namespace>>(data); }
  bool is_callable() const { return std::holds_alternative<std::shared_ptr<const Callable>>(data); }

  bool as_bool() const { return std::get<bool>(data); }
  int64_t as_int() const;  // int or bool
  double as_float() const; // int, bool or float
  const std::string& str() const { return std::get<std::string>(data); }
  const List& list() const { return *std::get<std::shared_ptr<const List>>(data); }
  const Dict& dict() const { return *std::get<std::shared_ptr<const Dict>>(data); }
  Namespace& ns() const { return *std::get<std::shared_ptr<Namespace>>(data); }
  const Callable& callable() const { return *std::get<std::shared_ptr<const Callable>>(data); }
  int depth() const;  // nesting depth of containers (a scalar is 0)
};

struct List {
  std::vector<Value> items;
  bool tuple = false;
  int depth = 1;
  // Empty for a list or tuple. Otherwise the Python type this stands for, whose rules differ: "generator" and
  // "list_reverseiterator" (what map/select/reverse return: no len(), always true, not JSON), "dict_items" /
  // "dict_keys" / "dict_values" and "range" (sized; only range is indexable; neither is JSON serializable).
  std::string view;
  bool sized() const { return view.empty() || view == "range" || view.rfind("dict_", 0) == 0; }
  bool indexable() const { return view.empty() || view == "range"; }
};

struct Dict {
  std::vector<std::pair<Value, Value>> items;  // insertion order, keys unique
  int depth = 1;
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
};

struct Namespace {
  std::vector<std::pair<std::string, Value>> attrs;
  bool is_loop = false;  // the `loop` object of a for loop: read-only
  const Value* find(std::string_view key) const;
  void set(const std::string& key, Value v);
};

// Arguments of a call: positional, then keyword in the order written.
struct CallArgs {
  std::vector<Value> args;
  std::vector<std::pair<std::string, Value>> kwargs;
};

struct Callable {
  std::string name;
  std::function<Value(CallArgs&, Renderer&)> fn;
};

// Builders that compute the nesting depth and refuse values nested deeper than kMaxValueDepth.
Value make_list(std::vector<Value> items, bool tuple = false);
Value make_view(std::vector<Value> items, std::string view);  // see List::view
Value make_dict(std::vector<std::pair<Value, Value>> items);  // later duplicates replace earlier ones in place
Value make_callable(std::string name, std::function<Value(CallArgs&, Renderer&)> fn);

// Python semantics.
bool truthy(const Value& v);
bool equals(const Value& a, const Value& b);
// -1, 0, 1; throws dm::Error for types Python cannot order ("'<' not supported between ...").
int compare(const Value& a, const Value& b);
std::string type_name(const Value& v);  // Python type name: str, int, dict, ...
std::string to_str(const Value& v);     // str(v): what {{ v }} prints
std::string repr(const Value& v);       // repr(v)
std::string repr_float(double d);       // float.__repr__
std::string repr_string(std::string_view s);

// json.dumps(v, ensure_ascii=False, indent=indent, sort_keys=...) with Python's separators; indent < 0 = none.
std::string to_json(const Value& v, int indent = -1, bool sort_keys = false);
Value from_json(const nlohmann::ordered_json& j);  // refuses nesting deeper than kMaxValueDepth

}  // namespace dm::chat
