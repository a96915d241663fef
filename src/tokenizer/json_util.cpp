// Checked tokenizer.json field access with field paths in the error messages.
#include "tokenizer/json_util.h"

#include "core/error.h"

namespace dm {

const nlohmann::json& json_field(const nlohmann::json& j, const char* key, const std::string& where) {
  if (!j.is_object()) fail(where, ": expected an object, found ", j.type_name());
  auto it = j.find(key);
  if (it == j.end()) fail(where, ": missing field '", key, "'");
  return *it;
}

std::string json_string(const nlohmann::json& j, const char* key, const std::string& where) {
  const auto& v = json_field(j, key, where);
  if (!v.is_string()) fail(where, ".", key, ": expected a string, found ", v.type_name());
  return v.get<std::string>();
}

bool json_bool(const nlohmann::json& j, const char* key, const std::string& where, bool fallback) {
  if (!j.is_object()) fail(where, ": expected an object, found ", j.type_name());
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) fail(where, ".", key, ": expected true or false, found ", it->type_name());
  return it->get<bool>();
}

const nlohmann::json& json_array(const nlohmann::json& j, const char* key, const std::string& where) {
  const auto& v = json_field(j, key, where);
  if (!v.is_array()) fail(where, ".", key, ": expected an array, found ", v.type_name());
  return v;
}

int64_t json_int(const nlohmann::json& j, const char* key, const std::string& where) {
  const auto& v = json_field(j, key, where);
  if (!v.is_number_integer()) fail(where, ".", key, ": expected an integer, found ", v.type_name());
  return v.get<int64_t>();
}

Pattern json_pattern(const nlohmann::json& j, const std::string& where) {
  const auto& p = json_field(j, "pattern", where);
  std::string w = where + ".pattern";
  if (p.is_object() && p.contains("Regex")) return {json_string(p, "Regex", w), true};
  if (p.is_object() && p.contains("String")) return {json_string(p, "String", w), false};
  fail(w, ": expected {\"Regex\": ...} or {\"String\": ...}");
}

}  // namespace dm
