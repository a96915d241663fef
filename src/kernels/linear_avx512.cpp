// AVX-512 kernels of linear(): f32 FMA over weights converted in registers (F32, BF16, F16, F8_E4M3 with its
// 128x128 block scales), and int8 VNNI dot products (vpdpbusd) for Q8_0 / Q4_0 against activations quantized
// per 32-block, the scheme of llama.cpp's CPU backend. Register tiles of kRowTile rows x up to 4 tokens; the
// weight tile is loaded once per token tile and the token block is sized to stay in L2.
#include <immintrin.h>

#include <cstring>

#include "kernels/linear_kernels.h"
#include "kernels/quant.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c")
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12 false positives inside its intrinsic headers
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace dm::kern {
namespace {

constexpr int kMaxT = 4;  // tokens per register tile

template <DType DT>
constexpr int64_t elem_bytes() {
  return DT == DType::F32 ? 4 : DT == DType::F8_E4M3 ? 1 : 2;
}

// 16 weights from column c of a row as f32; m masks the columns that exist. f8_scale: scale_inv · 256 (F8 only).
template <DType DT>
inline __m512 load16(const uint8_t* row, int64_t c, __mmask16 m, float f8_scale) {
  if constexpr (DT == DType::F32) {
    return _mm512_maskz_loadu_ps(m, reinterpret_cast<const float*>(row) + c);
  } else if constexpr (DT == DType::BF16) {
    __m256i h = _mm256_maskz_loadu_epi16(m, reinterpret_cast<const uint16_t*>(row) + c);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  } else if constexpr (DT == DType::F16) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, reinterpret_cast<const uint16_t*>(row) + c));
  } else {
    static_assert(DT == DType::F8_E4M3);
    // e4m3 (s eeee mmm) moved into an f16 (s eeeee mmmmmmmmmm) as s | eeeemmm << 7 is the same number times
    // 2^-8, subnormals included (both formats' subnormal steps shift alike); the 2^8 is in f8_scale.
    // note: e4m3 NaN (0x7f) becomes the finite 480; checkpoints hold no NaN.
    __m256i b = _mm256_cvtepu8_epi16(_mm_maskz_loadu_epi8(m, row + c));
    __m256i h = _mm256_or_si256(_mm256_slli_epi16(_mm256_and_si256(b, _mm256_set1_epi16(0x7f)), 7),
                                _mm256_slli_epi16(_mm256_and_si256(b, _mm256_set1_epi16(0x80)), 8));
    return _mm512_mul_ps(_mm512_cvtph_ps(h), _mm512_set1_ps(f8_scale));
  }
}

// y[t·ldy + r] = row r · x[t] for r < R, t < T. srow[r]: F8 scale row of row r (else unused).
template <DType DT, int R, int T>
void micro_f(const uint8_t* const* w, const float* const* srow, const float* x, int64_t cols, float* y,
             int64_t ldy) {
  __m512 acc[T][R];
  for (int t = 0; t < T; ++t)
    for (int r = 0; r < R; ++r) acc[t][r] = _mm512_setzero_ps();
  auto step = [&](int64_t c, __mmask16 m) {
    __m512 wv[R];
    for (int r = 0; r < R; ++r) {
      float s = 0;
      if constexpr (DT == DType::F8_E4M3) s = srow[r][c >> 7] * 256.0f;
      wv[r] = load16<DT>(w[r], c, m, s);
    }
    for (int t = 0; t < T; ++t) {
      __m512 xv = _mm512_maskz_loadu_ps(m, x + t * cols + c);
      for (int r = 0; r < R; ++r) acc[t][r] = _mm512_fmadd_ps(wv[r], xv, acc[t][r]);
    }
  };
  int64_t c = 0;
  for (; c + 16 <= cols; c += 16) {
    if constexpr (T == 1) {  // decode streams weights from memory: fetch well ahead of use
      for (int r = 0; r < R; ++r) _mm_prefetch(reinterpret_cast<const char*>(w[r]) + (c + 512) * elem_bytes<DT>(), _MM_HINT_T0);
    }
    step(c, 0xffff);
  }
  if (c < cols) step(c, __mmask16((1u << (cols - c)) - 1));
  for (int t = 0; t < T; ++t)
    for (int r = 0; r < R; ++r) y[t * ldy + r] = _mm512_reduce_add_ps(acc[t][r]);
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

// Tokens per block so that the block's activations (bytes_per_token each) stay in L2 while a thread's rows pass.
int64_t token_block(int64_t n_tokens, int64_t bytes_per_token) {
  int64_t tb = (256 << 10) / bytes_per_token;
  tb = tb < kMaxT ? kMaxT : tb / kMaxT * kMaxT;
  return tb < n_tokens ? tb : n_tokens;
}

template <DType DT>
void rows_f(const Weight& w, const float* x, int64_t n_tokens, float* y, int64_t r0, int64_t r1, float* scratch) {
  const int64_t cols = w.cols;
  const int64_t tb = token_block(n_tokens, cols * 4);
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
      } else {  // other dtypes: dequantize the row tile once per token block
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

// ---- int8 path ----

// Weight pair p (blocks 2p, 2p+1) of a Q8_0 / Q4_0 row as 64 signed bytes in the QActs byte order, the
// per-lane block scales, and init = -128·Σw per lane (cancels the +128 offset of the u8 activations).
template <DType DT>
inline void load_pair(const uint8_t* row, int64_t p, bool full, __m512i& wq, __m512& ws, __m512i& init) {
  float da, db = 0;
  if constexpr (DT == DType::Q8_0) {
    const BlockQ8_0* b = reinterpret_cast<const BlockQ8_0*>(row) + 2 * p;
    __m256i qa = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[0].qs));
    __m256i qb = _mm256_setzero_si256();
    da = _cvtsh_ss(b[0].d);
    if (full) {
      qb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[1].qs));
      db = _cvtsh_ss(b[1].d);
    }
    wq = _mm512_inserti64x4(_mm512_castsi256_si512(qa), qb, 1);
    ws = _mm512_mask_blend_ps(0xff00, _mm512_set1_ps(da), _mm512_set1_ps(db));
  } else {
    const BlockQ4_0* b = reinterpret_cast<const BlockQ4_0*>(row) + 2 * p;
    __m128i qa = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[0].qs));
    __m128i qb = _mm_set1_epi8(char(0x88));  // padding: code 8 is weight 0
    da = _cvtsh_ss(b[0].d);
    if (full) {
      qb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[1].qs));
      db = _cvtsh_ss(b[1].d);
    }
    __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(qa), qb, 1);  // [A | B] nibble bytes
    const __m256i lo4 = _mm256_set1_epi8(15);
    __m256i lo = _mm256_and_si256(v, lo4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), lo4);
    // [A 0-15 | B 0-15 | A 16-31 | B 16-31] minus 8
    wq = _mm512_sub_epi8(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), _mm512_set1_epi8(8));
    ws = _mm512_mask_blend_ps(0xf0f0, _mm512_set1_ps(da), _mm512_set1_ps(db));
  }
  init = _mm512_sub_epi32(_mm512_setzero_si512(),
                          _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(char(0x80)), wq));
}

template <DType DT>
inline __m512 act_scales(const float* d) {
  const __mmask16 mb = DT == DType::Q8_0 ? 0xff00 : 0xf0f0;
  return _mm512_mask_blend_ps(mb, _mm512_set1_ps(d[0]), _mm512_set1_ps(d[1]));
}

template <DType DT, int R, int T>
void micro_q(const uint8_t* const* w, const QActs& xq, int64_t n_blocks, float* y, int64_t ldy) {
  __m512 acc[T][R];
  for (int t = 0; t < T; ++t)
    for (int r = 0; r < R; ++r) acc[t][r] = _mm512_setzero_ps();
  const int64_t np = xq.n_pairs;
  for (int64_t p = 0; p < np; ++p) {
    const bool full = 2 * p + 1 < n_blocks;
    __m512i wq[R], init[R];
    __m512 ws[R];
    for (int r = 0; r < R; ++r) {
      if constexpr (T == 1) _mm_prefetch(reinterpret_cast<const char*>(w[r]) + (p + 16) * (DT == DType::Q8_0 ? 68 : 36), _MM_HINT_T0);
      load_pair<DT>(w[r], p, full, wq[r], ws[r], init[r]);
    }
    for (int t = 0; t < T; ++t) {
      __m512i xv = _mm512_loadu_si512(xq.q + (t * np + p) * 64);
      __m512 xs = act_scales<DT>(xq.d + (t * np + p) * 2);
      for (int r = 0; r < R; ++r) {
        __m512i s = _mm512_dpbusd_epi32(init[r], xv, wq[r]);
        acc[t][r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(ws[r], xs), acc[t][r]);
      }
    }
  }
  for (int t = 0; t < T; ++t)
    for (int r = 0; r < R; ++r) y[t * ldy + r] = _mm512_reduce_add_ps(acc[t][r]);
}

template <DType DT>
using MicroQ = void (*)(const uint8_t* const*, const QActs&, int64_t, float*, int64_t);

template <DType DT, int R>
MicroQ<DT> pick_q_t(int t) {
  switch (t) {
    case 1: return micro_q<DT, R, 1>;
    case 2: return micro_q<DT, R, 2>;
    case 3: return micro_q<DT, R, 3>;
    default: return micro_q<DT, R, 4>;
  }
}
template <DType DT>
MicroQ<DT> pick_q(int r, int t) {
  switch (r) {
    case 1: return pick_q_t<DT, 1>(t);
    case 2: return pick_q_t<DT, 2>(t);
    case 3: return pick_q_t<DT, 3>(t);
    default: return pick_q_t<DT, 4>(t);
  }
}

template <DType DT>
void rows_q(const Weight& w, const QActs& xq, int64_t n_tokens, float* y, int64_t r0, int64_t r1) {
  const int64_t np = xq.n_pairs, nb = w.cols / kQK;
  const int64_t tb = token_block(n_tokens, np * (64 + 8));
  for (int64_t t0 = 0; t0 < n_tokens; t0 += tb) {
    const int64_t nt = n_tokens - t0 < tb ? n_tokens - t0 : tb;
    for (int64_t r = r0; r < r1; r += kRowTile) {
      const int nr = int(r1 - r < kRowTile ? r1 - r : kRowTile);
      const uint8_t* rows[kRowTile];
      for (int i = 0; i < nr; ++i) rows[i] = w.row(r + i);
      for (int64_t t = t0; t < t0 + nt; t += kMaxT) {
        const int tt = int(t0 + nt - t < kMaxT ? t0 + nt - t : kMaxT);
        QActs sub{xq.q + t * np * 64, xq.d + t * np * 2, np};
        pick_q<DT>(nr, tt)(rows, sub, nb, y + t * w.rows + r, w.rows);
      }
    }
  }
}

}  // namespace

void rows_avx512(const Weight& w, const float* x, int64_t n_tokens, float* y, int64_t r0, int64_t r1,
                 float* scratch) {
  switch (w.dtype) {
    case DType::BF16: return rows_f<DType::BF16>(w, x, n_tokens, y, r0, r1, scratch);
    case DType::F16: return rows_f<DType::F16>(w, x, n_tokens, y, r0, r1, scratch);
    case DType::F8_E4M3: return rows_f<DType::F8_E4M3>(w, x, n_tokens, y, r0, r1, scratch);
    default: return rows_f<DType::F32>(w, x, n_tokens, y, r0, r1, scratch);  // F32, or dequantized rows
  }
}

void rows_q8_avx512(const Weight& w, const QActs& xq, int64_t n_tokens, float* y, int64_t r0, int64_t r1) {
  if (w.dtype == DType::Q8_0) return rows_q<DType::Q8_0>(w, xq, n_tokens, y, r0, r1);
  return rows_q<DType::Q4_0>(w, xq, n_tokens, y, r0, r1);
}

void quantize_acts_avx512(const float* x, int64_t cols, DType wtype, uint8_t* q, float* d) {
  const int64_t nb = cols / kQK, np = (nb + 1) / 2;
  for (int64_t b = 0; b < nb; ++b, x += kQK) {
    __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    const float db = amax / 127.0f;
    const float id = db != 0 ? 1.0f / db : 0.0f;
    const __m512 vid = _mm512_set1_ps(id);
    const __m512i off = _mm512_set1_epi32(128);
    // Round to nearest even as quantize_activations_q8's nearbyint; then +128 into u8.
    __m128i q0 = _mm512_cvtepi32_epi8(_mm512_add_epi32(
        _mm512_cvt_roundps_epi32(_mm512_mul_ps(v0, vid), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), off));
    __m128i q1 = _mm512_cvtepi32_epi8(_mm512_add_epi32(
        _mm512_cvt_roundps_epi32(_mm512_mul_ps(v1, vid), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), off));
    const int64_t p = b / 2, half = b % 2;
    uint8_t* dst = q + p * 64;
    if (wtype == DType::Q8_0) {  // pair = [A 0-31 | B 0-31]
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + half * 32), q0);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + half * 32 + 16), q1);
    } else {  // pair = [A 0-15 | B 0-15 | A 16-31 | B 16-31], matching the nibble unpacking of Q4_0
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + half * 16), q0);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 32 + half * 16), q1);
    }
    d[b] = db;
  }
  if (nb % 2) {  // padding block of an odd row: x = 0 (u8 128) with scale 0
    uint8_t* dst = q + (np - 1) * 64;
    if (wtype == DType::Q8_0) {
      std::memset(dst + 32, 0x80, 32);
    } else {
      std::memset(dst + 16, 0x80, 16);
      std::memset(dst + 48, 0x80, 16);
    }
    d[nb] = 0;
  }
}

}  // namespace dm::kern

#pragma GCC pop_options
