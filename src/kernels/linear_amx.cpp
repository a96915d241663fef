// AMX kernels of linear() for batches of tokens: tile dot products of bf16 pairs (tdpbf16ps) with f32 sums.
// Activations are rounded to bf16 once per call (A tiles: 16 tokens x 32 columns, read in place from that copy);
// packed weights (pack_rows16 layout) are converted, for a panel of rows at a time, to B tiles of bf16: Q8_0 and
// Q4_0 as q · d rounded once to bf16 (the block scale folded into each weight), BF16 as stored, F16 rounded to
// bf16. A panel is built once per row chunk and serves every token, so the conversion costs O(rows · cols) while
// the products cost O(tokens · rows · cols); the panel and a block of the activations stay in L2.
// Register blocking: 2 A tiles x 2 B tiles into 4 accumulator tiles (tmm0-3 C, tmm4-5 A, tmm6-7 B).
// CPUs with AVX512-BF16 but no AMX (AMD Zen 4 and 5) run the same panels with vdpbf16ps (rows_dpbf16), for BF16 /
// F16 weights whose batches may round x to bf16 (Weight::bf16_acts): twice the f32 FMA rate.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "core/error.h"
#include "kernels/linear_kernels.h"
#include "kernels/quant.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,amx-tile,amx-bf16,fma,f16c")
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12 false positives inside its intrinsic headers
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace dm::kern {
namespace {

// The LDTILECFG operand: palette 1, every tile 16 rows of 64 bytes.
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

void configure_tiles() {
  TileConfig c;
  for (int i = 0; i < 8; ++i) {
    c.colsb[i] = 64;
    c.rows[i] = 16;
  }
  _tile_loadconfig(&c);
}

constexpr int64_t kTileBytes = 1024;  // one B tile: 16 lines of 64 bytes

// Words 0-15 of v to the even, 16-31 to the odd halfwords: two 16-value halves into 16 interleaved pairs.
inline __m512i interleave_halves(__m512i v) {
  const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                       21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(idx, v);
}

// One B-tile line: lane n = (bf16(a[n]) | bf16(b[n]) << 16), a and b the weights of row n at two consecutive
// columns.
inline void store_line(uint8_t* line, __m512 a, __m512 b) {
  _mm512_store_si512(line, interleave_halves(__m512i(_mm512_cvtne2ps_pbh(b, a))));
}

// B tile of block b of group g of packed Q8_0 / Q4_0 rows: line k holds columns 2k, 2k+1 of the block for the
// 16 rows. Chunk i of the packed block is 4 columns of the 16 rows (one int32 lane per row).
template <DType DT>
void b_tile_quant(const Weight& w, int64_t g, int64_t b, uint8_t* out) {
  const int64_t per = packed_panel_blocks(w), k = b / per;
  const uint8_t* piece = w.packed + packed_piece(w, g, k);
  const PackedBlock pb = packed_block(DT, std::min(per, w.cols / kQK - k * per), b - k * per);
  const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(piece + pb.scales)));
  const uint8_t* q = piece + pb.quants;
  auto weights = [&](__m512i v) { return _mm512_mul_ps(_mm512_cvtepi32_ps(v), d); };
  if constexpr (DT == DType::Q8_0) {
    for (int i = 0; i < 8; ++i) {
      const __m512i v = _mm512_loadu_si512(q + 64 * i);
      const __m512 w0 = weights(_mm512_srai_epi32(_mm512_slli_epi32(v, 24), 24));
      const __m512 w1 = weights(_mm512_srai_epi32(_mm512_slli_epi32(v, 16), 24));
      const __m512 w2 = weights(_mm512_srai_epi32(_mm512_slli_epi32(v, 8), 24));
      const __m512 w3 = weights(_mm512_srai_epi32(v, 24));
      store_line(out + (2 * i) * 64, w0, w1);
      store_line(out + (2 * i + 1) * 64, w2, w3);
    }
  } else {
    static_assert(DT == DType::Q4_0);
    const __m512i m4 = _mm512_set1_epi32(15), k8 = _mm512_set1_epi32(8);
    auto nib = [&](__m512i v, int shift) {
      return weights(_mm512_sub_epi32(_mm512_and_si512(_mm512_srli_epi32(v, shift), m4), k8));
    };
    for (int i = 0; i < 4; ++i) {  // byte j of chunk i: column 4i + j (low nibble), 16 + 4i + j (high)
      const __m512i v = _mm512_loadu_si512(q + 64 * i);
      store_line(out + (2 * i) * 64, nib(v, 0), nib(v, 8));
      store_line(out + (2 * i + 1) * 64, nib(v, 16), nib(v, 24));
      store_line(out + (8 + 2 * i) * 64, nib(v, 4), nib(v, 12));
      store_line(out + (8 + 2 * i + 1) * 64, nib(v, 20), nib(v, 28));
    }
  }
}

// B tile of columns [32k, 32k + 32) of a packed BF16 / F16 group. A packed chunk is 16 columns in 8 lines of row
// pairs, halfword 2c = row 2p, 2c + 1 = row 2p + 1 at column c (F16: first converted to that form). Line k of the
// tile takes qword k of every pair line (columns 2k, 2k + 1 of rows 2p, 2p + 1) with the words reordered to
// (row 2p: 2k, 2k+1 | row 2p+1: 2k, 2k+1): a word shuffle, then an 8x8 transpose of qwords.
template <DType DT>
void b_tile_float(const Weight& w, int64_t g, int64_t k, uint8_t* out) {
  const int64_t n_chunks = (w.cols + 15) / 16, per = packed_panel_blocks(w);
  const __m512i words = _mm512_set_epi8(15, 14, 11, 10, 13, 12, 9, 8, 7, 6, 3, 2, 5, 4, 1, 0,  //
                                        15, 14, 11, 10, 13, 12, 9, 8, 7, 6, 3, 2, 5, 4, 1, 0,  //
                                        15, 14, 11, 10, 13, 12, 9, 8, 7, 6, 3, 2, 5, 4, 1, 0,  //
                                        15, 14, 11, 10, 13, 12, 9, 8, 7, 6, 3, 2, 5, 4, 1, 0);
  for (int h = 0; h < 2; ++h) {
    const int64_t ch = 2 * k + h;
    uint8_t* o = out + h * 8 * 64;
    if (ch >= n_chunks) {  // columns past the row (zero activations meet zero weights)
      for (int l = 0; l < 8; ++l) _mm512_store_si512(o + l * 64, _mm512_setzero_si512());
      continue;
    }
    const uint8_t* c = packed_chunk(w, g, ch, per);
    __m512i r[8];
    for (int p = 0; p < 8; ++p) {
      __m512i v;
      if constexpr (DT == DType::BF16) {
        v = _mm512_loadu_si512(c + 64 * p);
      } else {
        static_assert(DT == DType::F16);
        const __m512 lo = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + 64 * p)));
        const __m512 hi = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + 64 * p + 32)));
        v = interleave_halves(__m512i(_mm512_cvtne2ps_pbh(hi, lo)));
      }
      r[p] = _mm512_shuffle_epi8(v, words);
    }
    // 8x8 transpose of qwords: line l of the result = qword l of r[0..7].
    __m512i t[8], u[8];
    for (int p = 0; p < 8; p += 2) {
      t[p] = _mm512_unpacklo_epi64(r[p], r[p + 1]);  // qwords (0,2,4,6) of p and p+1 interleaved
      t[p + 1] = _mm512_unpackhi_epi64(r[p], r[p + 1]);
    }
    for (int p = 0; p < 8; p += 4)
      for (int j = 0; j < 2; ++j) {
        u[p + j] = _mm512_shuffle_i64x2(t[p + j], t[p + 2 + j], 0x88);      // 128-bit lanes 0, 2 of each
        u[p + 2 + j] = _mm512_shuffle_i64x2(t[p + j], t[p + 2 + j], 0xdd);  // lanes 1, 3
      }
    for (int j = 0; j < 4; ++j) {  // u[j], u[4 + j]: columns j and 4 + j of rows 0-3 and 4-7
      _mm512_store_si512(o + j * 64, _mm512_shuffle_i64x2(u[j], u[4 + j], 0x88));
      _mm512_store_si512(o + (j + 4) * 64, _mm512_shuffle_i64x2(u[j], u[4 + j], 0xdd));
    }
  }
}

// The B tiles of rows [r, r + 16 · n_groups) for all column tiles: panel[g][k] at (g · n_k + k) · 1 KiB, so each
// group's tiles are one forward stream.
void build_panel(const Weight& w, int64_t r, int n_groups, int64_t n_k, uint8_t* panel) {
  for (int g = 0; g < n_groups; ++g) {
    for (int64_t k = 0; k < n_k; ++k) {
      uint8_t* out = panel + (g * n_k + k) * kTileBytes;
      switch (w.dtype) {
        case DType::Q8_0: b_tile_quant<DType::Q8_0>(w, r / 16 + g, k, out); break;
        case DType::Q4_0: b_tile_quant<DType::Q4_0>(w, r / 16 + g, k, out); break;
        case DType::BF16: b_tile_float<DType::BF16>(w, r / 16 + g, k, out); break;
        default: b_tile_float<DType::F16>(w, r / 16 + g, k, out); break;
      }
    }
  }
}

// _tile_stored names its tile in the instruction text, so the tile number must be a literal.
template <int Tile>
inline void tile_store(void* p, int64_t stride) {
  if constexpr (Tile == 0) _tile_stored(0, p, stride);
  if constexpr (Tile == 1) _tile_stored(1, p, stride);
  if constexpr (Tile == 2) _tile_stored(2, p, stride);
  if constexpr (Tile == 3) _tile_stored(3, p, stride);
}

// Accumulator tile (tokens t0.., rows r0..) to y: in place when whole, else through tmp.
template <int Tile>
inline void store_c(float* y, int64_t ldy, int64_t n_t, int64_t n_r, float* tmp) {
  n_t = std::min<int64_t>(n_t, 16);
  n_r = std::min<int64_t>(n_r, 16);
  if (n_t == 16 && n_r == 16) {
    tile_store<Tile>(y, ldy * 4);
    return;
  }
  tile_store<Tile>(tmp, 64);
  const __mmask16 m = __mmask16((1u << n_r) - 1);
  for (int64_t t = 0; t < n_t; ++t) _mm512_mask_storeu_ps(y + t * ldy, m, _mm512_loadu_ps(tmp + t * 16));
}

// Tokens [t, t + 16·MT) against the panel's row groups [g, g + NT) over all n_k column tiles; each column tile
// of the activations is S tiles (its bf16 parts, see BActs) against the same B tile.
// a: the first A tile of the token tile, the next token tile 16 · lda values on; b: group g's first B tile, group
// g + 1's n_k tiles on.
template <int MT, int NT, int S>
void micro(const uint16_t* a, int64_t lda, const uint8_t* b, int64_t n_k) {
  _tile_zero(0);
  if constexpr (NT == 2) _tile_zero(1);
  if constexpr (MT == 2) _tile_zero(2);
  if constexpr (MT == 2 && NT == 2) _tile_zero(3);
  const int64_t next_group = n_k * kTileBytes;
  for (int64_t k = 0; k < n_k; ++k, b += kTileBytes) {
    _tile_loadd(6, b, 64);
    if constexpr (NT == 2) _tile_loadd(7, b + next_group, 64);
    for (int s = 0; s < S; ++s) {
      const uint16_t* as = a + (k * S + s) * 512;
      _tile_loadd(4, as, 64);
      if constexpr (MT == 2) _tile_loadd(5, as + 16 * lda, 64);
      _tile_dpbf16ps(0, 4, 6);
      if constexpr (NT == 2) _tile_dpbf16ps(1, 4, 7);
      if constexpr (MT == 2) _tile_dpbf16ps(2, 5, 6);
      if constexpr (MT == 2 && NT == 2) _tile_dpbf16ps(3, 5, 7);
    }
  }
}

template <int MT, int NT, int S>
void micro_store(const uint16_t* a, int64_t lda, const uint8_t* b, int64_t n_k, float* y, int64_t ldy, int64_t n_t,
                 int64_t n_r, float* tmp) {
  micro<MT, NT, S>(a, lda, b, n_k);
  store_c<0>(y, ldy, n_t, n_r, tmp);
  if constexpr (NT == 2) store_c<1>(y + 16, ldy, n_t, n_r - 16, tmp);
  if constexpr (MT == 2) store_c<2>(y + 16 * ldy, ldy, n_t - 16, n_r, tmp);
  if constexpr (MT == 2 && NT == 2) store_c<3>(y + 16 * ldy + 16, ldy, n_t - 16, n_r - 16, tmp);
}

}  // namespace

int amx_bf16_loop(int64_t iters) {
  configure_tiles();
  alignas(64) uint16_t ab[512];
  alignas(64) float c[256];
  for (int i = 0; i < 512; ++i) ab[i] = 0x3c00;  // bf16 1/128: sums stay exact and finite
  _tile_loadd(4, ab, 64);
  _tile_loadd(6, ab, 64);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int64_t i = 0; i < iters; ++i) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 6);
    _tile_dpbf16ps(2, 4, 6);
    _tile_dpbf16ps(3, 4, 6);
  }
  _tile_stored(0, c, 64);
  _tile_release();
  return int(c[0]) & 0x7fff;
}

int64_t amx_panel_rows(int64_t cols) {
  const int64_t kp = (cols + 31) / 32 * 32;
  return std::clamp<int64_t>((1 << 20) / (kp * 2) / 32 * 32, 32, 128);
}

void convert_acts_bf16_amx(const float* x, int64_t cols, int splits, uint16_t* acts, int64_t ld, int64_t t) {
  uint16_t* out = acts + t / 16 * 16 * ld + t % 16 * 32;  // row t % 16 of the first tile of its token tile
  const int64_t n_k = ld / (32 * splits);
  for (int64_t k = 0; k < n_k; ++k) {
    for (int h = 0; h < 2; ++h) {
      const int64_t c = 32 * k + 16 * h, n = x ? std::clamp<int64_t>(cols - c, 0, 16) : 0;
      const __mmask16 m = __mmask16((1u << n) - 1);
      __m512 rest = n ? _mm512_maskz_loadu_ps(m, x + c) : _mm512_setzero_ps();
      for (int s = 0; s < splits; ++s) {  // part s: bf16 of what the parts before it left (exact in f32)
        const __m256i part = __m256i(_mm512_cvtneps_pbh(rest));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + (k * splits + s) * 512 + 16 * h), part);
        rest = _mm512_sub_ps(rest, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(part), 16)));
      }
    }
  }
}

namespace {

// Rows [r0, r1) a panel of panel_rows at a time (built into `panel`), tokens in blocks of tb (their activations
// stay in L2 while the panel's groups pass over them), in each block the panel's groups two at a time over token
// tiles of `tile` tokens: tile(b, t, n_t, rg, n_r) with b the first group's B tiles, t the tile's first token, rg
// its first row, n_t / n_r the tokens and rows left from there.
template <class Tile>
void over_panels(const Weight& w, int64_t n_k, int64_t n_tokens, int64_t r0, int64_t r1, int64_t panel_rows,
                 int64_t tb, int64_t tile_tokens, uint8_t* panel, Tile tile) {
  for (int64_t r = r0; r < r1; r += panel_rows) {
    const int64_t rp = std::min(r1, r + panel_rows);
    const int n_groups = int((rp - r + 15) / 16);
    build_panel(w, r, n_groups, n_k, panel);
    for (int64_t t0 = 0; t0 < n_tokens; t0 += tb) {
      const int64_t t1 = std::min(n_tokens, t0 + tb);
      for (int g = 0; g < n_groups; g += 2)
        for (int64_t t = t0; t < t1; t += tile_tokens)
          tile(panel + g * n_k * kTileBytes, t, t1 - t, r + 16 * g, rp - r - 16 * g);
    }
  }
}

template <int S>
void rows_amx_s(const Weight& w, const BActs& xa, int64_t n_tokens, float* y, int64_t r0, int64_t r1,
                void* scratch) {  configure_tiles();
  const int64_t n_k = xa.ld / (32 * S), panel_rows = amx_panel_rows(w.cols);
  uint8_t* panel = static_cast<uint8_t*>(scratch);
  float* tmp = reinterpret_cast<float*>(panel + (panel_rows / 16) * n_k * kTileBytes);
  const int64_t tb = std::max<int64_t>(32, (512 << 10) / (xa.ld * 2) / 32 * 32);
  over_panels(w, n_k, n_tokens, r0, r1, panel_rows, tb, 32, panel,
              [&](const uint8_t* b, int64_t t, int64_t n_t, int64_t rg, int64_t n_r) {
                const uint16_t* a = xa.x + t * xa.ld;  // t is a multiple of 16: its token tile
                float* yt = y + t * w.rows + rg;
                if (n_t > 16 && n_r > 16) {
                  micro_store<2, 2, S>(a, xa.ld, b, n_k, yt, w.rows, n_t, n_r, tmp);
                } else if (n_t > 16) {
                  micro_store<2, 1, S>(a, xa.ld, b, n_k, yt, w.rows, n_t, n_r, tmp);
                } else if (n_r > 16) {
                  micro_store<1, 2, S>(a, xa.ld, b, n_k, yt, w.rows, n_t, n_r, tmp);
                } else {
                  micro_store<1, 1, S>(a, xa.ld, b, n_k, yt, w.rows, n_t, n_r, tmp);
                }
              });
  _tile_release();
}

// AVX512-BF16 without AMX: the same panels and activations (one bf16 part), vdpbf16ps on zmm registers. Line l of
// column tile k (16 rows x columns 32k + 2l, + 1) meets each token's pair of activations broadcast to every lane:
// NG row groups x T tokens of f32 sums in registers, no reduction at the end. Per (token, row) the pairs go into
// one lane in column order, whatever the tiling: batch and thread invariant.
// at: token 0's row of its A tile (tokens 1.. follow 32 values apart, within one 16-token tile); b: group 0's
// first B tile, group 1's next_group bytes on. Rows past n_r are not stored.
template <int NG, int T, int... I>
void micro_dp_seq(std::integer_sequence<int, I...>, const uint16_t* at, const uint8_t* b, int64_t n_k,
                  int64_t next_group, float* y, int64_t ldy, int64_t n_r) {
  __m512 acc[NG * T];
  ((acc[I] = _mm512_setzero_ps()), ...);
  for (int64_t k = 0; k < n_k; ++k, b += kTileBytes) {
    const int32_t* xk = reinterpret_cast<const int32_t*>(at + k * 512);
#pragma GCC unroll 16
    for (int l = 0; l < 16; ++l) {
      __m512bh w[NG];
      for (int g = 0; g < NG; ++g) w[g] = __m512bh(_mm512_load_si512(b + g * next_group + l * 64));
      __m512bh x[T];
      for (int t = 0; t < T; ++t) x[t] = __m512bh(_mm512_set1_epi32(xk[t * 16 + l]));
      ((acc[I] = _mm512_dpbf16_ps(acc[I], w[I / T], x[I % T])), ...);
    }
  }
  auto store = [&](int i) {
    const int64_t n = std::clamp<int64_t>(n_r - 16 * (i / T), 0, 16);
    _mm512_mask_storeu_ps(y + (i % T) * ldy + 16 * (i / T), __mmask16((1u << n) - 1), acc[i]);
  };
  (store(I), ...);
}

template <int NG, int T>
void micro_dp(const uint16_t* at, const uint8_t* b, int64_t n_k, int64_t next_group, float* y, int64_t ldy,
              int64_t n_r) {
  micro_dp_seq<NG, T>(std::make_integer_sequence<int, NG * T>{}, at, b, n_k, next_group, y, ldy, n_r);
}

using MicroDp = void (*)(const uint16_t*, const uint8_t*, int64_t, int64_t, float*, int64_t, int64_t);

constexpr int kDpTokens = 8;  // tokens per register tile

template <int NG>
MicroDp pick_dp(int64_t t) {
  switch (t) {
    case 1: return micro_dp<NG, 1>;
    case 2: return micro_dp<NG, 2>;
    case 3: return micro_dp<NG, 3>;
    case 4: return micro_dp<NG, 4>;
    case 5: return micro_dp<NG, 5>;
    case 6: return micro_dp<NG, 6>;
    case 7: return micro_dp<NG, 7>;
    default: return micro_dp<NG, 8>;
  }
}

}  // namespace

int64_t dpbf16_panel_rows(int64_t cols) {
  const int64_t kp = (cols + 31) / 32 * 32;
  return std::clamp<int64_t>((384 << 10) / (kp * 2) / 32 * 32, 32, 256);
}

void rows_dpbf16(const Weight& w, const BActs& xa, int64_t n_tokens, float* y, int64_t r0, int64_t r1,
                 void* scratch) {
  DM_CHECK(xa.splits == 1, "rows_dpbf16: activations in ", xa.splits, " parts");
  const int64_t n_k = xa.ld / 32, panel_rows = dpbf16_panel_rows(w.cols);
  uint8_t* panel = static_cast<uint8_t*>(scratch);
  // Tokens per block: their activations (256 KiB at most) stay in L2 beside the panel (1 MiB of L2 on Zen 4).
  const int64_t tb = std::max<int64_t>(16, (256 << 10) / (xa.ld * 2) / 16 * 16);
  over_panels(w, n_k, n_tokens, r0, r1, panel_rows, tb, kDpTokens, panel,
              [&](const uint8_t* b, int64_t t, int64_t n_t, int64_t rg, int64_t n_r) {
                const uint16_t* at = xa.x + t / 16 * 16 * xa.ld + t % 16 * 32;
                n_t = std::min<int64_t>(kDpTokens, n_t);
                (n_r > 16 ? pick_dp<2>(n_t) : pick_dp<1>(n_t))(at, b, n_k, n_k * kTileBytes, y + t * w.rows + rg,
                                                                w.rows, n_r);
              });
}

void rows_amx(const Weight& w, const BActs& xa, int64_t n_tokens, float* y, int64_t r0, int64_t r1, void* scratch) {
  switch (xa.splits) {
    case 1: return rows_amx_s<1>(w, xa, n_tokens, y, r0, r1, scratch);
    case 2: return rows_amx_s<2>(w, xa, n_tokens, y, r0, r1, scratch);
    default: return rows_amx_s<3>(w, xa, n_tokens, y, r0, r1, scratch);
  }
}

}  // namespace dm::kern

#pragma GCC pop_options
