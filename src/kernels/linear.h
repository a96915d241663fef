// Linear layers y = x·Wᵀ over weights in any stored dtype, and row dequantization.
// W is row-major [rows = out_features, cols = in_features] as in PyTorch/safetensors; block-quantized types store
// each row as cols/block blocks (GGML layouts); F8_E4M3 carries fp32 block scales of 128×128 (DeepSeek's
// published layout: W[i,j] = q[i,j] · scale_inv[i/128, j/128]).
// linear() picks the fastest variant for the CPU; linear_ref() is the scalar reference it is tested against.
// Supported: F32, BF16, F16, F8_E4M3 (block scales), Q8_0, Q4_0, Q4_K, Q5_K, Q6_K (kernels/quant.h layouts).
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
  // Q8_0 / Q4_0 / BF16 / F16, optional: the same rows re-laid out by pack_rows16() for the AVX-512 kernels,
  // which then read this instead of data (data stays valid for everything else).
  const uint8_t* packed = nullptr;
  // BF16 / F16 with packed rows: batches of kAmxMinTokens or more may round x (and F16 weights) to bf16 for the
  // CPU's bf16 dot products (AVX512-BF16 without AMX; see linear()). Set at load (LoadOptions::bf16_activations);
  // false: f32 activations against the weights as stored.
  bool bf16_acts = false;

  size_t row_bytes() const { return dtype_bytes(dtype, cols); }
  const uint8_t* row(int64_t r) const { return static_cast<const uint8_t*>(data) + size_t(r) * row_bytes(); }
  int64_t scale_cols() const { return (cols + 127) / 128; }
  // A view of rows [r0, r0+n): e.g. one head's slice of a projection. For F8_E4M3, r0 must be a multiple of 128.
  // A packed weight keeps its packed rows when r0 is a multiple of 16 and its rows are one column panel
  // (packed_panels), else the slice reads data only.
  Weight slice_rows(int64_t r0, int64_t n) const;
  size_t bytes() const { return size_t(rows) * row_bytes(); }
};

// Instruction set of a linear() call: Auto picks the best the CPU has (cpu_features(), which honours
// DEEPMOE_SIMD=scalar|avx2|avx512|amx); forcing a set the CPU lacks falls back to the best available below it.
// Amx is Avx512 plus AMX bf16 tiles for batches of at least kAmxMinTokens tokens over packed Q8_0 / Q4_0 / BF16 /
// F16 weights (see linear()).
enum class Simd { Auto, Scalar, Avx2, Avx512, Amx };
constexpr int64_t kAmxMinTokens = 16;

struct LinearOptions {
  Simd simd = Simd::Auto;
  // Q8_0 / Q4_0 on AVX-512 VNNI: quantize activations per 32-block to int8 (f32 scale, round to nearest even)
  // and use int8 dot products, as llama.cpp does. false: exact f32 activations against dequantized weights.
  bool quantize_activations = true;
};

// y[t, r] = Σ_c x[t, c] · W[r, c] for t < n_tokens. x: [n_tokens, w.cols], y: [n_tokens, w.rows], both f32,
// rows contiguous. pool may be null (single-threaded). Must not be called from inside pool->run().
// Batch invariance: for a given path (Simd) a row's summation order depends neither on n_tokens nor on the
// thread count, so a token gives bit-identical outputs alone or in any batch, with any pool.
// Numerics: F32/BF16/F16/F8 use f32 FMA on exactly converted weights (within ~1e-6 relative of linear_ref);
// Q8_0/Q4_0 with quantize_activations are within the activation-quantization error (see linear_ref_q8).
// K-quants (and Q8_0/Q4_0 without VNNI or with quantize_activations off) are dequantized exactly to f32 one row
// tile at a time and use the f32 kernel.
// Amx: a batch of kAmxMinTokens or more over packed Q8_0 / Q4_0 / BF16 / F16 weights runs on bf16 tiles, x and the
// weights rounded to bf16 (quantized weights as bf16(q · d)), f32 sums: within bf16 rounding of linear_ref, and
// batch- and thread-invariant among such batches, but not bit-identical to the same token in a smaller batch.
// Avx512 on a CPU with AVX512-BF16: a batch of kAmxMinTokens or more over packed BF16 / F16 weights with bf16_acts
// set rounds x (and F16 weights) to bf16 and sums exact bf16 products in f32 (vdpbf16ps): within bf16 rounding of
// linear_ref, and invariant among such batches as the Amx path is. The Amx path keeps f32 activations for float
// weights.
void linear(const Weight& w, const float* x, int64_t n_tokens, float* y, ThreadPool* pool);
void linear(const Weight& w, const float* x, int64_t n_tokens, float* y, ThreadPool* pool, const LinearOptions& opt);
void linear_ref(const Weight& w, const float* x, int64_t n_tokens, float* y);
// One linear layer of a group: y = x · Wᵀ, x [n_tokens, w.cols], y [n_tokens, w.rows] (rows contiguous).
struct LinearJob {
  Weight w;
  const float* x = nullptr;
  int64_t n_tokens = 0;
  float* y = nullptr;
};

// Runs several linear layers in ONE parallel region: the row chunks of all jobs are shared by the pool's threads.
// For MoE: in decode, pass the active experts' gate/up (or down) projections together so their rows spread over
// all threads with one fork-join; in prefill, pass one job per expert with that expert's gathered tokens (one
// GEMM per expert, not a GEMV per token); shared experts can go in the same call. Each job's output is
// bit-identical to linear() of that job alone. Jobs must not write overlapping outputs. Must not be called from
// inside pool->run().
void linear_multi(const LinearJob* jobs, size_t n_jobs, ThreadPool* pool, const LinearOptions& opt = {});

// Scalar twin of the quantized-activation path (Q8_0 / Q4_0 weights only): x quantized by
// quantize_activations_q8 (kernels/quant.h), integer dot per 32-block, y = Σ_b d_w[b]·d_x[b]·isum[b].
void linear_ref_q8(const Weight& w, const float* x, int64_t n_tokens, float* y);
// The instruction set linear() would use for these options on this CPU.
Simd linear_simd(const LinearOptions& opt = {});

// out[(r - r0) * cols + c] = W[r, c] as f32, for r in [r0, r1).
void dequantize_rows(const Weight& w, int64_t r0, int64_t r1, float* out);

// Packed Q8_0 / Q4_0 ("rows16"): rows in groups of 16, the last group padded with zero rows. A group takes
// 16 · row_bytes() bytes, blocks in pairs: the 16 rows' fp16 scales of blocks 2p and 2p+1 (one 64-byte line),
// then the quants of block 2p, then of block 2p+1, each as [chunks][16 rows][4 bytes], where chunk i of a row's
// block is its quant bytes 4i..4i+3 (Q8_0: 8 chunks of int8 weights; Q4_0: 4 chunks of nibble bytes, low
// nibbles columns 4i.., high nibbles 16 + 4i..); a last block without a partner has its 32 bytes of scales and
// then its quants. One 64-byte chunk thus holds 4 consecutive columns of 16 rows, the operand of one vpdpbusd
// against 4 activations broadcast to every lane, and a group is read as one forward stream.
struct PackedBlock {
  int64_t scales, quants;  // byte offsets of block b's 16 scales and of its quants in the group
};
inline PackedBlock packed_block(DType t, int64_t n_blocks, int64_t b) {
  const int64_t qb = t == DType::Q8_0 ? 512 : 256, pair = 64 + 2 * qb, base = b / 2 * pair;
  if (b % 2) return {base + 32, base + 64 + qb};
  return {base, base + (b + 1 < n_blocks ? 64 : 32)};
}
// Long rows go in column panels. Panel k is units [k·P, k·P + P_k) of the rows (units: 32-column blocks for Q8_0 /
// Q4_0, 16-column chunks for BF16 / F16; P = packed_panel_blocks(), even for blocks; the last panel's P_k may be
// smaller), and a group's piece of a panel is laid out as a group of P_k-unit rows (above, and below for BF16 /
// F16). The groups go in bands of kPanelBand (the last band may have fewer), each band its groups' pieces of
// panel 0, group after group, then of panel 1, and so on. Decode reads a band panel by panel: the activations of a
// panel stay in L1 while the band's groups pass, where a whole group (80 KB for 8960 Q4_0 columns) would push them
// out of L1 before the next, and the bands still make one forward stream. Shorter rows are one panel: the plain
// layout. A row slice of a weight of several panels reads data (slice_rows).
constexpr int64_t kPanelBand = 4;
int64_t packed_panel_blocks(const Weight& w);  // P: units per panel (all of a row's when it is one panel)
int64_t packed_panels(const Weight& w);        // 1 unless w is a packable weight of long rows
size_t packed_piece(const Weight& w, int64_t g, int64_t k);  // byte offset of group g's piece of panel k
// Packed BF16 / F16: groups of 16 rows as above, each [chunks of 16 columns][8 row pairs][64 bytes], the last
// chunk padded with zeros. A BF16 line interleaves the pair's values (row 2p column c at halfword 2c, row 2p+1 at
// 2c + 1), so one 512-bit load gives both rows' 16 columns as f32 with one shift or one mask; an F16 line is the
// two rows' 16 values one after the other. Decode reads a group as one forward stream with 16 rows in flight.
// True if w is Q8_0 / Q4_0 (AVX-512 VNNI) or BF16 / F16 (AVX-512) and this CPU has the kernels that read
// packed rows.
bool packable(const Weight& w);
size_t packed_group_bytes(const Weight& w);  // bytes of one group of 16 rows (all its panels)
size_t packed_bytes(const Weight& w);        // ceil(rows / 16) · packed_group_bytes(w)
// Writes w's rows in the packed layout to out (packed_bytes(w) bytes, 64-byte aligned).
void pack_rows16(const Weight& w, uint8_t* out);

// True if linear() supports this dtype.
bool linear_supports(DType t);

}  // namespace dm
