// Errors, three kinds (see STYLE.md): DM_CHECK for broken invariants (aborts, on in release builds);
// dm::Error for bad files, configs and weights (carries path / tensor / expected / found, caught once by the CLI);
// bad client requests are values (ApiError in server/), never exceptions.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace dm {

// Concatenates any streamable values into one string: cat("tensor ", name, " has ", n, " dims").
template <typename... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

// A bad input: file, config, weights, template, tokenizer. The message names what and where.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <typename... Args>
[[noreturn]] void fail(const Args&... args) {
  throw Error(cat(args...));
}

[[noreturn]] void check_failed(const char* file, int line, const char* cond, const std::string& msg);

}  // namespace dm

// Broken invariant: prints file:line, the condition and the message, then aborts.
#define DM_CHECK(cond, ...)                                                   \
  do {                                                                        \
    if (!(cond)) [[unlikely]]                                                 \
      ::dm::check_failed(__FILE__, __LINE__, #cond, ::dm::cat("" __VA_OPT__(, ) __VA_ARGS__)); \
  } while (0)
