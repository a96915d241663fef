// Internal interface between linear()'s dispatcher (linear.cpp) and its per-instruction-set kernels
// (linear_avx512.cpp, linear_avx2.cpp). Each kernel computes y[t, r] for all tokens and a range of rows.
// Not for use outside src/kernels.
#pragma once
#include <cstdint>

#include "kernels/linear.h"

namespace dm::kern {

// Activations quantized for the int8 (VNNI) kernels, token after token. Blocks of 32 go in pairs of 64 bytes;
// the byte order inside a pair matches how the kernel unpacks that weight dtype (see quantize_acts_avx512).
struct QActs {
  const uint8_t* q = nullptr;  // [n_tokens][n_pairs * 64]: quantized x, as u8 x + 128 (Q8_0) or s8 x (Q4_0)
  const float* s = nullptr;    // [n_tokens][n_pairs * 16]: the block scale of each int32 lane of a pair's dot
                               // product (0 for the padding block of odd rows)
  const int32_t* c = nullptr;  // Q4_0: [n_tokens][n_pairs * 16]: -8·Σ of each lane's 4 activations; else null
  int64_t n_pairs = 0;
};

// Rows kept in registers per micro-tile; threads split rows on multiples of it.
constexpr int64_t kRowTile = 4;

// F32/BF16/F16/F8_E4M3 from the weights directly; other dtypes dequantize kRowTile rows at a time into scratch
// ([kRowTile, cols] floats) and use the f32 kernel. Per (token, row): one vector accumulator over the columns in
// order, so the result does not depend on n_tokens, [r0, r1) or the tiling.
void rows_avx512(const Weight& w, const float* x, int64_t n_tokens, float* y, int64_t r0, int64_t r1,
                 float* scratch);
void rows_avx2(const Weight& w, const float* x, int64_t n_tokens, float* y, int64_t r0, int64_t r1,
               float* scratch);

// dequantize_rows() with AVX-512 for the K-quants (bit-identical to the scalar reference); others fall back.
void dequantize_rows_avx512(const Weight& w, int64_t r0, int64_t r1, float* out);

// Q8_0 / Q4_0 weights against QActs (AVX-512 VNNI). scratch: q8_scratch_bytes(cols), 64-byte aligned.
void rows_q8_avx512(const Weight& w, const QActs& xq, int64_t n_tokens, float* y, int64_t r0, int64_t r1,
                    void* scratch);
inline size_t q8_scratch_bytes(int64_t cols) { return size_t(kRowTile * (cols / 64 + 1) * 192); }
// Quantizes one token's activations (cols values) for weights of dtype wtype (Q8_0 or Q4_0): the same q and
// scales as quantize_activations_q8, laid out as QActs. q: [n_pairs * 64], s, c: [n_pairs * 16] (c: Q4_0 only).
void quantize_acts_avx512(const float* x, int64_t cols, DType wtype, uint8_t* q, float* s, int32_t* c);

// Activations for the packed-row kernels: per token, cols quantized values in column order (Q8_0: u8 x + 128;
// Q4_0: s8 x), the f32 scale of each 32-block, and (Q4_0) -8·Σ of each block's values.
struct PActs {
  const uint8_t* q = nullptr;  // [n_tokens][cols]
  const float* s = nullptr;    // [n_tokens][blocks]
  const int32_t* c = nullptr;  // Q4_0: [n_tokens][blocks]; else null
  int64_t cols = 0;
};
// Packed BF16 / F16: chunk ch (16 columns, 512 bytes) of group g, in its column panel (per: packed_panel_blocks).
inline const uint8_t* packed_chunk(const Weight& w, int64_t g, int64_t ch, int64_t per) {
  return w.packed + packed_piece(w, g, ch / per) + (ch % per) * 512;
}
// Rows [r0, r1) from w.packed (pack_rows16 layout); r0 a multiple of 16, r1 too unless it is w.rows.
// Per (token, row): the blocks in order, acc = fma(float(int dot), d_w · d_x, acc), exactly linear_ref_q8.
void rows_packed_avx512(const Weight& w, const PActs& xa, int64_t n_tokens, float* y, int64_t r0, int64_t r1);
void quantize_acts_plain_avx512(const float* x, int64_t cols, DType wtype, uint8_t* q, float* s, int32_t* c);

// Activations for the AMX kernel, tokens padded with zeros to a multiple of 16. Each column tile of 32 values is
// stored as `splits` bf16 parts: part 0 = bf16(x) (nearest even), part s = bf16 of what parts 0..s-1 leave of x,
// so 1 part is x to 8 significant bits, 3 parts x exactly (bar values below bf16's normal range, which the tiles
// treat as zero). ld = splits · 32 · ceil(cols / 32) values per token; laid out as A tiles, each 16 tokens x 32
// values contiguous (1 KiB): token tile T's tile j (column tile j / splits, part j % splits) at (16 · T · ld +
// 512 · j) values, token t at row t % 16.
struct BActs {
  const uint16_t* x = nullptr;
  int64_t ld = 0;
  int splits = 1;
};
// Q8_0 / Q4_0 / BF16 / F16 rows [r0, r1) from w.packed (r0 a multiple of 16) against BActs with AMX bf16 tiles:
// weights as bf16 (quantized: bf16(q · d)), products exact, f32 sums in the tiles' order. Per (token, row) the
// sum depends only on that token's and that row's values, never on the batch or the row range.
void rows_amx(const Weight& w, const BActs& xa, int64_t n_tokens, float* y, int64_t r0, int64_t r1, void* scratch);
// Rows per panel of B tiles for rows of cols values; the scratch rows_amx needs per thread.
int64_t amx_panel_rows(int64_t cols);
inline size_t amx_scratch_bytes(int64_t cols) {
  return size_t(amx_panel_rows(cols) / 16 * ((cols + 31) / 32) * 1024 + 1024);
}
// BF16 / F16 rows [r0, r1) from w.packed (r0 a multiple of 16; F16 rounded to bf16) against BActs of one part, with AVX512-BF16 vdpbf16ps
// where there are no AMX tiles: the same panels as rows_amx, products exact, f32 sums of the column pairs in order.
// Per (token, row) the sum depends only on that token's and that row's values. scratch: dpbf16_scratch_bytes.
void rows_dpbf16(const Weight& w, const BActs& xa, int64_t n_tokens, float* y, int64_t r0, int64_t r1, void* scratch);
int64_t dpbf16_panel_rows(int64_t cols);
inline size_t dpbf16_scratch_bytes(int64_t cols) {
  return size_t(dpbf16_panel_rows(cols) / 16 * ((cols + 31) / 32) * 1024);
}
// iters rounds of 4 independent tdpbf16ps on register tiles (the peak-rate probe); returns a value that depends
// on the result.
int amx_bf16_loop(int64_t iters);
// Token t of BActs storage acts from x (cols values; columns past cols are zero; x null: all zero).
void convert_acts_bf16_amx(const float* x, int64_t cols, int splits, uint16_t* acts, int64_t ld, int64_t t);

}  // namespace dm::kern
