// Dispatch of linear layers: picks the instruction set (linear_simd), splits rows over the pool's threads on
// multiples of the register row tile, and for Q8_0/Q4_0 on VNNI quantizes the activations once per call
// (tokens split over threads) before the int8 kernels run. Scalar path: one dequantized row at a time.
#include <algorithm>
#include <atomic>
#include <vector>

#include "core/cpu.h"
#include "core/error.h"
#include "core/tensor.h"
#include "kernels/linear.h"
#include "kernels/linear_kernels.h"
#include "kernels/quant.h"

namespace dm {

namespace {

bool has_avx512() {
  const CpuFeatures& f = cpu_features();
  return f.avx512f && f.avx512bw && f.avx512vl && f.fma && f.f16c;
}
bool has_avx2() {
  const CpuFeatures& f = cpu_features();
  return f.avx2 && f.fma && f.f16c;
}

void rows_scalar(const Weight& w, const float* x, int64_t n_tokens, float* y, int64_t r0, int64_t r1,
                 float* row) {
  for (int64_t r = r0; r < r1; ++r) {
    dequantize_rows(w, r, r + 1, row);
    for (int64_t t = 0; t < n_tokens; ++t) {
      const float* xt = x + t * w.cols;
      float acc = 0;
      for (int64_t c = 0; c < w.cols; ++c) acc += xt[c] * row[c];
      y[t * w.rows + r] = acc;
    }
  }
}

// Runs fn(thread, r0, r1) over [0, rows) in chunks of whole row tiles that threads take from a shared counter
// (a thread slowed by other load on its core takes fewer chunks). Which thread computes a row never changes
// its result.
template <typename Fn>
void for_rows(int64_t rows, int64_t bytes, ThreadPool* pool, Fn&& fn) {
  // Below ~64 KiB of weights a second thread costs more in wake-up than it saves.
  const int nt = pool && rows >= 2 * kern::kRowTile && bytes >= (64 << 10) ? pool->size() : 1;
  if (nt == 1) return fn(0, int64_t(0), rows);
  const int64_t tiles = (rows + kern::kRowTile - 1) / kern::kRowTile;
  const int64_t chunk = std::max<int64_t>(1, tiles / (int64_t(nt) * 8)) * kern::kRowTile;
  std::atomic<int64_t> next{0};
  pool->run([&](int t, int) {
    for (;;) {
      const int64_t b = next.fetch_add(chunk, std::memory_order_relaxed);
      if (b >= rows) break;
      fn(t, b, std::min(rows, b + chunk));
    }
  });
}

int threads_for(ThreadPool* pool) { return pool ? pool->size() : 1; }

}  // namespace

Simd linear_simd(const LinearOptions& opt) {
  const Simd want = opt.simd == Simd::Auto ? Simd::Avx512 : opt.simd;
  if (want == Simd::Avx512 && has_avx512()) return Simd::Avx512;
  if (want != Simd::Scalar && has_avx2()) return Simd::Avx2;
  return Simd::Scalar;
}

void linear(const Weight& w, const float* x, int64_t n_tokens, float* y, ThreadPool* pool) {
  linear(w, x, n_tokens, y, pool, LinearOptions{});
}

void linear(const Weight& w, const float* x, int64_t n_tokens, float* y, ThreadPool* pool,
            const LinearOptions& opt) {
  DM_CHECK(linear_supports(w.dtype), "linear: unsupported dtype ", dtype_name(w.dtype));
  DM_CHECK(w.cols % dtype_block(w.dtype) == 0, "linear: ", dtype_name(w.dtype), " row of ", w.cols, " values");
  if (n_tokens <= 0 || w.rows <= 0) return;
  const Simd simd = linear_simd(opt);
  const int64_t cols = w.cols;

  if (simd == Simd::Avx512 && opt.quantize_activations && cpu_features().avx512vnni &&
      (w.dtype == DType::Q8_0 || w.dtype == DType::Q4_0)) {
    const int64_t n_pairs = (cols / kQK + 1) / 2;
    Buffer q(size_t(n_tokens * n_pairs * 64));
    Buffer s(size_t(n_tokens * n_pairs * 16) * sizeof(float));
    auto quantize = [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t)
        kern::quantize_acts_avx512(x + t * cols, cols, w.dtype, q.as<uint8_t>() + t * n_pairs * 64,
                                   s.as<float>() + t * n_pairs * 16);
    };
    if (pool && pool->size() > 1 && n_tokens >= 2 * pool->size()) {
      pool->parallel_for(n_tokens, quantize);
    } else {
      quantize(0, n_tokens);
    }
    const kern::QActs xq{q.as<uint8_t>(), s.as<float>(), n_pairs};
    const size_t per_thread = n_tokens > 4 ? kern::q8_scratch_bytes(cols) : 0;
    Buffer scratch(per_thread * size_t(threads_for(pool)));
    for_rows(w.rows, w.bytes(), pool, [&](int t, int64_t r0, int64_t r1) {
      kern::rows_q8_avx512(w, xq, n_tokens, y, r0, r1, scratch.as<uint8_t>() + t * per_thread);
    });
    return;
  }

  // Scratch for a dequantized / converted row tile, where the kernel needs one.
  const bool direct = w.dtype == DType::F32 || w.dtype == DType::BF16 || w.dtype == DType::F16 ||
                      w.dtype == DType::F8_E4M3;
  const size_t per_thread = simd == Simd::Scalar ? size_t(cols)
                            : direct && n_tokens <= 4 ? 0
                                                      : size_t(kern::kRowTile * cols);
  Buffer scratch(per_thread * sizeof(float) * size_t(threads_for(pool)));
  for_rows(w.rows, w.bytes(), pool, [&](int t, int64_t r0, int64_t r1) {
    float* sc = scratch.as<float>() + t * per_thread;
    switch (simd) {
      case Simd::Avx512: return kern::rows_avx512(w, x, n_tokens, y, r0, r1, sc);
      case Simd::Avx2: return kern::rows_avx2(w, x, n_tokens, y, r0, r1, sc);
      default: return rows_scalar(w, x, n_tokens, y, r0, r1, sc);
    }
  });
}

}  // namespace dm
