// Abort path of DM_CHECK.
#include "core/error.h"

#include <cstdio>
#include <cstdlib>

namespace dm {

void check_failed(const char* file, int line, const char* cond, const std::string& msg) {
  std::fprintf(stderr, "deepmoe: internal error at %s:%d: check failed: %s %s\n", file, line, cond, msg.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace dm
