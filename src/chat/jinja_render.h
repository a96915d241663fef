// The renderer walks a parsed template: statements write to an output string, expressions evaluate to Values.
// Scopes follow Jinja2: a for loop body is a fresh scope each iteration, macros see the scope they were defined in,
// `if` blocks share their scope. One Renderer per render call; it counts steps and output against RenderLimits.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "chat/jinja.h"
#include "chat/jinja_ast.h"

namespace dm::chat {

struct Frame {
  std::vector<std::pair<std::string, Value>> vars;
  std::shared_ptr<Frame> parent;
  Value* find(const std::string& name);
  void set(const std::string& name, Value v);
};

class Renderer {
 public:
  explicit Renderer(const RenderLimits& limits) : limits_(limits) {}
  std::string render(const Node& root, const std::vector<std::pair<std::string, Value>>& vars);

  // Calls a callable value (macro, bound method, global); anything else fails as Python would.
  Value call(const Value& fn, CallArgs& args);
  const RenderLimits& limits() const { return limits_; }
  void step();
  // Runs a macro (or a call block's body as `caller`) with the scope it was defined in.
  Value invoke_macro(const Node& m, std::shared_ptr<Frame> parent, CallArgs& args);

 private:
  enum class Flow { Normal, Break, Continue };
  const RenderLimits& limits_;
  uint64_t steps_ = 0;
  int call_depth_ = 0;
  int nesting_ = 0;                // eval/exec calls on the stack
  std::weak_ptr<Frame> globals_;
  Value* block_input_ = nullptr;   // the rendered body a `set` / `filter` block passes to its filters
  struct Nest {
    Renderer& r;
    explicit Nest(Renderer& renderer);
    ~Nest() { --r.nesting_; }
  };

  Flow exec(const std::vector<NodePtr>& body, const std::shared_ptr<Frame>& f, std::string& out);
  Flow exec(const Node& n, const std::shared_ptr<Frame>& f, std::string& out);
  void exec_for(const Node& n, const std::shared_ptr<Frame>& f, std::string& out);
  void assign(const Expr& target, const Value& v, Frame& f);
  Value make_macro(const Node& n, const std::shared_ptr<Frame>& f);
  Value eval(const Expr& e, Frame& f);
  Value eval_inner(const Expr& e, Frame& f);
  CallArgs eval_args(const Expr& e, Frame& f);
  void append(std::string& out, const std::string& s);
};

}  // namespace dm::chat
