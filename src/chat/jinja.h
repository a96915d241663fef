// Jinja templates as Hugging Face transformers renders chat templates: Jinja2's ImmutableSandboxedEnvironment with
// trim_blocks, lstrip_blocks, loop controls, the default Undefined, tojson = json.dumps(ensure_ascii=False), and the
// globals raise_exception and strftime_now. Parse once, render many times; a Template is immutable and may be
// rendered from several threads at once.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "chat/value.h"
#include "core/error.h"

namespace dm::chat {

// A template that fails to parse or render; the message names the line and column.
class TemplateError : public dm::Error {
 public:
  TemplateError(const std::string& message, int line, int col);
  int line, col;
  std::string message;  // without the position
};

struct RenderLimits {
  int max_call_depth = 64;              // nested macro calls
  size_t max_output = size_t(1) << 26;  // bytes of output (and of any one string built)
  uint64_t max_steps = 50'000'000;      // evaluated nodes; stops runaway loops
};

struct Node;

class Template {
 public:
  explicit Template(std::string_view source);  // throws TemplateError
  ~Template();
  Template(Template&&) noexcept;
  Template& operator=(Template&&) noexcept;

  // `vars` are the top-level variables (name, value); globals (range, namespace, ...) are added underneath.
  std::string render(const std::vector<std::pair<std::string, Value>>& vars, const RenderLimits& limits = {}) const;

 private:
  std::unique_ptr<Node> root_;
};

}  // namespace dm::chat
