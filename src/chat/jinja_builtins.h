// What a Jinja2 template can call on values: Python operators, attribute/item lookup (with the sandbox's bound
// methods of str/dict/list), filters, tests and globals. Each throws dm::Error on bad use; the renderer adds the
// template position. Reference: jinja2/filters.py, jinja2/tests.py, jinja2/sandbox.py, Python's data model.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "chat/value.h"

namespace dm::chat {

class Renderer;

// Python operators. op is one of + - * / // % **.
Value binary_op(const std::string& op, const Value& a, const Value& b, size_t max_len);
Value negate(const Value& v);
bool contains(const Value& container, const Value& item);  // `item in container`
std::vector<Value> iterate(const Value& v);                 // list(v); refuses what Python cannot iterate
size_t length(const Value& v);                              // len(v)

// Jinja2 lookups: `obj.name` tries the attribute (a bound method) before the item; `obj[key]` the other way round.
// A miss gives Undefined (calling or looking into it fails later, as in Jinja2).
Value get_attr(const Value& obj, const std::string& name);
Value get_item(const Value& obj, const Value& key);
Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step);

bool has_filter(std::string_view name);
bool has_test(std::string_view name);
Value apply_filter(Renderer& r, const std::string& name, const Value& input, CallArgs& args);
bool apply_test(Renderer& r, const std::string& name, const Value& input, CallArgs& args);

// range, dict, namespace, cycler, joiner, raise_exception, strftime_now.
std::vector<std::pair<std::string, Value>> global_functions();

// Python str % args (printf-style formatting) and str.format.
std::string percent_format(const std::string& fmt, const Value& args);
std::string str_format(const std::string& fmt, const CallArgs& args);

// Argument helpers for builtins: the i-th positional argument or the keyword `name`, else `fallback`.
Value arg(const CallArgs& a, size_t i, const char* name, const Value& fallback);  // by value: fallbacks are often temporaries

}  // namespace dm::chat
