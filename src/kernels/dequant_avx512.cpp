// AVX-512 dequantization of GGML block rows to f32 (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K), bit-identical to the scalar
// references in quant.cpp (same products and subtractions, no fused multiply-add). linear() uses it to turn a
// row tile of K-quants into f32 before the f32 kernel; the layouts are documented in quant.h.
#include <immintrin.h>

#include "kernels/linear_kernels.h"
#include "kernels/quant.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")
// GCC 12 false positives inside its intrinsic headers (_mm512_undefined_epi32 in _mm512_cvtepu8_epi32)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace dm::kern {
namespace {

// 16 unsigned bytes -> 16 f32, times a scale, minus an offset: out = d·q - m (two roundings, as the reference).
inline void store16(float* out, __m128i bytes, float d, float m) {
  __m512 q = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(bytes));
  _mm512_storeu_ps(out, _mm512_sub_ps(_mm512_mul_ps(_mm512_set1_ps(d), q), _mm512_set1_ps(m)));
}
// 32 bytes = two groups of 16 with the same scale.
inline void store32(float* out, __m256i bytes, float d, float m) {
  store16(out, _mm256_castsi256_si128(bytes), d, m);
  store16(out + 16, _mm256_extracti128_si256(bytes, 1), d, m);
}

void row_q4_k(const BlockQ4_K* b, float* out, int64_t n) {
  const __m256i lo4 = _mm256_set1_epi8(15);
  for (int64_t k = 0; k < n / kQKK; ++k) {
    const float d = _cvtsh_ss(b[k].d), dmin = _cvtsh_ss(b[k].dmin);
    for (int c = 0; c < 4; ++c, out += 64) {
      int sc0, m0, sc1, m1;
      k_scale_min(2 * c, b[k].scales, sc0, m0);
      k_scale_min(2 * c + 1, b[k].scales, sc1, m1);
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[k].qs + 32 * c));
      store32(out, _mm256_and_si256(q, lo4), d * float(sc0), dmin * float(m0));
      store32(out + 32, _mm256_and_si256(_mm256_srli_epi16(q, 4), lo4), d * float(sc1), dmin * float(m1));
    }
  }
}

void row_q5_k(const BlockQ5_K* b, float* out, int64_t n) {
  const __m256i lo4 = _mm256_set1_epi8(15), one = _mm256_set1_epi8(1);
  for (int64_t k = 0; k < n / kQKK; ++k) {
    const float d = _cvtsh_ss(b[k].d), dmin = _cvtsh_ss(b[k].dmin);
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[k].qh));
    for (int c = 0; c < 4; ++c, out += 64) {
      int sc0, m0, sc1, m1;
      k_scale_min(2 * c, b[k].scales, sc0, m0);
      k_scale_min(2 * c + 1, b[k].scales, sc1, m1);
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[k].qs + 32 * c));
      // Bit 2c (2c+1) of qh[l] is the fifth bit of value l of sub-block 2c (2c+1).
      const __m256i h0 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * c)), one), 4);
      const __m256i h1 =
          _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * c + 1)), one), 4);
      store32(out, _mm256_or_si256(_mm256_and_si256(q, lo4), h0), d * float(sc0), dmin * float(m0));
      store32(out + 32, _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), lo4), h1), d * float(sc1),
              dmin * float(m1));
    }
  }
}

void row_q6_k(const BlockQ6_K* b, float* out, int64_t n) {
  const __m256i lo4 = _mm256_set1_epi8(15), lo2 = _mm256_set1_epi8(3);
  for (int64_t k = 0; k < n / kQKK; ++k) {
    const float d = _cvtsh_ss(b[k].d);
    for (int h = 0; h < 2; ++h, out += 128) {
      const uint8_t* ql = b[k].ql + 64 * h;
      const int8_t* sc = b[k].scales + 8 * h;
      const __m256i qa = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));
      const __m256i qb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 32));
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[k].qh + 32 * h));
      auto hi2 = [&](int shift) { return _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, shift), lo2), 4); };
      // Values l, l+32, l+64, l+96 (l < 32) as 6-bit codes; value = d·scale[v/16]·(q - 32).
      const __m256i q[4] = {
          _mm256_or_si256(_mm256_and_si256(qa, lo4), hi2(0)),
          _mm256_or_si256(_mm256_and_si256(qb, lo4), hi2(2)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qa, 4), lo4), hi2(4)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qb, 4), lo4), hi2(6)),
      };
      for (int s = 0; s < 4; ++s) {
        for (int half = 0; half < 2; ++half) {
          const __m128i bytes = half ? _mm256_extracti128_si256(q[s], 1) : _mm256_castsi256_si128(q[s]);
          const __m512i v = _mm512_sub_epi32(_mm512_cvtepu8_epi32(bytes), _mm512_set1_epi32(32));
          const float ds = d * float(sc[2 * s + half]);
          _mm512_storeu_ps(out + 32 * s + 16 * half, _mm512_mul_ps(_mm512_set1_ps(ds), _mm512_cvtepi32_ps(v)));
        }
      }
    }
  }
}

}  // namespace

void dequantize_rows_avx512(const Weight& w, int64_t r0, int64_t r1, float* out) {
  for (int64_t r = r0; r < r1; ++r) {
    float* o = out + (r - r0) * w.cols;
    const uint8_t* src = w.row(r);
    switch (w.dtype) {
      case DType::Q4_K: row_q4_k(reinterpret_cast<const BlockQ4_K*>(src), o, w.cols); break;
      case DType::Q5_K: row_q5_k(reinterpret_cast<const BlockQ5_K*>(src), o, w.cols); break;
      case DType::Q6_K: row_q6_k(reinterpret_cast<const BlockQ6_K*>(src), o, w.cols); break;
      default: dequantize_rows(w, r, r + 1, o);
    }
  }
}

}  // namespace dm::kern

#pragma GCC pop_options
