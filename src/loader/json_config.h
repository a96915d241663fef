// Typed access to JSON config files (config.json, generation_config.json) with errors that name the file and field.
#pragma once
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace dm {

class JsonConfig {
 public:
  static JsonConfig load(const std::string& path);  // throws dm::Error naming the path
  JsonConfig(nlohmann::json j, std::string path) : j_(std::move(j)), path_(std::move(path)) {}

  const nlohmann::json& json() const { return j_; }
  const std::string& path() const { return path_; }
  bool has(const std::string& key) const { return j_.contains(key) && !j_[key].is_null(); }

  int64_t get_int(const std::string& key) const;  // required
  int64_t get_int(const std::string& key, int64_t dflt) const;
  std::optional<int64_t> opt_int(const std::string& key) const;  // null or absent -> nullopt
  double get_double(const std::string& key) const;
  double get_double(const std::string& key, double dflt) const;
  bool get_bool(const std::string& key, bool dflt) const;
  std::string get_string(const std::string& key) const;
  std::string get_string(const std::string& key, const std::string& dflt) const;
  JsonConfig child(const std::string& key) const;  // a nested object (e.g. rope_scaling)

 private:
  [[noreturn]] void bad(const std::string& key, const char* want) const;
  nlohmann::json j_;
  std::string path_;
};

}  // namespace dm
