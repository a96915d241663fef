// Non-owning views of tensors (weights in mapped files or owned buffers), and aligned owning buffers.
// Shapes are outermost-first, as in safetensors / PyTorch: a linear weight is [out_features, in_features].
#pragma once
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace dm {

struct TensorView {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t nbytes = 0;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  int64_t dim(int i) const { return shape[size_t(i)]; }
  int ndim() const { return int(shape.size()); }
  const float* f32() const { return static_cast<const float*>(data); }
};

std::string shape_str(const std::vector<int64_t>& shape);  // "[4, 64]"

// Owning, 64-byte aligned, zero-initialised storage.
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(size_t bytes);
  void* data() { return ptr_.get(); }
  const void* data() const { return ptr_.get(); }
  size_t size() const { return size_; }
  template <typename T>
  T* as() {
    return static_cast<T*>(data());
  }
  template <typename T>
  const T* as() const {
    return static_cast<const T*>(data());
  }

 private:
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  std::unique_ptr<void, Free> ptr_;
  size_t size_ = 0;
};

// Owning, zero-initialised memory on its own anonymous mapping, advised onto transparent huge pages before any
// page is touched (memory written before the advice keeps its 4 KiB pages, as a Buffer's does). For the large
// buffers the kernels stream: the packed weights, and the bandwidth probe and benchmarks that measure them.
// Where the kernel grants no huge pages (THP off) this is 4 KiB pages all the same. Move-only.
class HugeBuffer {
 public:
  HugeBuffer() = default;
  explicit HugeBuffer(size_t bytes);  // throws dm::Error naming the size if the mapping fails
  ~HugeBuffer();
  HugeBuffer(HugeBuffer&& o) noexcept : ptr_(o.ptr_), size_(o.size_) { o.ptr_ = nullptr, o.size_ = 0; }
  HugeBuffer& operator=(HugeBuffer&& o) noexcept;
  HugeBuffer(const HugeBuffer&) = delete;
  HugeBuffer& operator=(const HugeBuffer&) = delete;
  uint8_t* data() { return ptr_; }
  const uint8_t* data() const { return ptr_; }
  size_t size() const { return size_; }

 private:
  uint8_t* ptr_ = nullptr;
  size_t size_ = 0;
};

}  // namespace dm
