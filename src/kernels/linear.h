// Linear layers y = x·Wᵀ over weights in any stored dtype, and row dequantization.
// W is row-major [rows = out_features, cols = in_features] as in PyTorch/safetensors; block-quantized types store
// each row as cols/block blocks (GGML layouts); F8_E4M3 carries fp32 block scales of 128×128 (DeepSeek's
// published layout: W[i,j] = q[i,j] · scale_inv[i/128, j/128]).
// linear() picks the fastest variant for the CPU; linear_ref() is the scalar reference it is tested against.
#pragma once
#include <cstdint>

#include "core/dtype.h"
#include "core/thread_pool.h"

namespace dm {

struct Weight {
  DType dtype = DType::F32;
  int64_t rows = 0;                  // out features
  int64_t cols = 0;                  // in features
  const void* data = nullptr;        // [rows, cols] in dtype's layout
  const float* scale_inv = nullptr;  // F8_E4M3 only: [ceil(rows/128), ceil(cols/128)]

  size_t row_bytes() const { return dtype_bytes(dtype, cols); }
  const uint8_t* row(int64_t r) const { return static_cast<const uint8_t*>(data) + size_t(r) * row_bytes(); }
  int64_t scale_cols() const { return (cols + 127) / 128; }
  // A view of rows [r0, r0+n): e.g. one head's slice of a projection. For F8_E4M3, r0 must be a multiple of 128.
  Weight slice_rows(int64_t r0, int64_t n) const;
  size_t bytes() const { return size_t(rows) * row_bytes(); }
};

// y[t, r] = Σ_c x[t, c] · W[r, c] for t < n_tokens. x: [n_tokens, w.cols], y: [n_tokens, w.rows], both f32,
// rows contiguous. pool may be null (single-threaded). Must not be called from inside pool->run().
void linear(const Weight& w, const float* x, int64_t n_tokens, float* y, ThreadPool* pool);
void linear_ref(const Weight& w, const float* x, int64_t n_tokens, float* y);

// out[(r - r0) * cols + c] = W[r, c] as f32, for r in [r0, r1).
void dequantize_rows(const Weight& w, int64_t r0, int64_t r1, float* out);

// True if linear() supports this dtype.
bool linear_supports(DType t);

}  // namespace dm
