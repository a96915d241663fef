// AVX2 + FMA kernels of linear(): the AVX-512 f32 kernel's structure on 8-lane vectors (F32, BF16, F16 through
// F16C, F8_E4M3 through the f16 bit trick); other dtypes dequantize a row tile to f32 first. Tails go through a
// zero-padded copy, since AVX2 has no masked 16-bit loads.
#include <immintrin.h>

#include <cstring>
#include <utility>

#include "kernels/linear_kernels.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

namespace dm::kern {
namespace {

constexpr int kMaxT = 4;

template <DType DT>
constexpr int64_t elem_bytes() {
  return DT == DType::F32 ? 4 : DT == DType::F8_E4M3 ? 1 : 2;
}

// 8 weights from p (already offset to the column) as f32.
template <DType DT>
inline __m256 load8(const uint8_t* p, float f8_scale) {
  if constexpr (DT == DType::F32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
  } else if constexpr (DT == DType::BF16) {
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
  } else if constexpr (DT == DType::F16) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  } else {
    // e4m3 -> f16 bits (value · 2^-8), as in the AVX-512 kernel; the 2^8 is in f8_scale.
    const __m128i b = _mm_cvtepi8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));  // sign-extended
    const __m128i h = _mm_and_si128(_mm_slli_epi16(b, 7), _mm_set1_epi16(short(0xbfff)));
    return _mm256_mul_ps(_mm256_cvtph_ps(h), _mm256_set1_ps(f8_scale));
  }
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Accumulator I is (token I / R, row I % R); fold expressions keep the array in registers (see linear_avx512).
template <DType DT, int R, int T, int... I>
void micro_f_seq(std::integer_sequence<int, I...>, const uint8_t* const* w, const float* const* srow,
                 const float* x, int64_t cols, float* y, int64_t ldy) {
  __m256 acc[T * R];
  ((acc[I] = _mm256_setzero_ps()), ...);
  const int64_t next_tile = R > 1 ? (w[1] - w[0]) * R : 0;  // decode prefetch, as in linear_avx512.cpp
  for (int64_t c = 0; c < cols; c += 8) {
    const bool tail = c + 8 > cols;
    alignas(32) uint8_t wbuf[R][32];  // zero-padded copies for the last cols - c (< 8) columns
    alignas(32) float xbuf[T][8];
    __m256 wv[R], xv[T];
    for (int r = 0; r < R; ++r) {
      float s = 0;
      if constexpr (DT == DType::F8_E4M3) s = srow[r][c >> 7] * 256.0f;
      if constexpr (T == 1)
        _mm_prefetch(reinterpret_cast<const char*>(w[r]) + c * elem_bytes<DT>() + next_tile, _MM_HINT_T0);
      const uint8_t* src = w[r] + c * elem_bytes<DT>();
      if (tail) {
        std::memset(wbuf[r], 0, 32);
        std::memcpy(wbuf[r], src, size_t((cols - c) * elem_bytes<DT>()));
        src = wbuf[r];
      }
      wv[r] = load8<DT>(src, s);
    }
    for (int t = 0; t < T; ++t) {
      const float* src = x + t * cols + c;
      if (tail) {
        std::memset(xbuf[t], 0, 32);
        std::memcpy(xbuf[t], src, size_t(cols - c) * 4);
        src = xbuf[t];
      }
      xv[t] = _mm256_loadu_ps(src);
    }
    ((acc[I] = _mm256_fmadd_ps(wv[I % R], xv[I / R], acc[I])), ...);
  }
  ((y[(I / R) * ldy + I % R] = hsum(acc[I])), ...);
}

template <DType DT, int R, int T>
void micro_f(const uint8_t* const* w, const float* const* srow, const float* x, int64_t cols, float* y,
             int64_t ldy) {
  micro_f_seq<DT, R, T>(std::make_integer_sequence<int, R * T>{}, w, srow, x, cols, y, ldy);
}

template <DType DT>
using MicroF = void (*)(const uint8_t* const*, const float* const*, const float*, int64_t, float*, int64_t);

template <DType DT, int R>
MicroF<DT> pick_t(int t) {
  switch (t) {
    case 1: return micro_f<DT, R, 1>;
    case 2: return micro_f<DT, R, 2>;
    case 3: return micro_f<DT, R, 3>;
    default: return micro_f<DT, R, 4>;
  }
}
template <DType DT>
MicroF<DT> pick(int r, int t) {
  switch (r) {
    case 1: return pick_t<DT, 1>(t);
    case 2: return pick_t<DT, 2>(t);
    case 3: return pick_t<DT, 3>(t);
    default: return pick_t<DT, 4>(t);
  }
}

template <DType DT>
void rows_f(const Weight& w, const float* x, int64_t n_tokens, float* y, int64_t r0, int64_t r1, float* scratch) {
  const int64_t cols = w.cols;
  int64_t tb = (512 << 10) / (cols * 4);  // token block: activations in L2, at least 16 tokens (see AVX-512)
  tb = tb < 16 ? 16 : tb / kMaxT * kMaxT;
  for (int64_t t0 = 0; t0 < n_tokens; t0 += tb) {
    const int64_t nt = n_tokens - t0 < tb ? n_tokens - t0 : tb;
    for (int64_t r = r0; r < r1; r += kRowTile) {
      const int nr = int(r1 - r < kRowTile ? r1 - r : kRowTile);
      const uint8_t* rows[kRowTile];
      const float* srow[kRowTile] = {};
      if (w.dtype == DT) {
        for (int i = 0; i < nr; ++i) {
          rows[i] = w.row(r + i);
          if constexpr (DT == DType::F8_E4M3) srow[i] = w.scale_inv + ((r + i) / 128) * w.scale_cols();
        }
      } else {
        dequantize_rows(w, r, r + nr, scratch);
        for (int i = 0; i < nr; ++i) rows[i] = reinterpret_cast<const uint8_t*>(scratch + i * cols);
      }
      for (int64_t t = t0; t < t0 + nt; t += kMaxT) {
        const int tt = int(t0 + nt - t < kMaxT ? t0 + nt - t : kMaxT);
        pick<DT>(nr, tt)(rows, srow, x + t * cols, cols, y + t * w.rows + r, w.rows);
      }
    }
  }
}

}  // namespace

void rows_avx2(const Weight& w, const float* x, int64_t n_tokens, float* y, int64_t r0, int64_t r1,
               float* scratch) {
  switch (w.dtype) {
    case DType::BF16: return rows_f<DType::BF16>(w, x, n_tokens, y, r0, r1, scratch);
    case DType::F16: return rows_f<DType::F16>(w, x, n_tokens, y, r0, r1, scratch);
    case DType::F8_E4M3: return rows_f<DType::F8_E4M3>(w, x, n_tokens, y, r0, r1, scratch);
    default: return rows_f<DType::F32>(w, x, n_tokens, y, r0, r1, scratch);
  }
}

}  // namespace dm::kern

#pragma GCC pop_options
