// AVX-512 kernels of linear(): f32 FMA over weights converted in registers (F32, BF16, F16, F8_E4M3 with its
// 128x128 block scales), and int8 VNNI dot products (vpdpbusd) for Q8_0 / Q4_0 against activations quantized
// per 32-block, the scheme of llama.cpp's CPU backend. Register tiles of kRowTile rows x up to 4 tokens; with
// several token tiles a row tile is converted (or unpacked) once per token block, sized to stay in L2; decode
// (one token tile) reads the weights in place, prefetching the next row tile.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "core/cpu.h"
#include "kernels/linear_kernels.h"
#include "kernels/quant.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c")
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12 false positives inside its intrinsic headers
#pragma GCC diagnostic ignored "-Wuninitialized"





namespace dm::kern {
namespace {

constexpr int kMaxT = 4;  // tokens per register tile
constexpr int64_t kColBlock = 1024;      // f32 prefill kernel: column block of rows longer than kColBlockAbove
constexpr int64_t kColBlockAbove = 4096;
constexpr int64_t kMaxBlockTokens = 64;  // f32 prefill kernel: tokens per block at most
constexpr int64_t kPart = kRowTile * kMaxT * 16;  // floats of one token tile's saved accumulators

template <DType DT>
constexpr int64_t elem_bytes() {
  return DT == DType::F32 ? 4 : DT == DType::F8_E4M3 ? 1 : 2;
}

// 16 weights from column c of a row as f32; m masks the columns that exist. f8_scale: scale_inv · 256 in every
// lane (F8 only).
template <DType DT>
inline __m512 load16(const uint8_t* row, int64_t c, __mmask16 m, __m512 f8_scale) {
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
    // Sign-extended to 16 bits and shifted left by 7, the byte leaves s in bits 15 and 14 and eeeemmm in 13-7:
    // clearing bit 14 gives the f16 (three instructions where masking the parts apart took six).
    // note: e4m3 NaN (0x7f) becomes the finite 480; checkpoints hold no NaN.
    const __m256i b = _mm256_cvtepi8_epi16(_mm_maskz_loadu_epi8(m, row + c));
    const __m256i h = _mm256_and_si256(_mm256_slli_epi16(b, 7), _mm256_set1_epi16(short(0xbfff)));
    return _mm512_mul_ps(_mm512_cvtph_ps(h), f8_scale);
  }
}

// y[t·ldy + r] = row r · x[t] for r < R, t < T. srow[r]: F8 scale row of row r (else unused).
// note: accumulator I is (token I / R, row I % R); the fold expressions over the index pack keep GCC from
// spilling the accumulator array on every iteration, which indexed loops provoke.
// Columns [c0, c1) only (c0, c1 multiples of 16 or c1 = cols): with part, the accumulators continue from part
// (c0 > 0) and are saved there (c1 < cols), so a row's sum runs over the columns in the same order whether or
// not the columns are blocked.
template <DType DT, int R, int T, int... I>
void micro_f_seq(std::integer_sequence<int, I...>, const uint8_t* const* w, const float* const* srow,
                 const float* x, int64_t cols, int64_t c0, int64_t c1, float* part, float* y, int64_t ldy) {
  __m512 acc[T * R];
  if (c0 > 0) {
    ((acc[I] = _mm512_load_ps(part + 16 * I)), ...);
  } else {
    ((acc[I] = _mm512_setzero_ps()), ...);
  }
  // One loop body for full and tail chunks (masked loads cost the same as plain ones).
  const __mmask16 tail = __mmask16((1u << (cols % 16)) - 1);
  // Decode streams the weights from memory: prefetch the next row tile (rows are evenly spaced) at the same
  // column, so the lines in flight follow the order of use across row boundaries.
  const int64_t next_tile = R > 1 ? (w[1] - w[0]) * R : 0;
  [[maybe_unused]] __m512 sv[R];  // F8: the rows' block scales (· 256) of the current 128 columns
  for (int64_t c = c0; c < c1; c += 16) {
    const __mmask16 m = c + 16 <= cols ? __mmask16(0xffff) : tail;
    if constexpr (DT == DType::F8_E4M3)
      if (c == c0 || (c & 127) == 0)
        for (int r = 0; r < R; ++r) sv[r] = _mm512_set1_ps(srow[r][c >> 7] * 256.0f);
    if constexpr (T == 1 && R == 1) {  // decode, one row at a time: one stream, prefetched 2 KiB ahead
      if (((c * elem_bytes<DT>()) & 63) == 0)
        _mm_prefetch(reinterpret_cast<const char*>(w[0]) + c * elem_bytes<DT>() + 2048, _MM_HINT_T0);
    } else if constexpr (T == 1) {  // once per 64-byte line (F8 rows take four steps per line)
      if (elem_bytes<DT>() >= 4 || ((c * elem_bytes<DT>()) & 63) == 0)
        for (int r = 0; r < R; ++r)
          _mm_prefetch(reinterpret_cast<const char*>(w[r]) + c * elem_bytes<DT>() + next_tile, _MM_HINT_T0);
    }
    __m512 wv[R], xv[T];
    for (int r = 0; r < R; ++r) wv[r] = load16<DT>(w[r], c, m, DT == DType::F8_E4M3 ? sv[r] : __m512());
    for (int t = 0; t < T; ++t) xv[t] = _mm512_maskz_loadu_ps(m, x + t * cols + c);
    ((acc[I] = _mm512_fmadd_ps(wv[I % R], xv[I / R], acc[I])), ...);
  }
  if (c1 < cols) {
    ((_mm512_store_ps(part + 16 * I, acc[I])), ...);
  } else {
    ((y[(I / R) * ldy + I % R] = _mm512_reduce_add_ps(acc[I])), ...);
  }
}

template <DType DT, int R, int T>
void micro_f(const uint8_t* const* w, const float* const* srow, const float* x, int64_t cols, int64_t c0,
             int64_t c1, float* part, float* y, int64_t ldy) {
  micro_f_seq<DT, R, T>(std::make_integer_sequence<int, R * T>{}, w, srow, x, cols, c0, c1, part, y, ldy);
}

template <DType DT>
using MicroF = void (*)(const uint8_t* const*, const float* const*, const float*, int64_t, int64_t, int64_t,
                        float*, float*, int64_t);

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
// note: at least kMinBlockTokens, even when that overflows L2 for long rows: with fewer, each row tile would be
// converted and re-read from memory once per handful of tokens.
constexpr int64_t kMinBlockTokens = 32;
int64_t token_block(int64_t n_tokens, int64_t bytes_per_token) {
  int64_t tb = (512 << 10) / bytes_per_token;
  tb = tb < kMinBlockTokens ? kMinBlockTokens : tb / kMaxT * kMaxT;
  return tb < n_tokens ? tb : n_tokens;
}

// Rows [r, r + nr) of a BF16/F16/F8 weight as f32 in out ([nr, cols]), with the kernel's own conversion (so
// values are bit-identical to converting in registers).
// Packed BF16 / F16 (pack_rows16): 16 columns of rows 2p (lo) and 2p+1 (hi) from one 64-byte line, as f32.
template <DType DT>
inline void unpack_value(__m512i v, __m512& lo, __m512& hi) {
  if constexpr (DT == DType::BF16) {
    lo = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
    hi = _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32(int(0xffff0000u))));
  } else {
    static_assert(DT == DType::F16);
    lo = _mm512_cvtph_ps(_mm512_castsi512_si256(v));
    hi = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(v, 1));
  }
}

template <DType DT>
inline void unpack_line(const uint8_t* line, __m512& lo, __m512& hi) {
  if constexpr (DT == DType::BF16) {
    const __m512i v = _mm512_loadu_si512(line);
    lo = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
    hi = _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32(int(0xffff0000u))));
  } else {
    static_assert(DT == DType::F16);
    lo = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(line)));
    hi = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(line + 32)));
  }
}

template <DType DT>
void convert_rows(const Weight& w, int64_t r, int nr, float* out) {
  const int64_t cols = w.cols;
  const __mmask16 tail = __mmask16((1u << (cols % 16)) - 1);
  if constexpr (DT == DType::BF16 || DT == DType::F16) {
    if (w.packed) {  // rows of one group (r0 is a multiple of 16 and row tiles divide it)
      const int64_t span = packed_panel_blocks(w) * 16;  // columns per panel
      for (int64_t k = 0; k * span < cols; ++k) {
        const uint8_t* piece = w.packed + packed_piece(w, r / 16, k);
        for (int i = 0; i < nr; ++i) {
          const int64_t l = (r + i) % 16;
          for (int64_t c = k * span; c < std::min(cols, k * span + span); c += 16) {
            __m512 lo, hi;
            unpack_line<DT>(piece + (c - k * span) / 16 * 512 + l / 2 * 64, lo, hi);
            _mm512_mask_storeu_ps(out + i * cols + c, c + 16 <= cols ? __mmask16(0xffff) : tail, l % 2 ? hi : lo);
          }
        }
      }
      return;
    }
  }
  for (int i = 0; i < nr; ++i) {
    const uint8_t* row = w.row(r + i);
    const float* srow = DT == DType::F8_E4M3 ? w.scale_inv + ((r + i) / 128) * w.scale_cols() : nullptr;
    for (int64_t c = 0; c < cols; c += 16) {
      const __mmask16 m = c + 16 <= cols ? __mmask16(0xffff) : tail;
      const __m512 s = DT == DType::F8_E4M3 ? _mm512_set1_ps(srow[c >> 7] * 256.0f) : __m512();
      _mm512_mask_storeu_ps(out + i * cols + c, m, load16<DT>(row, c, m, s));
    }
  }
}

// Decode streams each row group once, prefetching every cache line ahead of its use except on Zen 4 (below). On
// other AMD CPUs each pair of blocks' lines 4 KiB ahead into L1: on Zen 5 the expert-sized gemvs ran ~10% faster
// than with 2 KiB on 1 and on 2 threads (bench_kernels, alternating builds; 8 KiB helps 1 thread, not 2). On
// Intel two levels: each line 4 KiB ahead into L2 and 2 KiB ahead into L1 right before its load
// (load_prefetched). On a Xeon with AMX the Q4_0 gemvs read 67-86% of the earlier probe (a plain stream and 4
// prefetched rows) with the AMD scheme, 91-104% with one level at 2 KiB, 100-113% with two (1 and 2 threads);
// 88-93% of the probe that also prefetches each line as these kernels do (bandwidth.cpp). Other distances were no
// better.
// Zen 4 (AMD family 0x19) streams best with no software prefetch at all: its hardware prefetchers alone kept up
// with the probe where every scheme above held them back. On the Zen 4 host (2026-12-07), gemvs of 8960 x 1536
// over 937 MB of copies, in turns with plain reads of the same memory (2 threads, medians): Q4_0 57.3 GB/s with
// none against 51.1 (4 KiB ahead, one level), 50.0 (two levels), 50-54 (2 or 8 KiB ahead), 42-43 (into L2 only)
// while the plain read gave 58.2 in the host's high-bandwidth phase, 32.9 against 31.5 / 32.8 in its usual one
// (plain 32.6); BF16 46-48 against 39-42 high, 28-34 against 27-31 usual; Q8_0 55-62 against 50-53 (two levels)
// high, the same in the usual phase. Whole models (`deepmoe bench -p 1 -n 32 -r 2`, builds in turns): V2-Lite
// Q4_0 decode read 48-51 GB/s where it had read 37-41 (26.8-29.4 -> 34.6-36.9 tok/s), Qwen-1.5B Q4_0 49-53 where
// 43-47, BF16 38-46 where 34-40, on one thread Qwen-1.5B Q4_0 30-31 where 24-27 and V2-Lite Q4_0 28 where 25-27.
// The Q8_0 groups had taken the two-level scheme on AMD for a day: measured on Zen 4 only, now superseded there.
enum class DecodePrefetch { kNone, kAhead, kTwoLevels };
DecodePrefetch decode_prefetch() {
  if (cpu_features().intel) return DecodePrefetch::kTwoLevels;
  return cpu_features().family == 0x19 ? DecodePrefetch::kNone : DecodePrefetch::kAhead;
}
constexpr int64_t kPrefetchL1 = 2048, kPrefetchL2 = 4096, kPrefetchAmd = 4096;
const DecodePrefetch kDecodePrefetch = decode_prefetch();
const bool kTwoLevelPrefetch = kDecodePrefetch == DecodePrefetch::kTwoLevels;
// Decode reads a thread's rows as two streams, its first and second half side by side, where that is faster
// (kTwoStreams) and each half has kTwoStreamsMin bytes or more. On the AMX Xeon (2 threads, huge pages) plain
// loads with the two-level prefetch read 34-35 GB/s from one forward stream per thread and 39-41 from two
// streams 64 KiB or more apart (36.7 at 16 KiB); the Q4_0 gemvs went from 29-30 to 30-32 GB/s, Qwen-1.5B Q8_0 /
// Q4_0 tg64 +1-7% and V2-Lite Q4_0 +2-3% (builds in turns). Not measured on AMD, which keeps one stream.
const bool kTwoStreams = kTwoLevelPrefetch;
constexpr int64_t kTwoStreamsMin = 32 << 10;
// Decode of n_groups row groups of group_bytes each: groups [0, half) are read beside [half, n_groups) (the first
// run may have one more), or half = n_groups, one stream.
inline int64_t first_stream_groups(int64_t n_groups, int64_t group_bytes) {
  return kTwoStreams && (n_groups / 2) * group_bytes >= kTwoStreamsMin ? (n_groups + 1) / 2 : n_groups;
}
// The int8 groups take both levels' prefetches line by line, right before the line's load: spread so, rather
// than a pair's 9 (Q4_0) / 17 (Q8_0) L2 requests issued at once, they gave Q8_0 decode +2-4% on the AMX Xeon
// (bench_kernels' Qwen shapes 3 rounds in turns, 31.0-32.7 -> 31.9-34.3 GB/s; Qwen-1.5B Q8_0 tg128 18.43 / 18.77
// -> 19.07 / 19.19 tok/s) and Q4_0 the same as before (34.42 / 34.09 vs 34.11 / 34.21). The quants' lines now
// take them through load_prefetched (below); this is for each pair's line of scales.
inline void prefetch_two_levels(const uint8_t* line) {
  _mm_prefetch(reinterpret_cast<const char*>(line) + kPrefetchL1, _MM_HINT_T0);
  _mm_prefetch(reinterpret_cast<const char*>(line) + kPrefetchL2, _MM_HINT_T1);
}

// Decode's results go to y through a small buffer, kStageGroups groups per stream, copied out as it fills: a
// store that misses L1 in the middle of the weight streams held them up, one line of y per group (16 rows) was
// ~10% of the time. On the AMX Xeon, a copy of the Q4_0 decode loop (2 threads, 746 MiB each) read 36.2-36.4
// GB/s keeping its results, 32.4-33.2 storing them to y as it went, 34.8-34.9 through a buffer of 64 groups (16,
// 32, 256 and non-temporal stores: less); the real kernel 35.1-35.3 -> 38.0-38.1 GB/s, Qwen-1.5B Q4_0 tg64
// 36.7-37.4 -> 38.1-39.0 tok/s (37.1-37.3 with shares of 64 groups or fewer per stream storing in place). Not
// measured on AMD; the copy is well under 1% of a group's time. See docs/performance.md.
constexpr int64_t kStageGroups = 64;

// Runs a thread's n_groups row groups (16 rows each) as two streams, groups [0, half) beside [half, n_groups)
// (first_stream_groups): run(i, k, out, two) computes column panel k of group i into out[0] and, if two, of group
// half + i into out[1], continuing from the sums there when k > 0. With n_panels > 1 (packed_panels, one stream)
// the groups go band by band (bands of `band` groups, the first group `phase` groups into its band), each band
// panel after panel. rows: the rows of the groups (the last may have fewer than 16, only they reach y); y: where
// the first goes.
template <class Run>
void run_decode_groups(int64_t n_groups, int64_t half, int64_t rows, float* y, int64_t n_panels, int64_t phase,
                       int64_t band, Run run) {
  auto rows_of = [&](int64_t g) { return g < n_groups ? int(std::min<int64_t>(16, rows - 16 * g)) : 0; };
  alignas(64) float stage[2][kStageGroups][16];
  auto flush = [&](int64_t g0, const float (*from)[16], int64_t count) {
    for (int64_t k = 0; k < count; ++k)
      _mm512_mask_storeu_ps(y + 16 * (g0 + k), __mmask16((1u << rows_of(g0 + k)) - 1), _mm512_load_ps(from[k]));
  };
  for (int64_t i0 = 0; i0 < half; i0 += kStageGroups) {
    const int64_t count = std::min(kStageGroups, half - i0);
    for (int64_t i = i0; i < i0 + count;) {
      const int64_t e = std::min(i0 + count, ((i + phase) / band + 1) * band - phase);  // this band's end
      for (int64_t k = 0; k < n_panels; ++k)
        for (int64_t j = i; j < e; ++j) {
          float* out[2] = {stage[0][j - i0], stage[1][j - i0]};
          run(j, k, out, half + j < n_groups);
        }
      i = e;
    }
    flush(i0, stage[0], count);
    flush(half + i0, stage[1], std::max<int64_t>(0, std::min(count, n_groups - half - i0)));
  }
}

// Intel decode: a line's load after its prefetches, in this order (T1 4 KiB ahead, T0 2 KiB ahead, the load), as
// asm so that the compiler keeps it. On the AMX Xeon plain loads over two streams per thread read 39-40 GB/s so
// and 37 in the order GCC had scheduled (T0 of both streams between their loads, then both T1); the Q4_0 gemvs
// went from 33.5-34.1 to 34.1-34.8 GB/s, Qwen-1.5B Q4_0 / Q8_0 tg64 34.6 / 19.7 -> 36.8 / 21.1 tok/s, V2-Lite
// Q4_0 21.4 -> 22.0 (builds in turns). The packed BF16 groups, which had taken a step's 8 lines into L2 at once,
// with this and two streams: Qwen-1.5B BF16 tg32 9.9-10.1 -> 11.1-11.4 tok/s.
inline __m512i load_prefetched(const uint8_t* line) {
  __m512i v;
  asm volatile("prefetcht1 %c2(%1)\n\tprefetcht0 %c3(%1)\n\tvmovdqu64 (%1), %0"
               : "=v"(v)
               : "r"(line), "i"(kPrefetchL2), "i"(kPrefetchL1), "m"(*reinterpret_cast<const uint8_t(*)[64]>(line)));
  return v;
}

// Decode from packed BF16 / F16 rows: S groups of 16 rows at a time (S = 2: two streams, see kTwoStreams), each
// read front to back, one accumulator per row over the columns in order (the same sums as micro_f, so batches
// and slices give the same bits). Prefetched as the int8 groups are (see kTwoLevelPrefetch): on the AMX Xeon two
// levels took the BF16 gemvs from 76-81% to 86-95% of the probe of that day (1 and 2 threads).

// carry (S = 1, rows in column panels): grp is one panel's piece of cols columns from x on; the sums continue
// from carry (16 accumulators of 16 floats) unless first, and go back there unless last.
template <DType DT, int S, int... P>
void micro_fp_seq(std::integer_sequence<int, P...>, const uint8_t* const* grp, const float* x, int64_t cols,
                  float* const* y, float* carry = nullptr, bool first = true, bool last = true) {
  __m512 lo[S][8], hi[S][8];
  if (first) {
    for (int g = 0; g < S; ++g) ((lo[g][P] = _mm512_setzero_ps(), hi[g][P] = _mm512_setzero_ps()), ...);
  } else {
    ((lo[0][P] = _mm512_load_ps(carry + 16 * P), hi[0][P] = _mm512_load_ps(carry + 16 * (8 + P))), ...);
  }
  const __mmask16 tail = __mmask16((1u << (cols % 16)) - 1);
  const uint8_t* q[S];
  for (int g = 0; g < S; ++g) q[g] = grp[g];
  for (int64_t c = 0; c < cols; c += 16) {
    if (kDecodePrefetch == DecodePrefetch::kAhead)
      for (int g = 0; g < S; ++g)
        for (int l = 0; l < 512; l += 64)
          _mm_prefetch(reinterpret_cast<const char*>(q[g]) + kPrefetchAmd + l, _MM_HINT_T0);
    const __m512 xv = _mm512_maskz_loadu_ps(c + 16 <= cols ? __mmask16(0xffff) : tail, x + c);
    auto pair = [&](int g, int p) {
      __m512 a, b;
      if (kTwoLevelPrefetch) {
        unpack_value<DT>(load_prefetched(q[g] + 64 * p), a, b);
      } else {
        unpack_line<DT>(q[g] + 64 * p, a, b);
      }
      lo[g][p] = _mm512_fmadd_ps(a, xv, lo[g][p]);
      hi[g][p] = _mm512_fmadd_ps(b, xv, hi[g][p]);
    };
    for (int g = 0; g < S; ++g) {
      (pair(g, P), ...);
      q[g] += 512;
    }
  }
  if (!last) {
    ((_mm512_store_ps(carry + 16 * P, lo[0][P]), _mm512_store_ps(carry + 16 * (8 + P), hi[0][P])), ...);
    return;
  }
  for (int g = 0; g < S; ++g) {
    auto store = [&](int p) {
      y[g][2 * p] = _mm512_reduce_add_ps(lo[g][p]);
      y[g][2 * p + 1] = _mm512_reduce_add_ps(hi[g][p]);
    };
    (store(P), ...);
  }
}

// As the int8 groups (rows_p_decode): two streams per thread where first_stream_groups splits the rows.
template <DType DT>
void rows_f_packed(const Weight& w, const float* x, float* y, int64_t r0, int64_t r1) {
  const int64_t gb = int64_t(packed_group_bytes(w)), n_groups = (r1 - r0 + 15) / 16;
  const uint8_t* g0 = w.packed + (r0 / 16) * gb;
  constexpr auto kSeq = std::make_integer_sequence<int, 8>{};
  if (const int64_t n_panels = packed_panels(w); n_panels > 1) {  // one stream, band by band, panel by panel
    const int64_t per = packed_panel_blocks(w), first_group = r0 / 16;
    alignas(64) float carry[kPanelBand][256];
    run_decode_groups(n_groups, n_groups, r1 - r0, y + r0, n_panels, first_group % kPanelBand, kPanelBand,
                      [&](int64_t i, int64_t k, float* const* out, bool) {
                        const uint8_t* g[1] = {w.packed + packed_piece(w, first_group + i, k)};
                        micro_fp_seq<DT, 1>(kSeq, g, x + k * per * 16, std::min(per * 16, w.cols - k * per * 16),
                                            out, carry[(first_group + i) % kPanelBand], k == 0, k + 1 == n_panels);
                      });
    return;
  }
  const int64_t half = first_stream_groups(n_groups, gb);
  run_decode_groups(n_groups, half, r1 - r0, y + r0, 1, 0, n_groups, [&](int64_t i, int64_t, float* const* out,
                                                                           bool two) {
    const uint8_t* g[2] = {g0 + i * gb, g0 + (half + i) * gb};
    if (two) {
      micro_fp_seq<DT, 2>(kSeq, g, x, w.cols, out);
    } else {
      micro_fp_seq<DT, 1>(kSeq, g, x, w.cols, out);
    }
  });
}

template <DType DT>
void rows_f(const Weight& w, const float* x, int64_t n_tokens, float* y, int64_t r0, int64_t r1, float* scratch) {
  if constexpr (DT == DType::BF16 || DT == DType::F16)
    if (w.packed && w.dtype == DT && n_tokens == 1) return rows_f_packed<DT>(w, x, y, r0, r1);
  const int64_t cols = w.cols;
  const int64_t tb = std::min<int64_t>(kMaxBlockTokens, token_block(n_tokens, cols * 4));
  alignas(64) float parts[kMaxBlockTokens / kMaxT * kPart];  // saved accumulators of each token tile
  for (int64_t t0 = 0; t0 < n_tokens; t0 += tb) {
    const int64_t nt = n_tokens - t0 < tb ? n_tokens - t0 : tb;
    for (int64_t r = r0; r < r1; r += kRowTile) {
      const int nr = int(r1 - r < kRowTile ? r1 - r : kRowTile);
      const uint8_t* rows[kRowTile];
      const float* srow[kRowTile] = {};
      bool as_f32 = true;
      if (w.dtype != DT) {  // other dtypes: dequantize the row tile once per token block
        dequantize_rows_avx512(w, r, r + nr, scratch);
      } else if (nt <= kMaxT && !w.packed) {  // one token tile: read (and convert) the weights in place
        as_f32 = DT == DType::F32;
        for (int i = 0; i < nr; ++i) {
          rows[i] = w.row(r + i);
          if constexpr (DT == DType::F8_E4M3) srow[i] = w.scale_inv + ((r + i) / 128) * w.scale_cols();
        }
      } else {  // several token tiles share this row tile: convert (F32: copy, which keeps it in L1) once
        convert_rows<DT>(w, r, nr, scratch);
      }
      if (as_f32 && (w.dtype != DT || nt > kMaxT || w.packed))
        for (int i = 0; i < nr; ++i) rows[i] = reinterpret_cast<const uint8_t*>(scratch + i * cols);
      // Decode from the weights in place: row after row, one stream, except FP8, whose conversion makes one row's
      // single chain of FMAs the limit: its rows go a row tile at a time (independent chains, same sums).
      if (nt == 1 && w.dtype == DT && !w.packed && DT != DType::F8_E4M3) {
        for (int i = 0; i < nr; ++i)
          pick<DT>(1, 1)(rows + i, srow + i, x + t0 * cols, cols, 0, cols, nullptr, y + t0 * w.rows + r + i, w.rows);
        continue;
      }
      if (nt <= kMaxT) {  // one token tile: all columns in one go
        (as_f32 ? pick<DType::F32>(nr, int(nt)) : pick<DT>(nr, int(nt)))(rows, srow, x + t0 * cols, cols, 0, cols,
                                                                          nullptr, y + t0 * w.rows + r, w.rows);
        continue;
      }
      // Several token tiles: long rows go in column blocks, so that one block of the f32 row tile and of a
      // token tile's activations stay in L1 while every token tile passes over it.
      const int64_t cb = cols > kColBlockAbove ? kColBlock : cols;
      for (int64_t c0 = 0; c0 < cols; c0 += cb) {
        const int64_t c1 = cols - c0 <= cb ? cols : c0 + cb;
        for (int64_t t = t0, i = 0; t < t0 + nt; t += kMaxT, ++i) {
          const int tt = int(t0 + nt - t < kMaxT ? t0 + nt - t : kMaxT);
          pick<DType::F32>(nr, tt)(rows, srow, x + t * cols, cols, c0, c1, parts + i * kPart, y + t * w.rows + r,
                                   w.rows);
        }
      }
    }
  }
}

// ---- int8 path ----
// vpdpbusd multiplies unsigned by signed bytes. Q8_0: activations go in as x + 128 (u8) against the signed
// weights, and init = -128·Σw per lane (from the weights) cancels the offset. Q4_0: the nibbles q (0..15) go
// in as u8 against signed activations, and the -8 of (q - 8) is the activation side's -8·Σx per lane (QActs::c).

// Weight pair p (blocks 2p, 2p+1) of a Q8_0 / Q4_0 row: 64 bytes in the QActs byte order, the per-lane block
// scales, and (Q8_0) init. A missing second block (odd rows) reads as zero weights with scale 0.
template <DType DT>
inline void load_pair(const uint8_t* row, int64_t p, bool full, __m512i& wq, __m512& ws, __m512i& init) {
  // Lanes 8-15 (Q8_0) or 4-7, 12-15 (Q4_0) belong to block B; the fp16 scales are blended, then widened.
  constexpr __mmask16 kB = DT == DType::Q8_0 ? 0xff00 : 0xf0f0;
  if constexpr (DT == DType::Q8_0) {
    const BlockQ8_0* b = reinterpret_cast<const BlockQ8_0*>(row) + 2 * p;
    __m256i qa = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[0].qs));
    __m256i qb = full ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[1].qs)) : _mm256_setzero_si256();
    const __m256i dh = _mm256_mask_blend_epi16(kB, _mm256_set1_epi16(short(b[0].d)),
                                               _mm256_set1_epi16(full ? short(b[1].d) : short(0)));
    ws = _mm512_cvtph_ps(dh);
    wq = _mm512_inserti64x4(_mm512_castsi256_si512(qa), qb, 1);
    init = _mm512_sub_epi32(_mm512_setzero_si512(),
                            _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(char(0x80)), wq));
  } else {
    const BlockQ4_0* b = reinterpret_cast<const BlockQ4_0*>(row) + 2 * p;
    __m128i qa = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[0].qs));
    __m128i qb = full ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[1].qs)) : _mm_setzero_si128();
    const __m256i dh = _mm256_mask_blend_epi16(kB, _mm256_set1_epi16(short(b[0].d)),
                                               _mm256_set1_epi16(full ? short(b[1].d) : short(0)));
    ws = _mm512_cvtph_ps(dh);
    __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(qa), qb, 1);  // [A | B] nibble bytes
    const __m256i lo4 = _mm256_set1_epi8(15);
    __m256i lo = _mm256_and_si256(v, lo4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), lo4);
    wq = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);  // [A 0-15 | B 0-15 | A 16-31 | B 16-31]
    init = _mm512_setzero_si512();
  }
}

// Integer dot of one pair, lanes of 4 products, with the offset corrections (see above).
template <DType DT>
inline __m512i dot_pair(__m512i wq, __m512i init, __m512i xv, __m512i xc) {
  if constexpr (DT == DType::Q8_0) return _mm512_dpbusd_epi32(init, xv, wq);
  return _mm512_dpbusd_epi32(xc, wq, xv);
}

// A row tile unpacked once per token block: per row and pair, 192 bytes = wq (64 s8), ws (16 f32), init
// (16 i32), so token tiles after the first skip the unpacking.
constexpr int64_t kUnpackedPair = 192;

template <DType DT>
void unpack_rows(const Weight& w, int64_t r, int nr, int64_t np, uint8_t* out) {
  const int64_t nb = w.cols / kQK;
  for (int i = 0; i < nr; ++i) {
    const uint8_t* row = w.row(r + i);
    for (int64_t p = 0; p < np; ++p) {
      __m512i wq, init;
      __m512 ws;
      load_pair<DT>(row, p, 2 * p + 1 < nb, wq, ws, init);
      uint8_t* o = out + (i * np + p) * kUnpackedPair;
      _mm512_store_si512(o, wq);
      _mm512_store_ps(o + 64, ws);
      _mm512_store_si512(o + 128, init);
    }
  }
}

// w: row pointers (Unpacked: into unpack_rows' output, else the rows themselves).
// Pairs [p0, p1) only; with part, the accumulators continue from / are saved to part as in micro_f_seq.
template <DType DT, bool Unpacked, int R, int T, int... I>
void micro_q_seq(std::integer_sequence<int, I...>, const uint8_t* const* w, const QActs& xq, int64_t n_blocks,
                 int64_t p0, int64_t p1, float* part, float* y, int64_t ldy) {
  __m512 acc[T * R];
  if (p0 > 0) {
    ((acc[I] = _mm512_load_ps(part + 16 * I)), ...);
  } else {
    ((acc[I] = _mm512_setzero_ps()), ...);
  }
  const int64_t np = xq.n_pairs;
  const int64_t next_tile = R > 1 ? (w[1] - w[0]) * R : 0;  // decode: prefetch the next row tile (see micro_f_seq)
  for (int64_t p = p0; p < p1; ++p) {
    __m512i wq[R], init[R], xv[T], xc[T];
    __m512 ws[R], xs[T];
    for (int r = 0; r < R; ++r) {
      if constexpr (Unpacked) {
        const uint8_t* o = w[r] + p * kUnpackedPair;
        wq[r] = _mm512_load_si512(o);
        ws[r] = _mm512_load_ps(o + 64);
        init[r] = _mm512_load_si512(o + 128);
      } else {
        if constexpr (T == 1)
          _mm_prefetch(reinterpret_cast<const char*>(w[r]) + p * (DT == DType::Q8_0 ? 68 : 36) + next_tile, _MM_HINT_T0);
        load_pair<DT>(w[r], p, 2 * p + 1 < n_blocks, wq[r], ws[r], init[r]);
      }
    }
    for (int t = 0; t < T; ++t) {
      xv[t] = _mm512_loadu_si512(xq.q + (t * np + p) * 64);
      xs[t] = _mm512_loadu_ps(xq.s + (t * np + p) * 16);
      if constexpr (DT == DType::Q4_0) xc[t] = _mm512_loadu_si512(xq.c + (t * np + p) * 16);
    }
    ((acc[I] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot_pair<DT>(wq[I % R], init[I % R], xv[I / R], xc[I / R])),
                               _mm512_mul_ps(ws[I % R], xs[I / R]), acc[I])),
     ...);
  }
  if (p1 < np) {
    ((_mm512_store_ps(part + 16 * I, acc[I])), ...);
  } else {
    ((y[(I / R) * ldy + I % R] = _mm512_reduce_add_ps(acc[I])), ...);
  }
}

template <DType DT, bool Unpacked, int R, int T>
void micro_q(const uint8_t* const* w, const QActs& xq, int64_t n_blocks, int64_t p0, int64_t p1, float* part,
             float* y, int64_t ldy) {
  micro_q_seq<DT, Unpacked, R, T>(std::make_integer_sequence<int, R * T>{}, w, xq, n_blocks, p0, p1, part, y,
                                  ldy);
}

using MicroQ = void (*)(const uint8_t* const*, const QActs&, int64_t, int64_t, int64_t, float*, float*, int64_t);

template <DType DT, bool U, int R>
MicroQ pick_q_t(int t) {
  switch (t) {
    case 1: return micro_q<DT, U, R, 1>;
    case 2: return micro_q<DT, U, R, 2>;
    case 3: return micro_q<DT, U, R, 3>;
    default: return micro_q<DT, U, R, 4>;
  }
}
template <DType DT, bool U>
MicroQ pick_q(int r, int t) {
  switch (r) {
    case 1: return pick_q_t<DT, U, 1>(t);
    case 2: return pick_q_t<DT, U, 2>(t);
    case 3: return pick_q_t<DT, U, 3>(t);
    default: return pick_q_t<DT, U, 4>(t);
  }
}

// The activations from token t on.
inline QActs xq_from(const QActs& xq, int64_t t) {
  const int64_t np = xq.n_pairs;
  return QActs{xq.q + t * np * 64, xq.s + t * np * 16, xq.c ? xq.c + t * np * 16 : nullptr, np};
}

template <DType DT>
void rows_q(const Weight& w, const QActs& xq, int64_t n_tokens, float* y, int64_t r0, int64_t r1, uint8_t* scratch) {
  const int64_t np = xq.n_pairs, nb = w.cols / kQK;
  const int64_t tb = std::min<int64_t>(kMaxBlockTokens, token_block(n_tokens, np * 128));
  alignas(64) float parts[kMaxBlockTokens / kMaxT * kPart];  // saved accumulators of each token tile
  // Long rows go in blocks of pairs (as the f32 kernel's column blocks), so a block of the unpacked row tile
  // and of a token tile's activations stay in L1.
  const int64_t pb = np * 64 > kColBlockAbove ? kColBlock / 64 : np;
  for (int64_t t0 = 0; t0 < n_tokens; t0 += tb) {
    const int64_t nt = n_tokens - t0 < tb ? n_tokens - t0 : tb;
    for (int64_t r = r0; r < r1; r += kRowTile) {
      const int nr = int(r1 - r < kRowTile ? r1 - r : kRowTile);
      const bool unpack = nt > kMaxT;
      const uint8_t* rows[kRowTile];
      if (unpack) unpack_rows<DT>(w, r, nr, np, scratch);
      for (int i = 0; i < nr; ++i) rows[i] = unpack ? scratch + i * np * kUnpackedPair : w.row(r + i);
      if (!unpack) {  // one token tile, weights in place: all pairs in one go
        pick_q<DT, false>(nr, int(nt))(rows, xq_from(xq, t0), nb, 0, np, nullptr, y + t0 * w.rows + r, w.rows);
        continue;
      }
      for (int64_t p0 = 0; p0 < np; p0 += pb) {
        const int64_t p1 = np - p0 <= pb ? np : p0 + pb;
        for (int64_t t = t0, i = 0; t < t0 + nt; t += kMaxT, ++i) {
          const int tt = int(t0 + nt - t < kMaxT ? t0 + nt - t : kMaxT);
          pick_q<DT, true>(nr, tt)(rows, xq_from(xq, t), nb, p0, p1, parts + i * kPart, y + t * w.rows + r, w.rows);
        }
      }
    }
  }
}

// ---- packed rows (pack_rows16 layout) ----
// One zmm lane per row of a 16-row group: chunk i of a block (4 columns of 16 rows) goes into one vpdpbusd
// against those 4 columns' activations broadcast to all lanes, so an int8 block of 16 rows costs 8 vpdpbusd
// plus one conversion and one fused multiply-add per token, and in prefill the unpacked weights stay in
// registers across a tile of up to kPT tokens (micro_p_seq). One token (decode) goes through micro_p_one.
// A group's first token tile reads its weights from memory, the other tiles from the caches; the first tile also
// takes the group after it (next, if not null) into L2, each pair's lines beside the pair's own. Without that
// the first tile waited on memory: on the Zen 4 host a copy of this loop over L1-resident weights ran at 78% of
// the vpdpbusd peak and at 68% over weights fresh from memory (6 tiles a group, one thread), 76% with the next
// group prefetched so; bench_kernels' V2-Lite Q4_0 shapes, 48 tokens (an expert's share of a 512-token prefill):
// 292-314 -> 344-359 GFLOP/s on one thread, 595-625 -> 644-687 on two (Q8_0 276-287 -> 311-323, 519-570 ->
// 530-615); V2-Lite Q4_0 pp512 109.2-111.1 -> 116.7-118.9 tok/s, Qwen-1.5B Q8_0 / Q4_0 pp512 +1% (builds in turns).
constexpr int kPT = 8;
// grp: a group's piece of a column panel, nb blocks from block b0 of the rows on; the sums continue from y when
// b0 > 0 (packed_panels).
template <DType DT, int T, int... I>
void micro_p_seq(std::integer_sequence<int, I...>, const uint8_t* grp, const uint8_t* next, int64_t nb,
                 const PActs& xa, int64_t t0, int64_t b0, float* y, int64_t ldy, __mmask16 valid) {
  static_assert(T >= 2);
  __m512 acc[T];
  if (b0 > 0) {
    ((acc[I] = _mm512_maskz_loadu_ps(valid, y + I * ldy)), ...);
  } else {
    ((acc[I] = _mm512_setzero_ps()), ...);
  }
  const int64_t cols = xa.cols, row_blocks = cols / kQK;
  const int32_t* x32[T];
  const float* xs[T];
  const int32_t* xc[T];
  ((x32[I] = reinterpret_cast<const int32_t*>(xa.q + (t0 + I) * cols + b0 * kQK)), ...);
  ((xs[I] = xa.s + (t0 + I) * row_blocks + b0), ...);
  if constexpr (DT == DType::Q4_0) ((xc[I] = xa.c + (t0 + I) * row_blocks + b0), ...);
  const __m512i m4 = _mm512_set1_epi8(15);
  // Block b: its 16 scales at sc, its quants at qb (packed_block()).
  auto block = [&](int64_t b, const uint8_t* sc, const uint8_t* qb) {
    const __m512 ws = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(sc)));
    __m512i w[8];
    __m512i init = _mm512_setzero_si512();
    if constexpr (DT == DType::Q4_0) {
      for (int i = 0; i < 4; ++i) {
        const __m512i v = _mm512_loadu_si512(qb + 64 * i);
        w[i] = _mm512_and_si512(v, m4);
        w[4 + i] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
      }
    } else {
      const __m512i k80 = _mm512_set1_epi8(char(0x80));
      __m512i init2 = _mm512_setzero_si512();
      for (int i = 0; i < 8; ++i) {
        w[i] = _mm512_loadu_si512(qb + 64 * i);
        __m512i& acc_i = i % 2 ? init2 : init;
        acc_i = _mm512_dpbusd_epi32(acc_i, k80, w[i]);  // 128·Σw, cancelled below (x goes in as x + 128)
      }
      init = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_add_epi32(init, init2));
    }
    // Two chains of 4 vpdpbusd per token, added at the end (integer sums: the same bits as one chain).
    auto token = [&](int t) {
      __m512i isum = DT == DType::Q4_0 ? _mm512_set1_epi32(xc[t][b]) : init, isum2 = _mm512_setzero_si512();
      const int32_t* xb = x32[t] + b * 8;
      for (int i = 0; i < 8; ++i) {
        __m512i& acc_i = i % 2 ? isum2 : isum;
        if constexpr (DT == DType::Q4_0) {
          acc_i = _mm512_dpbusd_epi32(acc_i, w[i], _mm512_set1_epi32(xb[i]));  // u8 nibbles · s8 x
        } else {
          acc_i = _mm512_dpbusd_epi32(acc_i, _mm512_set1_epi32(xb[i]), w[i]);  // u8 x + 128 · s8 w
        }
      }
      isum = _mm512_add_epi32(isum, isum2);
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(ws, _mm512_set1_ps(xs[t][b])), acc[t]);
    };
    (token(I), ...);
  };
  constexpr int64_t kQuants = DT == DType::Q8_0 ? 512 : 256, kPair = 64 + 2 * kQuants;
  const uint8_t* p = grp;
  for (int64_t b = 0; b + 1 < nb; b += 2, p += kPair) {
    if (next)
      for (int64_t l = 0; l < kPair; l += 64)
        _mm_prefetch(reinterpret_cast<const char*>(next + (p - grp) + l), _MM_HINT_T1);
    block(b, p, p + 64);
    block(b + 1, p + 32, p + 64 + kQuants);
  }
  if (nb % 2) block(nb - 1, p, p + 32);
  ((_mm512_mask_storeu_ps(y + I * ldy, valid, acc[I])), ...);
}

// One token over S row groups side by side (S = 1, or 2 for decode's two streams, rows_p_decode): a pair of blocks
// of one group, then of the next, each group streamed front to back with every line prefetched ahead (into the
// next row group at a group's end). Per block 8 vpdpbusd in two chains (one token has no other work to hide
// their latency), added at the end: integer sums, so a group's result is the same for any S, and the same as
// micro_p_seq's over a batch. Q4_0 keeps the high nibbles in place (16·q as u8) and shifts their sum once.
// grp[g]: pieces of a column panel as in micro_p_seq (b0 > 0: the sums continue from y[g]).
template <DType DT, int S>
void micro_p_one(const uint8_t* const* grp, int64_t nb, const PActs& xa, int64_t t, int64_t b0, float* const* y,
                 const __mmask16* valid) {
  __m512 acc[S];
  for (int g = 0; g < S; ++g) acc[g] = b0 > 0 ? _mm512_maskz_loadu_ps(valid[g], y[g]) : _mm512_setzero_ps();
  const int64_t row_blocks = xa.cols / kQK;
  const int32_t* x32 = reinterpret_cast<const int32_t*>(xa.q + t * xa.cols + b0 * kQK);
  const float* xs = xa.s + t * row_blocks + b0;
  const int32_t* xc = DT == DType::Q4_0 ? xa.c + t * row_blocks + b0 : nullptr;
  const __m512i m4 = _mm512_set1_epi8(15), m4hi = _mm512_set1_epi8(char(0xf0));
  auto block = [&](__m512& acc_g, int64_t b, const uint8_t* sc, const uint8_t* qb) {
    const __m512 ws = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(sc)));
    __m512i w[8];
    __m512i init = _mm512_setzero_si512();
    if constexpr (DT == DType::Q4_0) {
      for (int i = 0; i < 4; ++i) {
        const __m512i v = kTwoLevelPrefetch ? load_prefetched(qb + 64 * i) : _mm512_loadu_si512(qb + 64 * i);
        w[i] = _mm512_and_si512(v, m4);
        w[4 + i] = _mm512_and_si512(v, m4hi);
      }
    } else {
      const __m512i k80 = _mm512_set1_epi8(char(0x80));
      __m512i init2 = _mm512_setzero_si512();
      for (int i = 0; i < 8; ++i) {
        w[i] = kTwoLevelPrefetch ? load_prefetched(qb + 64 * i) : _mm512_loadu_si512(qb + 64 * i);
        __m512i& acc_i = i % 2 ? init2 : init;
        acc_i = _mm512_dpbusd_epi32(acc_i, k80, w[i]);  // 128·Σw, cancelled below (x goes in as x + 128)
      }
      init = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_add_epi32(init, init2));
    }
    __m512i isum = DT == DType::Q4_0 ? _mm512_set1_epi32(xc[b]) : init, isum2 = _mm512_setzero_si512();
    const int32_t* xb = x32 + b * 8;
    for (int i = 0; i < 8; ++i) {
      __m512i& acc_i = (DT == DType::Q4_0 ? i >= 4 : i % 2) ? isum2 : isum;
      if constexpr (DT == DType::Q4_0) {
        acc_i = _mm512_dpbusd_epi32(acc_i, w[i], _mm512_set1_epi32(xb[i]));  // u8 nibbles · s8 x
      } else {
        acc_i = _mm512_dpbusd_epi32(acc_i, _mm512_set1_epi32(xb[i]), w[i]);  // u8 x + 128 · s8 w
      }
    }
    // Q4_0: isum2 holds 16·Σ q_hi·x, a multiple of 16, so the shift is exact.
    isum = _mm512_add_epi32(isum, DT == DType::Q4_0 ? _mm512_srai_epi32(isum2, 4) : isum2);
    acc_g = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(ws, _mm512_set1_ps(xs[b])), acc_g);
  };
  constexpr int64_t kQuants = DT == DType::Q8_0 ? 512 : 256, kPair = 64 + 2 * kQuants;
  const uint8_t* p[S];
  for (int g = 0; g < S; ++g) p[g] = grp[g];
  for (int64_t b = 0; b + 1 < nb; b += 2) {
    for (int g = 0; g < S; ++g) {
      if (kTwoLevelPrefetch) {
        prefetch_two_levels(p[g]);  // the scales' line (the quants' lines: in block())
      } else if (kDecodePrefetch == DecodePrefetch::kAhead) {
        const char* c = reinterpret_cast<const char*>(p[g]);
        for (int64_t l = 0; l < kPair; l += 64) _mm_prefetch(c + kPrefetchAmd + l, _MM_HINT_T0);
      }
    }
    for (int g = 0; g < S; ++g) block(acc[g], b, p[g], p[g] + 64);
    for (int g = 0; g < S; ++g) block(acc[g], b + 1, p[g] + 32, p[g] + 64 + kQuants);
    for (int g = 0; g < S; ++g) p[g] += kPair;
  }
  if (nb % 2)
    for (int g = 0; g < S; ++g) block(acc[g], nb - 1, p[g], p[g] + 32);
  for (int g = 0; g < S; ++g) _mm512_mask_storeu_ps(y[g], valid[g], acc[g]);
}

template <DType DT, int T>
void micro_p(const uint8_t* grp, const uint8_t* next, int64_t nb, const PActs& xa, int64_t t0, int64_t b0,
             float* y, int64_t ldy, __mmask16 valid) {
  if constexpr (T == 1) {
    (void)next;
    (void)ldy;
    micro_p_one<DT, 1>(&grp, nb, xa, t0, b0, &y, &valid);
  } else {
    micro_p_seq<DT, T>(std::make_integer_sequence<int, T>{}, grp, next, nb, xa, t0, b0, y, ldy, valid);
  }
}

using MicroP = void (*)(const uint8_t*, const uint8_t*, int64_t, const PActs&, int64_t, int64_t, float*, int64_t,
                        __mmask16);

template <DType DT>
MicroP pick_p(int t) {
  switch (t) {
    case 1: return micro_p<DT, 1>;
    case 2: return micro_p<DT, 2>;
    case 3: return micro_p<DT, 3>;
    case 4: return micro_p<DT, 4>;
    case 5: return micro_p<DT, 5>;
    case 6: return micro_p<DT, 6>;
    case 7: return micro_p<DT, 7>;
    default: return micro_p<DT, 8>;
  }
}


// The column panels of packed rows (packed_panels): panel k's first block and block count.
struct Panels {
  int64_t n, per, blocks;  // panels, blocks per panel, blocks per row
  int64_t first(int64_t k) const { return k * per; }
  int64_t size(int64_t k) const { return std::min(per, blocks - k * per); }
};
inline Panels panels_of(const Weight& w) { return {packed_panels(w), packed_panel_blocks(w), w.cols / kQK}; }

// Rows of several column panels are one stream per thread (their bands are, see linear.h); others may take two.
template <DType DT>
void rows_p_decode(const Weight& w, const PActs& xa, float* y, int64_t r0, int64_t r1) {
  const Panels pn = panels_of(w);
  const int64_t n_groups = (r1 - r0 + 15) / 16, g0 = r0 / 16;
  const int64_t half = pn.n > 1 ? n_groups : first_stream_groups(n_groups, 16 * int64_t(w.row_bytes()));
  run_decode_groups(n_groups, half, r1 - r0, y + r0, pn.n, g0 % kPanelBand, kPanelBand,
                    [&](int64_t i, int64_t k, float* const* out, bool two) {
    const uint8_t* g[2] = {w.packed + packed_piece(w, g0 + i, k),
                           two ? w.packed + packed_piece(w, g0 + half + i, k) : nullptr};
    static constexpr __mmask16 m[2] = {0xffff, 0xffff};
    if (two) {
      micro_p_one<DT, 2>(g, pn.size(k), xa, 0, pn.first(k), out, m);
    } else {
      micro_p_one<DT, 1>(g, pn.size(k), xa, 0, pn.first(k), out, m);
    }
  });
}

template <DType DT>
void rows_p(const Weight& w, const PActs& xa, int64_t n_tokens, float* y, int64_t r0, int64_t r1) {
  if (n_tokens == 1) return rows_p_decode<DT>(w, xa, y, r0, r1);
  const Panels pn = panels_of(w);
  // Tokens per block: their activations (cols bytes each) stay in L2 while the thread's row groups pass.
  const int64_t tb = std::max<int64_t>(64, (256 << 10) / w.cols) / kPT * kPT;
  for (int64_t t0 = 0; t0 < n_tokens; t0 += tb) {
    const int64_t t1 = std::min(n_tokens, t0 + tb);
    for (int64_t r = r0; r < r1; r += 16) {
      const __mmask16 valid = __mmask16((1u << std::min<int64_t>(16, r1 - r)) - 1);
      for (int64_t k = 0; k < pn.n; ++k) {
        const uint8_t* grp = w.packed + packed_piece(w, r / 16, k);
        // The piece the thread reads next: this group's next panel, the next group's first, or the first again
        // for the next token block.
        const uint8_t* next = k + 1 < pn.n     ? w.packed + packed_piece(w, r / 16, k + 1)
                              : r + 16 < r1    ? w.packed + packed_piece(w, r / 16 + 1, 0)
                              : t1 < n_tokens ? w.packed + packed_piece(w, r0 / 16, 0)
                                              : nullptr;
        for (int64_t t = t0; t < t1; t += kPT) {
          const int tt = int(std::min<int64_t>(kPT, t1 - t));
          pick_p<DT>(tt)(grp, t == t0 ? next : nullptr, pn.size(k), xa, t, pn.first(k), y + t * w.rows + r, w.rows,
                         valid);
        }
      }
    }
  }
}

}  // namespace

void rows_packed_avx512(const Weight& w, const PActs& xa, int64_t n_tokens, float* y, int64_t r0, int64_t r1) {
  if (w.dtype == DType::Q8_0) return rows_p<DType::Q8_0>(w, xa, n_tokens, y, r0, r1);
  return rows_p<DType::Q4_0>(w, xa, n_tokens, y, r0, r1);
}

void quantize_acts_plain_avx512(const float* x, int64_t cols, DType wtype, uint8_t* q, float* s, int32_t* c) {
  const int64_t nb = cols / kQK;
  const bool q8 = wtype == DType::Q8_0;
  const __m512i off = _mm512_set1_epi32(q8 ? 128 : 0);
  for (int64_t b = 0; b < nb; ++b, x += kQK, q += kQK) {
    const __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    const float db = amax / 127.0f;
    const float id = db != 0 ? 1.0f / db : 0.0f;
    const __m512 vid = _mm512_set1_ps(id);
    const __m512i i0 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(v0, vid), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512i i1 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(v1, vid), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m128i b0 = _mm512_cvtepi32_epi8(_mm512_add_epi32(i0, off)), b1 = _mm512_cvtepi32_epi8(_mm512_add_epi32(i1, off));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q), b0);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16), b1);
    s[b] = db;
    // Σ of the bytes as stored (bounded, whatever the input: non-finite values convert to INT_MIN before the
    // truncation to 8 bits, and summing those would overflow).
    if (!q8) c[b] = -8 * _mm512_reduce_add_epi32(_mm512_add_epi32(_mm512_cvtepi8_epi32(b0), _mm512_cvtepi8_epi32(b1)));
  }
}

void rows_avx512(const Weight& w, const float* x, int64_t n_tokens, float* y, int64_t r0, int64_t r1,
                 float* scratch) {
  switch (w.dtype) {
    case DType::BF16: return rows_f<DType::BF16>(w, x, n_tokens, y, r0, r1, scratch);
    case DType::F16: return rows_f<DType::F16>(w, x, n_tokens, y, r0, r1, scratch);
    case DType::F8_E4M3: return rows_f<DType::F8_E4M3>(w, x, n_tokens, y, r0, r1, scratch);
    default: return rows_f<DType::F32>(w, x, n_tokens, y, r0, r1, scratch);  // F32, or dequantized rows
  }
}

void rows_q8_avx512(const Weight& w, const QActs& xq, int64_t n_tokens, float* y, int64_t r0, int64_t r1,
                    void* scratch) {
  uint8_t* s = static_cast<uint8_t*>(scratch);
  if (w.dtype == DType::Q8_0) return rows_q<DType::Q8_0>(w, xq, n_tokens, y, r0, r1, s);
  return rows_q<DType::Q4_0>(w, xq, n_tokens, y, r0, r1, s);
}

void quantize_acts_avx512(const float* x, int64_t cols, DType wtype, uint8_t* q, float* s, int32_t* c) {
  const int64_t nb = cols / kQK, np = (nb + 1) / 2;
  const bool q8 = wtype == DType::Q8_0;
  const __m512i off = _mm512_set1_epi32(q8 ? 128 : 0);  // Q8_0 takes x + 128 as u8, Q4_0 x as s8
  for (int64_t b = 0; b < nb; ++b, x += kQK) {
    __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    const float db = amax / 127.0f;
    const float id = db != 0 ? 1.0f / db : 0.0f;
    const __m512 vid = _mm512_set1_ps(id);
    // Round to nearest even, as quantize_activations_q8's nearbyint.
    __m128i q0 = _mm512_cvtepi32_epi8(_mm512_add_epi32(
        _mm512_cvt_roundps_epi32(_mm512_mul_ps(v0, vid), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), off));
    __m128i q1 = _mm512_cvtepi32_epi8(_mm512_add_epi32(
        _mm512_cvt_roundps_epi32(_mm512_mul_ps(v1, vid), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), off));
    const int64_t p = b / 2, half = b % 2;
    uint8_t* dst = q + p * 64;
    if (q8) {  // pair = [A 0-31 | B 0-31]
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + half * 32), q0);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + half * 32 + 16), q1);
    } else {  // pair = [A 0-15 | B 0-15 | A 16-31 | B 16-31], matching the nibble unpacking of Q4_0
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + half * 16), q0);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 32 + half * 16), q1);
    }
    // Lane scales: lanes 0-7 block A, 8-15 block B (Q8_0); lanes 0-3, 8-11 A and 4-7, 12-15 B (Q4_0).
    for (int l = 0; l < 16; ++l)
      if ((q8 ? l / 8 : (l / 4) % 2) == half) s[p * 16 + l] = db;
  }
  if (nb % 2) {  // padding block of an odd row: x = 0 with scale 0
    uint8_t* dst = q + (np - 1) * 64;
    if (q8) {
      std::memset(dst + 32, 0x80, 32);
    } else {
      std::memset(dst + 16, 0, 16);
      std::memset(dst + 48, 0, 16);
    }
    for (int l = 0; l < 16; ++l)
      if ((q8 ? l / 8 : (l / 4) % 2) == 1) s[(np - 1) * 16 + l] = 0;
  }
  if (!q8) {  // c = -8·Σ (4 activations of the lane)
    for (int64_t p = 0; p < np; ++p) {
      const __m512i xv = _mm512_loadu_si512(q + p * 64);
      const __m512i sum8 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(8), xv);
      _mm512_storeu_si512(c + p * 16, _mm512_sub_epi32(_mm512_setzero_si512(), sum8));
    }
  }
}

}  // namespace dm::kern

#pragma GCC pop_options
