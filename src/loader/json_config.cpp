// JsonConfig: checked field access. Integers given as floats with no fraction (e.g. 2.0) are accepted.
#include "loader/json_config.h"

#include <cmath>

#include "core/error.h"
#include "core/mapped_file.h"

namespace dm {

JsonConfig JsonConfig::load(const std::string& path) {
  nlohmann::json j = nlohmann::json::parse(read_file(path), nullptr, false);
  if (j.is_discarded()) fail(path, ": not valid JSON");
  if (!j.is_object()) fail(path, ": expected a JSON object at the top level");
  return JsonConfig(std::move(j), path);
}

void JsonConfig::bad(const std::string& key, const char* want) const {
  if (!j_.contains(key)) fail(path_, ": missing field '", key, "'");
  fail(path_, ": field '", key, "' must be ", want, ", found ", j_[key].dump());
}

std::optional<int64_t> JsonConfig::opt_int(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  const auto& v = j_[key];
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::floor(d) == d && std::fabs(d) < 9e15) return int64_t(d);
  }
  bad(key, "an integer");
}

int64_t JsonConfig::get_int(const std::string& key) const {
  auto v = opt_int(key);
  if (!v) bad(key, "an integer");
  return *v;
}
int64_t JsonConfig::get_int(const std::string& key, int64_t dflt) const { return opt_int(key).value_or(dflt); }

double JsonConfig::get_double(const std::string& key) const {
  if (!has(key) || !j_[key].is_number()) bad(key, "a number");
  return j_[key].get<double>();
}
double JsonConfig::get_double(const std::string& key, double dflt) const {
  return has(key) ? get_double(key) : dflt;
}

bool JsonConfig::get_bool(const std::string& key, bool dflt) const {
  if (!has(key)) return dflt;
  if (!j_[key].is_boolean()) bad(key, "true or false");
  return j_[key].get<bool>();
}

std::string JsonConfig::get_string(const std::string& key) const {
  if (!has(key) || !j_[key].is_string()) bad(key, "a string");
  return j_[key].get<std::string>();
}
std::string JsonConfig::get_string(const std::string& key, const std::string& dflt) const {
  return has(key) ? get_string(key) : dflt;
}

JsonConfig JsonConfig::child(const std::string& key) const {
  if (!has(key) || !j_[key].is_object()) bad(key, "an object");
  return JsonConfig(j_[key], path_ + ":" + key);
}

}  // namespace dm
