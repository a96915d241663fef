// PCRE2 wrapper: compile with UTF | UCP (+ JIT when available), iterate matches with Oniguruma's empty-match rule.
// The White_Space set is Unicode's PropList.txt; Oniguruma's \s in Unicode mode is exactly that property.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include <pcre2.h>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace dm {

namespace {
constexpr const char* kWhiteSpaceSet = "\\t\\n\\x0B\\f\\r\\x20\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}"
                                       "\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";
}

std::string rewrite_white_space_classes(std::string_view p) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      char d = p[i + 1];
      if (d == 's') {
        out += in_class ? std::string(kWhiteSpaceSet) : std::string("[") + kWhiteSpaceSet + "]";
      } else if (d == 'S' && !in_class) {
        out += std::string("[^") + kWhiteSpaceSet + "]";
      } else {
        out += c;
        out += d;
      }
      ++i;
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal.
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      continue;
    }
    if (in_class && c == '[' && i + 1 < p.size() && p[i + 1] == ':') {  // POSIX class [:alpha:]
      size_t e = p.find(":]", i + 2);
      if (e != std::string_view::npos) {
        out.append(p.substr(i, e + 2 - i));
        i = e + 1;
        continue;
      }
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

RegexScratch::RegexScratch() : data_(pcre2_match_data_create(1, nullptr)) {
  DM_CHECK(data_ != nullptr, "out of memory");
}
RegexScratch::~RegexScratch() {
  pcre2_match_context_free(context_);
  pcre2_jit_stack_free(stack_);
  pcre2_match_data_free(data_);
}

pcre2_match_context* RegexScratch::big_stack_context() {
  if (!context_) {
    // 256 MiB of address space at most, committed only as the match goes deeper.
    stack_ = pcre2_jit_stack_create(64 * 1024, 256 * 1024 * 1024, nullptr);
    context_ = pcre2_match_context_create(nullptr);
    DM_CHECK(stack_ && context_, "out of memory");
    pcre2_jit_stack_assign(context_, nullptr, stack_);
  }
  return context_;
}

Regex::Regex(std::string_view pattern) : pattern_(pattern) {
  std::string rewritten = rewrite_white_space_classes(pattern);
  int err = 0;
  PCRE2_SIZE off = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(rewritten.data()), rewritten.size(),
                                   PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
  if (!code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    fail("regex '", pattern_, "' does not compile: ", reinterpret_cast<const char*>(msg), " at offset ", off);
  }
  code_.reset(code, pcre2_code_free);
  jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
}

void Regex::find_all(std::string_view text, RegexScratch& scratch,
                     std::vector<std::pair<size_t, size_t>>& out) const {
  auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  pcre2_match_data* md = scratch.data();
  size_t pos = 0;
  bool have_last = false;
  size_t last_end = 0;
  while (pos <= text.size()) {
    int rc = jit_ ? pcre2_jit_match(code_.get(), subject, text.size(), pos, 0, md, nullptr)
                  : pcre2_match(code_.get(), subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)  // the default 32 KiB stack is too small for this word: retry bigger
      rc = pcre2_jit_match(code_.get(), subject, text.size(), pos, 0, md, scratch.big_stack_context());
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      fail("regex '", pattern_, "' failed on the input: ", reinterpret_cast<const char*>(msg));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    size_t s = ov[0], e = ov[1];
    if (s == e && have_last && last_end == e) {
      if (e >= text.size()) break;
      pos = e + unicode::char_len(static_cast<unsigned char>(text[e]));
      continue;
    }
    out.emplace_back(s, e);
    pos = e;
    have_last = true;
    last_end = e;
  }
}

}  // namespace dm
