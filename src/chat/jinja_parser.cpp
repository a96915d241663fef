// Jinja parser: tokens -> syntax tree, a recursive descent that follows jinja2/parser.py rule for rule
// (precedence: condexpr < or < and < not < compare < + - < ~ < * / // % < ** < unary < postfix/filters/tests),
// so that odd templates group exactly as Jinja2 groups them. Nesting is capped at kMaxNesting.
#include <set>

#include "chat/jinja.h"
#include "chat/jinja_ast.h"
#include "chat/jinja_builtins.h"

namespace dm::chat {
namespace {

class Parser {
 public:
  explicit Parser(const std::vector<Token>& t) : t_(t) {}

  NodePtr parse() {
    auto root = node(NodeKind::Body, cur());
    root->body = subparse({});
    if (cur().kind != Tok::Eof) error(cur(), cat("unexpected tag '", peek(1).text, "'"));
    if (!pending_.empty()) {
      const Expr& e = *pending_.front();
      throw TemplateError(cat("No ", e.kind == ExprKind::Filter ? "filter" : "test", " named '", e.name, "'."), e.line,
                          e.col);
    }
    return root;
  }

 private:
  const std::vector<Token>& t_;
  size_t i_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
  // Inside an `if` or a conditional expression Jinja2 defers "No filter named ..." to run time (a "soft frame").
  bool soft_ = false;
  std::vector<const Expr*> pending_;  // unknown filters/tests outside soft frames: compile errors
  struct Soft {
    Parser& p;
    bool saved;
    Soft(Parser& parser, bool value) : p(parser), saved(parser.soft_) { p.soft_ = value; }
    ~Soft() { p.soft_ = saved; }
  };

  // A left-nested chain (a + b + c, a.b.c, a|f|g) deepens the tree without deepening the parser's own recursion.
  // Each link counts as one level of depth until the function that builds the chain returns.
  struct Chain {
    Parser& p;
    int n = 0;
    explicit Chain(Parser& parser) : p(parser) {}
    void link(const Token& at) {
      ++n;
      if (++p.depth_ > kMaxNesting) p.error(at, cat("expression nested deeper than ", kMaxNesting, " levels"));
    }
    ~Chain() { p.depth_ -= n; }
  };
  struct Deeper {
    Parser& p;
    Deeper(Parser& parser, const Token& at) : p(parser) {
      if (++p.depth_ > kMaxNesting) p.error(at, cat("template nested deeper than ", kMaxNesting, " levels"));
    }
    ~Deeper() { --p.depth_; }
  };

  const Token& cur() const { return t_[i_]; }
  const Token& peek(size_t k) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
  const Token& next() {
    const Token& t = t_[i_];
    if (i_ + 1 < t_.size()) ++i_;
    return t;
  }
  [[noreturn]] void error(const Token& at, const std::string& msg) const { throw TemplateError(msg, at.line, at.col); }
  static std::string describe(const Token& t) {
    switch (t.kind) {
      case Tok::Eof: return "end of template";
      case Tok::VarEnd: return "end of print statement";
      case Tok::BlockEnd: return "end of statement block";
      case Tok::Data: return "template data";
      default: return t.text;
    }
  }
  bool is_op(const char* op) const { return cur().kind == Tok::Op && cur().text == op; }
  bool is_name(const char* n) const { return cur().kind == Tok::Name && cur().text == n; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(const char* n) {
    if (!is_name(n)) return false;
    next();
    return true;
  }
  void expect_op(const char* op) {
    if (!skip_op(op)) error(cur(), cat("expected token '", op, "', got '", describe(cur()), "'"));
  }
  const Token& expect_name() {
    if (cur().kind != Tok::Name) error(cur(), cat("expected token 'name', got '", describe(cur()), "'"));
    return next();
  }
  void expect_block_end() {
    if (cur().kind != Tok::BlockEnd) error(cur(), cat("expected token 'end of statement block', got '", describe(cur()), "'"));
    next();
  }

  static NodePtr node(NodeKind k, const Token& at) {
    auto n = std::make_unique<Node>();
    n->kind = k;
    n->line = at.line;
    n->col = at.col;
    return n;
  }
  static ExprPtr expr(ExprKind k, const Token& at) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = at.line;
    e->col = at.col;
    return e;
  }

  // Statements until a block tag whose keyword is in `ends`; leaves the stream on that keyword.
  std::vector<NodePtr> subparse(const std::set<std::string>& ends) {
    Deeper guard(*this, cur());
    std::vector<NodePtr> body;
    while (cur().kind != Tok::Eof) {
      const Token& t = cur();
      if (t.kind == Tok::Data) {
        auto n = node(NodeKind::Data, t);
        n->text = t.text;
        body.push_back(std::move(n));
        next();
      } else if (t.kind == Tok::VarBegin) {
        next();
        auto n = node(NodeKind::Print, t);
        n->expr = parse_tuple(true, false);
        if (cur().kind != Tok::VarEnd) error(cur(), cat("expected token 'end of print statement', got '", describe(cur()), "'"));
        next();
        body.push_back(std::move(n));
      } else if (t.kind == Tok::BlockBegin) {
        const Token& kw = peek(1);
        if (kw.kind != Tok::Name) error(kw, "tag name expected");
        if (ends.count(kw.text)) {
          next();
          return body;
        }
        next();
        body.push_back(statement());
      } else {
        error(t, cat("unexpected '", describe(t), "'"));
      }
    }
    if (!ends.empty()) {
      std::string list;
      for (auto& e : ends) list += (list.empty() ? "'" : " or '") + e + "'";
      error(cur(), cat("Unexpected end of template. Jinja was looking for the following tags: ", list, "."));
    }
    return body;
  }

  NodePtr statement() {
    const Token& kw = next();
    const std::string& k = kw.text;
    if (k == "if") return parse_if(kw);
    if (k == "for") return parse_for(kw);
    if (k == "set") return parse_set(kw);
    if (k == "macro") return parse_macro(kw);
    if (k == "call") return parse_call_block(kw);
    if (k == "filter") return parse_filter_block(kw);
    if (k == "break" || k == "continue") {
      if (loop_depth_ == 0) error(kw, cat("'", k, "' outside of a loop"));
      auto n = node(k == "break" ? NodeKind::Break : NodeKind::Continue, kw);
      expect_block_end();
      return n;
    }
    if (k == "generation" || k == "block") {  // transformers' {% generation %} marks text; blocks render inline
      auto n = node(NodeKind::Body, kw);
      if (k == "block") expect_name();
      expect_block_end();
      n->body = subparse({"end" + k});
      next();
      if (k == "block" && cur().kind == Tok::Name) next();
      expect_block_end();
      return n;
    }
    error(kw, cat("Encountered unknown tag '", k, "'."));
  }

  NodePtr parse_if(const Token& kw) {
    Deeper guard(*this, kw);
    Soft soft(*this, true);
    auto n = node(NodeKind::If, kw);
    n->expr = parse_tuple(false, false);
    expect_block_end();
    n->body = subparse({"elif", "else", "endif"});
    const Token& t = next();
    if (t.text == "elif") {
      n->else_body.push_back(parse_if(t));
      return n;
    }
    if (t.text == "else") {
      expect_block_end();
      n->else_body = subparse({"endif"});
      next();
    }
    expect_block_end();
    return n;
  }

  NodePtr parse_for(const Token& kw) {
    auto n = node(NodeKind::For, kw);
    n->target = parse_assign_target("in");
    if (!skip_name("in")) error(cur(), cat("expected 'in', got '", describe(cur()), "'"));
    n->expr = parse_tuple(false, false, false, "recursive");
    if (skip_name("if")) {
      Soft hard(*this, false);
      n->cond = parse_expression();
    }
    if (is_name("recursive")) error(cur(), "recursive loops are not supported");
    expect_block_end();
    Soft hard(*this, false);
    ++loop_depth_;
    n->body = subparse({"endfor", "else"});
    --loop_depth_;
    if (next().text == "else") {
      expect_block_end();
      n->else_body = subparse({"endfor"});
      next();
    }
    expect_block_end();
    return n;
  }

  // A name, a tuple of names, or (for set) name.attr.
  ExprPtr parse_assign_target(const char* end_name, bool allow_attr = false) {
    const Token& start = cur();
    if (allow_attr && cur().kind == Tok::Name && peek(1).kind == Tok::Op && peek(1).text == ".") {
      auto ns = expr(ExprKind::Name, cur());
      ns->name = next().text;
      next();
      auto e = expr(ExprKind::Attr, start);
      e->a = std::move(ns);
      e->name = expect_name().text;
      return e;
    }
    auto tuple = expr(ExprKind::Tuple, start);
    bool is_tuple = false;
    while (true) {
      if (!tuple->items.empty()) {
        if (!skip_op(",")) break;
        is_tuple = true;
      }
      if (cur().kind != Tok::Name || (end_name && is_name(end_name))) break;
      auto e = expr(ExprKind::Name, cur());
      e->name = next().text;
      if (e->name == "true" || e->name == "false" || e->name == "none" || e->name == "True" || e->name == "False" ||
          e->name == "None")
        error(start, cat("can't assign to '", e->name, "'"));
      tuple->items.push_back(std::move(e));
    }
    if (tuple->items.empty()) error(cur(), cat("can't assign to '", describe(cur()), "'"));
    if (!is_tuple) return std::move(tuple->items[0]);
    return tuple;
  }

  NodePtr parse_set(const Token& kw) {
    auto target = parse_assign_target(nullptr, true);
    if (skip_op("=")) {
      auto n = node(NodeKind::Set, kw);
      n->target = std::move(target);
      n->expr = parse_tuple(true, false);
      expect_block_end();
      return n;
    }
    Soft hard(*this, false);
    auto n = node(NodeKind::SetBlock, kw);
    n->target = std::move(target);
    if (is_op("|")) n->filter = parse_filters(nullptr);
    expect_block_end();
    n->body = subparse({"endset"});
    next();
    expect_block_end();
    return n;
  }

  void parse_signature(Node& n) {
    expect_op("(");
    while (!is_op(")")) {
      if (!n.params.empty()) expect_op(",");
      Param p;
      p.name = expect_name().text;
      if (skip_op("=")) p.default_value = parse_expression();
      n.params.push_back(std::move(p));
    }
    expect_op(")");
  }

  NodePtr parse_macro(const Token& kw) {
    Soft hard(*this, false);
    auto n = node(NodeKind::Macro, kw);
    n->name = expect_name().text;
    parse_signature(*n);
    expect_block_end();
    int saved = loop_depth_;
    loop_depth_ = 0;
    n->body = subparse({"endmacro"});
    names_in(n->body, *n);
    loop_depth_ = saved;
    next();
    expect_block_end();
    return n;
  }

  static void names_in(const Expr* e, Node& m) {
    if (!e) return;
    if (e->kind == ExprKind::Name) {
      m.uses_varargs |= e->name == "varargs";
      m.uses_kwargs |= e->name == "kwargs";
      m.uses_caller |= e->name == "caller";
    }
    for (auto& x : e->items) names_in(x.get(), m);
    for (auto& [k, x] : e->kwargs) names_in(x.get(), m);
    names_in(e->a.get(), m);
    names_in(e->b.get(), m);
    names_in(e->c.get(), m);
  }
  static void names_in(const std::vector<NodePtr>& body, Node& m) {
    for (auto& n : body) {
      for (const Expr* e : {n->expr.get(), n->target.get(), n->cond.get(), n->filter.get()}) names_in(e, m);
      for (auto& p : n->params) names_in(p.default_value.get(), m);
      names_in(n->body, m);
      names_in(n->else_body, m);
    }
  }

  NodePtr parse_call_block(const Token& kw) {
    Soft hard(*this, false);
    auto n = node(NodeKind::CallBlock, kw);
    if (is_op("(")) parse_signature(*n);
    n->expr = parse_expression();
    if (n->expr->kind != ExprKind::Call) error(kw, "expected call");
    expect_block_end();
    int saved = loop_depth_;
    loop_depth_ = 0;
    n->body = subparse({"endcall"});
    names_in(n->body, *n);
    loop_depth_ = saved;
    next();
    expect_block_end();
    return n;
  }

  NodePtr parse_filter_block(const Token& kw) {
    Soft hard(*this, false);
    auto n = node(NodeKind::FilterBlock, kw);
    n->filter = parse_filters(nullptr, true);
    expect_block_end();
    n->body = subparse({"endfilter"});
    next();
    expect_block_end();
    return n;
  }

  bool is_tuple_end(const char* extra) const {
    if (cur().kind == Tok::VarEnd || cur().kind == Tok::BlockEnd || cur().kind == Tok::Eof) return true;
    if (is_op(")")) return true;
    return extra && is_name(extra);
  }

  ExprPtr parse_tuple(bool with_condexpr, bool explicit_parens, bool simplified = false, const char* extra = nullptr) {
    const Token& start = cur();
    auto tuple = expr(ExprKind::Tuple, start);
    bool is_tuple = false;
    while (true) {
      if (!tuple->items.empty()) expect_op(",");
      if (is_tuple_end(extra)) break;
      tuple->items.push_back(simplified ? parse_primary() : parse_expression(with_condexpr));
      if (is_op(",")) is_tuple = true;
      else break;
    }
    if (!is_tuple) {
      if (!tuple->items.empty()) return std::move(tuple->items[0]);
      if (!explicit_parens) error(cur(), cat("Expected an expression, got '", describe(cur()), "'"));
    }
    return tuple;
  }

  // jinja2 parses `if` tests and `for ... in X` without conditional expressions.
  ExprPtr parse_expression(bool with_condexpr = true) {
    Deeper guard(*this, cur());
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  ExprPtr parse_condexpr() {
    const Token& start = cur();
    size_t mark = pending_.size();
    auto e1 = parse_or();
    // note: all of a conditional expression is a soft frame, including the branch parsed before the `if`.
    if (is_name("if")) pending_.resize(mark);
    Chain n(*this);
    while (is_name("if")) {
      n.link(cur());
      next();
      Soft soft(*this, true);
      auto e = expr(ExprKind::CondExpr, start);
      e->a = parse_or();
      e->b = std::move(e1);
      if (skip_name("else")) e->c = parse_condexpr();
      e1 = std::move(e);
    }
    return e1;
  }

  ExprPtr parse_or() {
    auto left = parse_and();
    Chain n(*this);
    while (is_name("or")) {
      n.link(cur());
      auto e = expr(ExprKind::Or, next());
      e->a = std::move(left);
      e->b = parse_and();
      left = std::move(e);
    }
    return left;
  }
  ExprPtr parse_and() {
    auto left = parse_not();
    Chain n(*this);
    while (is_name("and")) {
      n.link(cur());
      auto e = expr(ExprKind::And, next());
      e->a = std::move(left);
      e->b = parse_not();
      left = std::move(e);
    }
    return left;
  }
  ExprPtr parse_not() {
    if (is_name("not")) {
      Deeper guard(*this, cur());
      auto e = expr(ExprKind::Not, next());
      e->a = parse_not();
      return e;
    }
    return parse_compare();
  }
  ExprPtr parse_compare() {
    const Token& start = cur();
    auto first = parse_math1();
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (cur().kind == Tok::Op && (cur().text == "==" || cur().text == "!=" || cur().text == "<" ||
                                    cur().text == "<=" || cur().text == ">" || cur().text == ">=")) {
        op = next().text;
      } else if (skip_name("in")) {
        op = "in";
      } else if (is_name("not") && peek(1).kind == Tok::Name && peek(1).text == "in") {
        next();
        next();
        op = "notin";
      } else {
        break;
      }
      if (!cmp) {
        cmp = expr(ExprKind::Compare, start);
        cmp->a = std::move(first);
      }
      cmp->ops.push_back(op);
      cmp->items.push_back(parse_math1());
    }
    return cmp ? std::move(cmp) : std::move(first);
  }
  ExprPtr binary(ExprPtr left, const Token& op, ExprPtr right) {
    auto e = expr(ExprKind::Binary, op);
    e->name = op.text;
    e->a = std::move(left);
    e->b = std::move(right);
    return e;
  }
  ExprPtr parse_math1() {
    auto left = parse_concat();
    Chain n(*this);
    while (is_op("+") || is_op("-")) {
      n.link(cur());
      const Token& op = next();
      left = binary(std::move(left), op, parse_concat());
    }
    return left;
  }
  ExprPtr parse_concat() {
    const Token& start = cur();
    auto first = parse_math2();
    if (!is_op("~")) return first;
    auto e = expr(ExprKind::Concat, start);
    e->items.push_back(std::move(first));
    while (skip_op("~")) e->items.push_back(parse_math2());
    return e;
  }
  ExprPtr parse_math2() {
    auto left = parse_pow();
    Chain n(*this);
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      n.link(cur());
      const Token& op = next();
      left = binary(std::move(left), op, parse_pow());
    }
    return left;
  }
  ExprPtr parse_pow() {
    auto left = parse_unary(true);
    Chain n(*this);
    while (is_op("**")) {
      n.link(cur());
      const Token& op = next();
      left = binary(std::move(left), op, parse_unary(true));
    }
    return left;
  }
  ExprPtr parse_unary(bool with_filter) {
    Deeper guard(*this, cur());
    ExprPtr n;
    if (is_op("-") || is_op("+")) {
      const Token& op = next();
      n = expr(op.text == "-" ? ExprKind::Neg : ExprKind::Pos, op);
      n->a = parse_unary(false);
    } else {
      n = parse_primary();
    }
    n = parse_postfix(std::move(n));
    if (with_filter) n = parse_filter_expr(std::move(n));
    return n;
  }

  ExprPtr parse_primary() {
    Deeper guard(*this, cur());
    const Token& t = cur();
    if (t.kind == Tok::Name) {
      next();
      auto e = expr(ExprKind::Const, t);
      if (t.text == "true" || t.text == "True") e->value = Value(true);
      else if (t.text == "false" || t.text == "False") e->value = Value(false);
      else if (t.text == "none" || t.text == "None") e->value = Value(None{});
      else {
        e->kind = ExprKind::Name;
        e->name = t.text;
      }
      return e;
    }
    if (t.kind == Tok::String) {
      auto e = expr(ExprKind::Const, t);
      std::string s;
      while (cur().kind == Tok::String) s += next().text;
      e->value = Value(std::move(s));
      return e;
    }
    if (t.kind == Tok::Int || t.kind == Tok::Float) {
      next();
      auto e = expr(ExprKind::Const, t);
      e->value = t.kind == Tok::Int ? Value(t.ival) : Value(t.fval);
      return e;
    }
    if (is_op("(")) {
      next();
      auto e = parse_tuple(true, true);
      expect_op(")");
      return e;
    }
    if (is_op("[")) {
      auto e = expr(ExprKind::List, next());
      while (!is_op("]")) {
        if (!e->items.empty()) expect_op(",");
        if (is_op("]")) break;
        e->items.push_back(parse_expression());
      }
      expect_op("]");
      return e;
    }
    if (is_op("{")) {
      auto e = expr(ExprKind::Dict, next());
      while (!is_op("}")) {
        if (!e->items.empty()) expect_op(",");
        if (is_op("}")) break;
        e->items.push_back(parse_expression());
        expect_op(":");
        e->items.push_back(parse_expression());
      }
      expect_op("}");
      return e;
    }
    error(t, cat("unexpected '", describe(t), "'"));
  }

  ExprPtr parse_postfix(ExprPtr n) {
    Chain k(*this);
    while (true) {
      if (is_op(".") || is_op("[") || is_op("(")) k.link(cur());
      if (is_op(".") || is_op("[")) n = parse_subscript(std::move(n));
      else if (is_op("(")) n = parse_call(std::move(n));
      else return n;
    }
  }

  ExprPtr parse_filter_expr(ExprPtr n) {
    Chain k(*this);
    while (true) {
      if (is_op("|") || is_name("is") || is_op("(")) k.link(cur());
      if (is_op("|")) n = parse_filters(std::move(n));
      else if (is_name("is")) n = parse_test(std::move(n));
      else if (is_op("(")) n = parse_call(std::move(n));
      else return n;
    }
  }

  ExprPtr parse_subscript(ExprPtr obj) {
    Deeper guard(*this, cur());
    const Token& t = next();
    if (t.text == ".") {
      const Token& a = next();
      if (a.kind == Tok::Name) {
        auto e = expr(ExprKind::Attr, t);
        e->a = std::move(obj);
        e->name = a.text;
        return e;
      }
      if (a.kind != Tok::Int) error(a, "expected name or number");
      auto e = expr(ExprKind::Item, t);
      e->a = std::move(obj);
      e->b = expr(ExprKind::Const, a);
      e->b->value = Value(a.ival);
      return e;
    }
    auto e = expr(ExprKind::Item, t);
    e->a = std::move(obj);
    std::vector<ExprPtr> args;
    while (!is_op("]")) {
      if (!args.empty()) expect_op(",");
      args.push_back(parse_subscribed());
    }
    expect_op("]");
    if (args.size() == 1) {
      e->b = std::move(args[0]);
    } else {
      e->b = expr(ExprKind::Tuple, t);
      e->b->items = std::move(args);
    }
    return e;
  }

  ExprPtr parse_subscribed() {
    const Token& start = cur();
    auto s = expr(ExprKind::Slice, start);
    if (!skip_op(":")) {
      auto n = parse_expression();
      if (!skip_op(":")) return n;
      s->a = std::move(n);
    }
    if (!is_op(":") && !is_op("]") && !is_op(",")) s->b = parse_expression();
    if (skip_op(":") && !is_op("]") && !is_op(",")) s->c = parse_expression();
    return s;
  }

  void parse_call_args(Expr& e) {
    const Token& open = cur();
    expect_op("(");
    bool require_comma = false;
    while (!is_op(")")) {
      if (require_comma) {
        expect_op(",");
        if (is_op(")")) break;
      }
      if (is_op("*")) {
        if (e.b || e.c) error(open, "invalid syntax for function call expression");
        next();
        e.b = parse_expression();
      } else if (is_op("**")) {
        if (e.c) error(open, "invalid syntax for function call expression");
        next();
        e.c = parse_expression();
      } else if (cur().kind == Tok::Name && peek(1).kind == Tok::Op && peek(1).text == "=") {
        if (e.c) error(open, "invalid syntax for function call expression");
        std::string key = next().text;
        next();
        e.kwargs.emplace_back(key, parse_expression());
      } else {
        if (e.b || e.c || !e.kwargs.empty()) error(open, "invalid syntax for function call expression");
        e.items.push_back(parse_expression());
      }
      require_comma = true;
    }
    expect_op(")");
  }

  ExprPtr parse_call(ExprPtr fn) {
    auto e = expr(ExprKind::Call, cur());
    e->line = fn->line;  // errors point at the callee, where the call starts
    e->col = fn->col;
    e->a = std::move(fn);
    parse_call_args(*e);
    return e;
  }

  std::string dotted_name() {
    std::string name = expect_name().text;
    while (is_op(".")) {
      next();
      name += "." + expect_name().text;
    }
    return name;
  }

  // `| f(args) | g ...`; with start_inline the first filter has no leading pipe (filter blocks).
  ExprPtr parse_filters(ExprPtr input, bool start_inline = false) {
    Chain n(*this);
    while (is_op("|") || start_inline) {
      n.link(cur());
      Deeper guard(*this, cur());
      if (!start_inline) next();
      start_inline = false;
      auto e = expr(ExprKind::Filter, cur());
      e->name = dotted_name();
      if (is_op("(")) parse_call_args(*e);
      e->a = std::move(input);
      if (!soft_ && !has_filter(e->name)) pending_.push_back(e.get());
      input = std::move(e);
    }
    return input;
  }

  ExprPtr parse_test(ExprPtr input) {
    Deeper guard(*this, cur());
    const Token& is = next();
    bool negated = skip_name("not");
    auto e = expr(ExprKind::Test, is);
    e->name = dotted_name();
    if (is_op("(")) {
      parse_call_args(*e);
    } else if ((cur().kind == Tok::Name || cur().kind == Tok::String || cur().kind == Tok::Int ||
                cur().kind == Tok::Float || is_op("(") || is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) error(cur(), "You cannot chain multiple tests with is");
      e->items.push_back(parse_postfix(parse_primary()));
    }
    e->a = std::move(input);
    if (!soft_ && !has_test(e->name)) pending_.push_back(e.get());
    if (!negated) return e;
    auto n = expr(ExprKind::Not, is);
    n->a = std::move(e);
    return n;
  }
};

}  // namespace

NodePtr parse_template(const std::vector<Token>& tokens) { return Parser(tokens).parse(); }

}  // namespace dm::chat
