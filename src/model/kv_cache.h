// Paged KV cache storage: n_blocks blocks of block_size token slots; each slot holds, per layer, `width` floats.
// What a slot holds is the model's business: the MLA latent (c_kv after its norm | roped k_pe) for DeepSeek,
// K and V of every KV head for grouped-query attention. Which block belongs to which sequence is the engine's
// business (block tables, reference counts, prefix reuse); the model only reads and writes slots.
// Layout: [n_blocks][n_layers][block_size][width] so that a block's memory is one contiguous range.
// Thread safety: none; the engine's step loop owns it.
#pragma once
#include <cstdint>

#include "core/error.h"
#include "core/tensor.h"

namespace dm {

class KvCache {
 public:
  KvCache(int n_layers, int64_t width, int block_size, int64_t n_blocks)
      : n_layers_(n_layers), width_(width), block_size_(block_size), n_blocks_(n_blocks),
        buf_(size_t(n_blocks) * size_t(n_layers) * size_t(block_size) * size_t(width) * sizeof(float)) {}

  float* slot(int32_t block, int layer, int offset) {
    DM_CHECK(block >= 0 && block < n_blocks_ && layer >= 0 && layer < n_layers_ && offset >= 0 &&
                 offset < block_size_,
             "kv slot ", block, "/", layer, "/", offset);
    return reinterpret_cast<float*>(buf_.data()) + ((size_t(block) * size_t(n_layers_) + size_t(layer)) * size_t(block_size_) +
                               size_t(offset)) * size_t(width_);
  }
  int n_layers() const { return n_layers_; }
  int64_t width() const { return width_; }
  int block_size() const { return block_size_; }
  int64_t n_blocks() const { return n_blocks_; }
  size_t bytes() const { return buf_.size(); }
  size_t bytes_per_token() const { return size_t(n_layers_) * size_t(width_) * sizeof(float); }

 private:
  int n_layers_;
  int64_t width_;
  int block_size_;
  int64_t n_blocks_;
  HugeBuffer buf_;
};

}  // namespace dm
