// Syntax tree of a Jinja template: expressions (Expr) and statements (Node), with the source line and column of
// each for error messages. Node kinds mirror jinja2/nodes.py; the parser (jinja_parser.cpp) builds them and the
// renderer (jinja_render.cpp) walks them.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "chat/jinja_lexer.h"
#include "chat/value.h"

namespace dm::chat {

enum class ExprKind {
  Const,     // value
  Name,      // name
  List,      // items
  Tuple,     // items
  Dict,      // items: key, value, key, value, ...
  Attr,      // a.name
  Item,      // a[b]
  Slice,     // a:b:c (any may be null), only as the index of Item
  Call,      // a(items, kwargs, *dyn_args=b, **dyn_kwargs=c)
  Filter,    // a|name(items, kwargs); a is null in filter blocks
  Test,      // a is name(items, kwargs)
  Neg,       // -a
  Pos,       // +a
  Not,       // not a
  And,       // a and b
  Or,        // a or b
  Binary,    // a op b: + - * / // % **
  Concat,    // items joined with ~
  Compare,   // a ops[i] items[i] ...: == != < <= > >= in notin
  CondExpr,  // b if a else c (c may be null)
};

struct Expr {
  ExprKind kind;
  int line = 0, col = 0;
  Value value;
  std::string name;  // Name / Attr / Filter / Test name, Binary operator
  std::vector<std::unique_ptr<Expr>> items;
  std::vector<std::pair<std::string, std::unique_ptr<Expr>>> kwargs;
  std::vector<std::string> ops;  // Compare
  std::unique_ptr<Expr> a, b, c;
};
using ExprPtr = std::unique_ptr<Expr>;

enum class NodeKind {
  Body,         // body
  Data,         // text
  Print,        // {{ expr }}
  If,           // if expr: body else else_body (elif = If in else_body)
  For,          // for target in expr [if cond]: body else else_body
  Set,          // set target = expr
  SetBlock,     // set target [| filter]: body
  Macro,        // macro name(params): body
  CallBlock,    // call(params) expr: body (the body becomes `caller`)
  FilterBlock,  // filter filter: body
  Break,
  Continue,
};

struct Param {
  std::string name;
  ExprPtr default_value;  // may be null
};

struct Node {
  NodeKind kind;
  int line = 0, col = 0;
  std::string text;
  std::string name;
  ExprPtr expr, target, cond, filter;
  std::vector<Param> params;
  std::vector<std::unique_ptr<Node>> body, else_body;
  // Macro / CallBlock: whether the body names varargs, kwargs, caller (Jinja2 accepts extra arguments only then).
  bool uses_varargs = false, uses_kwargs = false, uses_caller = false;
};
using NodePtr = std::unique_ptr<Node>;

// Throws TemplateError.
NodePtr parse_template(const std::vector<Token>& tokens);

// Deepest nesting of expressions and blocks the parser accepts: keeps the recursive parser and renderer
// inside the stack.
constexpr int kMaxNesting = 200;

}  // namespace dm::chat
