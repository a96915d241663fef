// Jinja lexer: template text -> data, tag and expression tokens, with the whitespace rules of Jinja2's lexer as
// transformers configures it (trim_blocks and lstrip_blocks on, `-` / `+` markers, newlines normalized to "\n",
// one trailing newline dropped). Reference: jinja2/lexer.py (Jinja2 3.1), Lexer.tokeniter.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dm::chat {

enum class Tok { Data, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Int, Float, Op, Eof };

struct Token {
  Tok kind;
  std::string text;  // data, name, decoded string literal, operator
  int line = 1, col = 1;
  int64_t ival = 0;
  double fval = 0;
};

// Throws TemplateError (see jinja.h) with the line and column of the fault.
std::vector<Token> tokenize(std::string_view source);

// Python's str.isspace() for one code point (used by strip() and the `-` whitespace control).
bool is_py_space(uint32_t cp);
// Decodes the UTF-8 code point at s[i], advancing i; an invalid byte is returned as itself.
uint32_t decode_utf8(std::string_view s, size_t& i);
void append_utf8(std::string& out, uint32_t cp);
// Python str.strip()/lstrip()/rstrip() with no argument: Unicode whitespace.
std::string_view py_rstrip(std::string_view s);
std::string_view py_lstrip(std::string_view s);

}  // namespace dm::chat
