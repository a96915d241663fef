// Minimal leveled logging to stderr. The level comes from DEEPMOE_LOG (error, warn, info, debug); default info.
#pragma once
#include <string>

#include "core/error.h"

namespace dm {

enum class LogLevel { Error, Warn, Info, Debug };
LogLevel log_level();
void log_line(LogLevel level, const std::string& msg);

template <typename... Args>
void log_info(const Args&... a) {
  if (log_level() >= LogLevel::Info) log_line(LogLevel::Info, cat(a...));
}
template <typename... Args>
void log_warn(const Args&... a) {
  if (log_level() >= LogLevel::Warn) log_line(LogLevel::Warn, cat(a...));
}
template <typename... Args>
void log_debug(const Args&... a) {
  if (log_level() >= LogLevel::Debug) log_line(LogLevel::Debug, cat(a...));
}

}  // namespace dm
