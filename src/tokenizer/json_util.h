// Checked access to tokenizer.json fields: each getter names the field path in its dm::Error
// ("tokenizer.json: model.vocab: expected an object, found array").
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace dm {

const nlohmann::json& json_field(const nlohmann::json& j, const char* key, const std::string& where);
std::string json_string(const nlohmann::json& j, const char* key, const std::string& where);
bool json_bool(const nlohmann::json& j, const char* key, const std::string& where, bool fallback);
const nlohmann::json& json_array(const nlohmann::json& j, const char* key, const std::string& where);
int64_t json_int(const nlohmann::json& j, const char* key, const std::string& where);

// A Split/Replace "pattern": {"Regex": "..."} or {"String": "..."}.
struct Pattern {
  std::string text;
  bool is_regex;
};
Pattern json_pattern(const nlohmann::json& j, const std::string& where);

}  // namespace dm
