// A read-only memory-mapped file. Weights are used straight from these pages when their dtype is used as is.
// Thread safety: immutable after construction; data() may be read from any thread.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace dm {

class MappedFile {
 public:
  // Throws dm::Error naming the path if the file cannot be opened or mapped. An empty file maps to size 0.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Hint the kernel to back [offset, offset+len) with huge pages and read it ahead.
  void advise_hot(size_t offset, size_t len) const;

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Reads a whole file into a string; throws dm::Error naming the path.
std::string read_file(const std::string& path);
bool file_exists(const std::string& path);

}  // namespace dm
