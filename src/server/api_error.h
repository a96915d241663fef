// A client error as a value (STYLE.md: bad requests never throw past the server). Turned into an OpenAI-shaped
// body: {"error": {"message", "type", "param", "code"}} with the HTTP status.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace dm {

struct ApiError {
  int status = 400;
  std::string message;
  std::string param;  // the offending field, e.g. "messages[2].role"; empty if none
  std::string code;   // machine-readable, e.g. "invalid_value"; empty if none

  std::string type() const {
    switch (status) {
      case 401: return "authentication_error";
      case 404: return "not_found_error";
      case 429: return "rate_limit_error";
      case 413: return "invalid_request_error";
      default: return status >= 500 ? "server_error" : "invalid_request_error";
    }
  }
  nlohmann::json body() const {
    nlohmann::json e = {{"message", message}, {"type", type()}, {"param", nullptr}, {"code", nullptr}};
    if (!param.empty()) e["param"] = param;
    if (!code.empty()) e["code"] = code;
    return {{"error", e}};
  }
};

}  // namespace dm
