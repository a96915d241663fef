// stderr logger; one mutex keeps lines from interleaving.
#include "core/log.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace dm {

LogLevel log_level() {
  static const LogLevel level = [] {
    const char* s = std::getenv("DEEPMOE_LOG");
    if (!s) return LogLevel::Info;
    if (!std::strcmp(s, "error")) return LogLevel::Error;
    if (!std::strcmp(s, "warn")) return LogLevel::Warn;
    if (!std::strcmp(s, "debug")) return LogLevel::Debug;
    return LogLevel::Info;
  }();
  return level;
}

void log_line(LogLevel level, const std::string& msg) {
  static std::mutex mu;
  static const char* names[] = {"error", "warn", "info", "debug"};
  std::lock_guard<std::mutex> lock(mu);
  std::fprintf(stderr, "[%s] %s\n", names[int(level)], msg.c_str());
}

}  // namespace dm
