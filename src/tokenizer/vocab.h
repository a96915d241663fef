// Token text -> id index: one byte arena plus an open-addressing table of entry numbers (load <= 1/2), which
// loads 150k tokens in a few milliseconds and looks words up with one or two cache misses.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dm {

class Vocab {
 public:
  void reserve(size_t n);
  // Adds token -> id; a repeated token takes the new id (as reading a JSON object into a map does).
  void insert(std::string_view token, int32_t id);
  std::optional<int32_t> find(std::string_view token) const;
  size_t size() const { return ids_.size(); }
  std::string_view token(size_t entry) const { return {arena_.data() + starts_[entry], starts_[entry + 1] - starts_[entry]}; }
  int32_t id(size_t entry) const { return ids_[entry]; }

  static uint64_t hash(std::string_view s);

 private:
  void grow();
  std::string arena_;
  std::vector<size_t> starts_{0};  // entry i is arena_[starts_[i], starts_[i+1])
  std::vector<int32_t> ids_;
  std::vector<uint32_t> hashes_;   // low 32 bits of each entry's hash
  std::vector<uint32_t> slots_;    // entry + 1, or 0 when empty; size a power of two
};

}  // namespace dm
