// Renders a parsed template the way Jinja2's generated code runs it: statements in order, loop scopes fresh per
// iteration, `set` in the current scope (namespace attributes in place), macros with defaults / varargs / kwargs /
// caller, Python `and`/`or` returning an operand. Builtin failures get the position of the innermost expression.
#include "chat/jinja_render.h"

#include "chat/jinja_builtins.h"

namespace dm::chat {

Value* Frame::find(const std::string& name) {
  for (Frame* f = this; f; f = f->parent.get())
    for (auto& [k, v] : f->vars)
      if (k == name) return &v;
  return nullptr;
}

void Frame::set(const std::string& name, Value v) {
  for (auto& [k, old] : vars)
    if (k == name) {
      old = std::move(v);
      return;
    }
  vars.emplace_back(name, std::move(v));
}

TemplateError::TemplateError(const std::string& msg, int l, int c)
    : dm::Error(cat("template error at line ", l, ", column ", c, ": ", msg)), line(l), col(c), message(msg) {}

// Each eval/exec level costs a few stack frames; 600 levels stay well inside a 1 MiB stack, even under ASan.
constexpr int kMaxRenderNesting = 600;

Renderer::Nest::Nest(Renderer& renderer) : r(renderer) {
  if (++r.nesting_ > kMaxRenderNesting) {
    --r.nesting_;
    fail("template recursion deeper than ", kMaxRenderNesting, " levels");
  }
}

void Renderer::step() {
  if (++steps_ > limits_.max_steps) fail("template ran for more than ", limits_.max_steps, " steps");
}

void Renderer::append(std::string& out, const std::string& s) {
  if (out.size() + s.size() > limits_.max_output) fail("template output exceeds ", limits_.max_output, " bytes");
  out += s;
}

std::string Renderer::render(const Node& root, const std::vector<std::pair<std::string, Value>>& vars) {
  auto globals = std::make_shared<Frame>();
  globals->vars = global_functions();
  auto top = std::make_shared<Frame>();
  top->parent = globals;
  for (auto& [k, v] : vars) top->set(k, v);
  globals_ = globals;
  std::string out;
  exec(root.body, top, out);
  return out;
}

Renderer::Flow Renderer::exec(const std::vector<NodePtr>& body, const std::shared_ptr<Frame>& f, std::string& out) {
  for (auto& n : body) {
    Flow flow = exec(*n, f, out);
    if (flow != Flow::Normal) return flow;
  }
  return Flow::Normal;
}

static bool holds_namespace(const Value& v) {
  if (v.is_namespace()) return true;
  if (v.is_list())
    for (auto& x : v.list().items)
      if (holds_namespace(x)) return true;
  if (v.is_dict())
    for (auto& [k, x] : v.dict().items)
      if (holds_namespace(x)) return true;
  return false;
}

void Renderer::assign(const Expr& target, const Value& v, Frame& f) {
  if (target.kind == ExprKind::Name) {
    f.set(target.name, v);
  } else if (target.kind == ExprKind::Tuple) {
    std::vector<Value> items = iterate(v);
    size_t n = target.items.size();
    if (items.size() < n) fail("not enough values to unpack (expected ", n, ", got ", items.size(), ")");
    if (items.size() > n) fail("too many values to unpack (expected ", n, ")");
    for (size_t i = 0; i < n; ++i) assign(*target.items[i], items[i], f);
  } else {  // ns.attr
    Value* ns = f.find(target.a->name);
    if (!ns || !ns->is_namespace() || ns->ns().is_loop) fail("cannot assign attribute on non-namespace object");
    if (holds_namespace(v)) fail("a namespace attribute cannot hold a namespace");
    ns->ns().set(target.name, v);
  }
}

Renderer::Flow Renderer::exec(const Node& n, const std::shared_ptr<Frame>& f, std::string& out) {
  try {
    step();
    Nest nest(*this);
    switch (n.kind) {
      case NodeKind::Body: return exec(n.body, f, out);
      case NodeKind::Data: append(out, n.text); return Flow::Normal;
      case NodeKind::Print: append(out, to_str(eval(*n.expr, *f))); return Flow::Normal;
      case NodeKind::If: return exec(truthy(eval(*n.expr, *f)) ? n.body : n.else_body, f, out);
      case NodeKind::For: exec_for(n, f, out); return Flow::Normal;
      case NodeKind::Set: assign(*n.target, eval(*n.expr, *f), *f); return Flow::Normal;
      case NodeKind::SetBlock: {
        auto inner = std::make_shared<Frame>();
        inner->parent = f;
        std::string text;
        exec(n.body, inner, text);
        Value v(std::move(text));
        if (n.filter) {
          Value* saved = block_input_;
          block_input_ = &v;
          Value filtered = eval(*n.filter, *f);
          block_input_ = saved;
          v = filtered;
        }
        assign(*n.target, v, *f);
        return Flow::Normal;
      }
      case NodeKind::Macro: f->set(n.name, make_macro(n, f)); return Flow::Normal;
      case NodeKind::CallBlock: {
        CallArgs args = eval_args(*n.expr, *f);
        args.kwargs.emplace_back("caller", make_macro(n, f));
        Value fn = eval(*n.expr->a, *f);
        append(out, to_str(call(fn, args)));
        return Flow::Normal;
      }
      case NodeKind::FilterBlock: {
        auto inner = std::make_shared<Frame>();
        inner->parent = f;
        std::string text;
        exec(n.body, inner, text);
        Value v(std::move(text));
        Value* saved = block_input_;
        block_input_ = &v;
        Value filtered = eval(*n.filter, *f);
        block_input_ = saved;
        append(out, to_str(filtered));
        return Flow::Normal;
      }
      case NodeKind::Break: return Flow::Break;
      case NodeKind::Continue: return Flow::Continue;
    }
  } catch (const TemplateError&) {
    throw;
  } catch (const dm::Error& e) {
    throw TemplateError(e.what(), n.line, n.col);
  }
  return Flow::Normal;
}

void Renderer::exec_for(const Node& n, const std::shared_ptr<Frame>& f, std::string& out) {
  std::vector<Value> items = iterate(eval(*n.expr, *f));
  if (n.cond) {
    std::vector<Value> kept;
    for (auto& item : items) {
      step();
      auto scope = std::make_shared<Frame>();
      scope->parent = f;
      assign(*n.target, item, *scope);
      if (truthy(eval(*n.cond, *scope))) kept.push_back(item);
    }
    items = std::move(kept);
  }
  size_t count = items.size();
  auto last_changed = std::make_shared<std::vector<Value>>();
  auto changed_set = std::make_shared<bool>(false);
  for (size_t i = 0; i < count; ++i) {
    step();
    auto scope = std::make_shared<Frame>();
    scope->parent = f;
    auto loop = std::make_shared<Namespace>();
    loop->is_loop = true;
    int64_t idx = int64_t(i), len = int64_t(count);
    loop->attrs = {{"index", Value(idx + 1)},
                   {"index0", Value(idx)},
                   {"revindex", Value(len - idx)},
                   {"revindex0", Value(len - idx - 1)},
                   {"first", Value(i == 0)},
                   {"last", Value(i + 1 == count)},
                   {"length", Value(len)},
                   {"depth", Value(1)},
                   {"depth0", Value(0)},
                   {"previtem", i > 0 ? items[i - 1] : Value::undefined("there is no previous item")},
                   {"nextitem", i + 1 < count ? items[i + 1] : Value::undefined("there is no next item")},
                   {"cycle", make_callable("cycle", [i](CallArgs& a, Renderer&) {
                      if (a.args.empty()) fail("no items for cycling given");
                      return a.args[i % a.args.size()];
                    })},
                   {"changed", make_callable("changed", [last_changed, changed_set](CallArgs& a, Renderer&) {
                      bool same = *changed_set && last_changed->size() == a.args.size();
                      for (size_t k = 0; same && k < a.args.size(); ++k) same = equals((*last_changed)[k], a.args[k]);
                      *last_changed = a.args;
                      *changed_set = true;
                      return Value(!same);
                    })}};
    scope->set("loop", Value(std::move(loop)));
    assign(*n.target, items[i], *scope);
    if (exec(n.body, scope, out) == Flow::Break) break;
  }
  if (count == 0 && !n.else_body.empty()) {
    auto scope = std::make_shared<Frame>();
    scope->parent = f;
    exec(n.else_body, scope, out);
  }
}

Value Renderer::make_macro(const Node& n, const std::shared_ptr<Frame>& f) {
  std::weak_ptr<Frame> weak = f;  // weak: the frame holds the macro; a strong pointer would be a cycle
  const Node* node = &n;
  return make_callable(n.kind == NodeKind::Macro ? n.name : "caller", [node, weak](CallArgs& args, Renderer& r) {
    return r.invoke_macro(*node, weak.lock(), args);
  });
}

Value Renderer::invoke_macro(const Node& m, std::shared_ptr<Frame> parent, CallArgs& args) {
  if (call_depth_ >= limits_.max_call_depth) fail("macro calls nested deeper than ", limits_.max_call_depth);
  struct Depth {
    int& d;
    ~Depth() { --d; }
  } depth{++call_depth_};
  std::string name = m.kind == NodeKind::Macro ? m.name : "caller";
  auto scope = std::make_shared<Frame>();
  scope->parent = parent ? parent : globals_.lock();
  size_t n_params = m.params.size();
  if (args.args.size() > n_params && !m.uses_varargs)
    fail("macro '", name, "' takes not more than ", n_params, " argument(s)");
  std::vector<std::pair<std::string, Value>> kwargs = std::move(args.kwargs);
  for (size_t i = 0; i < n_params; ++i) {
    const Param& p = m.params[i];
    Value v;
    bool found = false;
    if (i < args.args.size()) {
      v = args.args[i];
      found = true;
    }
    for (auto it = kwargs.begin(); it != kwargs.end(); ++it)
      if (it->first == p.name) {
        if (found) fail("macro '", name, "' got multiple values for argument '", p.name, "'");
        v = it->second;
        found = true;
        kwargs.erase(it);
        break;
      }
    if (!found)
      v = p.default_value ? eval(*p.default_value, *scope)
                          : Value::undefined(cat("parameter '", p.name, "' was not provided"));
    scope->set(p.name, v);
  }
  for (auto it = kwargs.begin(); it != kwargs.end();) {
    if (it->first == "caller" && m.uses_caller) {
      scope->set("caller", it->second);
      it = kwargs.erase(it);
    } else {
      ++it;
    }
  }
  if (m.uses_varargs) {
    std::vector<Value> rest;
    for (size_t i = n_params; i < args.args.size(); ++i) rest.push_back(args.args[i]);
    scope->set("varargs", make_list(std::move(rest), true));
  }
  if (!kwargs.empty() && !m.uses_kwargs) fail("macro '", name, "' takes no keyword argument '", kwargs[0].first, "'");
  if (m.uses_kwargs) {
    std::vector<std::pair<Value, Value>> kv;
    for (auto& [k, v] : kwargs) kv.emplace_back(Value(k), v);
    scope->set("kwargs", make_dict(std::move(kv)));
  }
  std::string out;
  exec(m.body, scope, out);
  return Value(std::move(out));
}

Value Renderer::call(const Value& fn, CallArgs& args) {
  if (fn.is_undefined()) {
    const std::string& why = std::get<Undefined>(fn.data).name;
    fail(why.empty() ? std::string("undefined value is not callable") : why);
  }
  if (!fn.is_callable()) fail("'", type_name(fn), "' object is not callable");
  return fn.callable().fn(args, *this);
}

CallArgs Renderer::eval_args(const Expr& e, Frame& f) {
  CallArgs a;
  for (auto& x : e.items) a.args.push_back(eval(*x, f));
  if (e.b)
    for (auto& x : iterate(eval(*e.b, f))) a.args.push_back(x);
  for (auto& [k, x] : e.kwargs) a.kwargs.emplace_back(k, eval(*x, f));
  if (e.c) {
    Value d = eval(*e.c, f);
    if (!d.is_dict()) fail("argument after ** must be a mapping, not ", type_name(d));
    for (auto& [k, x] : d.dict().items) {
      if (!k.is_string()) fail("keywords must be strings");
      a.kwargs.emplace_back(k.str(), x);
    }
  }
  return a;
}

Value Renderer::eval(const Expr& e, Frame& f) {
  try {
    step();
    Nest nest(*this);
    return eval_inner(e, f);
  } catch (const TemplateError&) {
    throw;
  } catch (const dm::Error& err) {
    throw TemplateError(err.what(), e.line, e.col);
  }
}

static void fail_undefined(const Value& v) {
  const std::string& why = std::get<Undefined>(v.data).name;
  fail(why.empty() ? std::string("value is undefined") : why);
}

Value Renderer::eval_inner(const Expr& e, Frame& f) {
  switch (e.kind) {
    case ExprKind::Const: return e.value;
    case ExprKind::Name: {
      Value* v = f.find(e.name);
      return v ? *v : Value::undefined(cat("'", e.name, "' is undefined"));
    }
    case ExprKind::List:
    case ExprKind::Tuple: {
      std::vector<Value> items;
      for (auto& x : e.items) items.push_back(eval(*x, f));
      return make_list(std::move(items), e.kind == ExprKind::Tuple);
    }
    case ExprKind::Dict: {
      std::vector<std::pair<Value, Value>> items;
      for (size_t i = 0; i + 1 < e.items.size(); i += 2) {
        Value k = eval(*e.items[i], f);
        if (k.is_list() && !k.list().tuple) fail("unhashable type: 'list'");
        if (k.is_dict()) fail("unhashable type: 'dict'");
        items.emplace_back(std::move(k), eval(*e.items[i + 1], f));
      }
      return make_dict(std::move(items));
    }
    case ExprKind::Attr: {
      Value obj = eval(*e.a, f);
      if (obj.is_undefined()) fail_undefined(obj);
      return get_attr(obj, e.name);
    }
    case ExprKind::Item: {
      Value obj = eval(*e.a, f);
      if (obj.is_undefined()) fail_undefined(obj);
      if (e.b->kind == ExprKind::Slice) {
        const Expr& s = *e.b;
        Value none{None{}};
        return slice(obj, s.a ? eval(*s.a, f) : none, s.b ? eval(*s.b, f) : none, s.c ? eval(*s.c, f) : none);
      }
      return get_item(obj, eval(*e.b, f));
    }
    case ExprKind::Slice: fail("slice outside of a subscript");
    case ExprKind::Call: {
      Value fn = eval(*e.a, f);
      CallArgs args = eval_args(e, f);
      return call(fn, args);
    }
    case ExprKind::Filter: {
      Value input;
      if (e.a) input = eval(*e.a, f);
      else if (block_input_) input = *block_input_;
      CallArgs args = eval_args(e, f);
      return apply_filter(*this, e.name, input, args);
    }
    case ExprKind::Test: {
      Value input = eval(*e.a, f);
      CallArgs args = eval_args(e, f);
      return Value(apply_test(*this, e.name, input, args));
    }
    case ExprKind::Neg: return negate(eval(*e.a, f));
    case ExprKind::Pos: {
      Value v = eval(*e.a, f);
      if (!v.is_number()) fail("bad operand type for unary +: '", type_name(v), "'");
      return v.is_bool() ? Value(v.as_int()) : v;
    }
    case ExprKind::Not: return Value(!truthy(eval(*e.a, f)));
    case ExprKind::And: {
      Value a = eval(*e.a, f);
      return truthy(a) ? eval(*e.b, f) : a;
    }
    case ExprKind::Or: {
      Value a = eval(*e.a, f);
      return truthy(a) ? a : eval(*e.b, f);
    }
    case ExprKind::Binary: return binary_op(e.name, eval(*e.a, f), eval(*e.b, f), limits_.max_output);
    case ExprKind::Concat: {
      std::string s;
      for (auto& x : e.items) {
        s += to_str(eval(*x, f));
        if (s.size() > limits_.max_output) fail("string longer than ", limits_.max_output, " bytes");
      }
      return Value(std::move(s));
    }
    case ExprKind::Compare: {
      Value left = eval(*e.a, f);
      for (size_t i = 0; i < e.ops.size(); ++i) {
        Value right = eval(*e.items[i], f);
        const std::string& op = e.ops[i];
        bool ok;
        if (op == "==") ok = equals(left, right);
        else if (op == "!=") ok = !equals(left, right);
        else if (op == "in") ok = contains(right, left);
        else if (op == "notin") ok = !contains(right, left);
        else {
          if (left.is_undefined()) fail_undefined(left);
          if (right.is_undefined()) fail_undefined(right);
          int c = compare(left, right);
          ok = op == "<" ? c < 0 : op == "<=" ? c <= 0 : op == ">" ? c > 0 : c >= 0;
        }
        if (!ok) return Value(false);
        left = std::move(right);
      }
      return Value(true);
    }
    case ExprKind::CondExpr:
      if (truthy(eval(*e.a, f))) return eval(*e.b, f);
      return e.c ? eval(*e.c, f) : Value::undefined("the inline if-expression evaluated to false and no else section was defined");
  }
  return Value();
}

Template::Template(std::string_view source) : root_(parse_template(tokenize(source))) {}
Template::~Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;

std::string Template::render(const std::vector<std::pair<std::string, Value>>& vars, const RenderLimits& limits) const {
  Renderer r(limits);
  return r.render(*root_, vars);
}

}  // namespace dm::chat
