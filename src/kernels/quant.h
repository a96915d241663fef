// Block-quantized weight formats with llama.cpp's GGML byte layouts (bit-exact, so GGUF files load as they are):
// Q8_0, Q4_0 (32 weights per block) and the K-quants Q4_K, Q5_K, Q6_K (256-weight super-blocks).
// Quantizers f32 -> Q8_0 / Q4_0 follow GGML's reference (round-to-nearest) quantizers; dequantizers are the
// scalar references that the SIMD kernels in linear_*.cpp are tested against.
#pragma once
#include <cstdint>

namespace dm {

constexpr int kQK = 32;    // weights per Q8_0 / Q4_0 block
constexpr int kQKK = 256;  // weights per K-quant super-block

// value[i] = d · qs[i]
struct BlockQ8_0 {
  uint16_t d;  // fp16 scale
  int8_t qs[kQK];
};
// value[i] = d · (q[i] - 8); q[i] = qs[i] & 15 for i < 16, qs[i - 16] >> 4 for i >= 16
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK / 2];
};
// 8 sub-blocks of 32: value = d·sc[j]·q - dmin·m[j], q 4 bits; sc/m 6 bits packed in scales[12] (see
// k_scale_min). Chunk c (64 values) uses qs[32c .. 32c+31]: low nibbles are sub-block 2c, high ones 2c+1.
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qs[kQKK / 2];
};
// As Q4_K plus a fifth bit: sub-block j's bit for value l (0..31) is bit j of qh[l].
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[kQKK / 8];
  uint8_t qs[kQKK / 2];
};
// 16 sub-blocks of 16: value = d·scales[j]·(q - 32), q 6 bits = 4 low bits in ql, 2 high bits in qh.
struct BlockQ6_K {
  uint8_t ql[kQKK / 2];
  uint8_t qh[kQKK / 4];
  int8_t scales[kQKK / 16];
  uint16_t d;
};
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_K) == 144 && sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210);

// Sub-block j (0..7) scale and min of a Q4_K/Q5_K super-block: 6 bits each. j < 4: low 6 bits of scales[j]
// and scales[j+4]; j >= 4: low/high nibble of scales[j+4] with the top 2 bits of scales[j-4] / scales[j].
inline void k_scale_min(int j, const uint8_t* scales, int& sc, int& m) {
  if (j < 4) {
    sc = scales[j] & 63;
    m = scales[j + 4] & 63;
  } else {
    sc = (scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4);
    m = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
  }
}

// Quantize n values (n a multiple of 32) into n/32 blocks.
// Q8_0: d = amax/127, q = round(x/d). Q4_0: d = max/-8 (max: the value of largest magnitude, with its sign),
// q = min(15, int(x/d + 8.5)).
void quantize_row_q8_0(const float* x, BlockQ8_0* out, int64_t n);
void quantize_row_q4_0(const float* x, BlockQ4_0* out, int64_t n);

// Dequantize n values (n a multiple of the format's block).
void dequantize_row_q8_0(const BlockQ8_0* b, float* out, int64_t n);
void dequantize_row_q4_0(const BlockQ4_0* b, float* out, int64_t n);
void dequantize_row_q4_k(const BlockQ4_K* b, float* out, int64_t n);
void dequantize_row_q5_k(const BlockQ5_K* b, float* out, int64_t n);
void dequantize_row_q6_k(const BlockQ6_K* b, float* out, int64_t n);

}  // namespace dm

namespace dm {
// Activations for int8 dot products: per 32-block d = amax/127 (kept in f32), q = nearbyint(x/d) (round to
// nearest even), so |x - d·q| <= d/2. n a multiple of 32; q: [n], d: [n/32]. Not a GGUF format.
void quantize_activations_q8(const float* x, int64_t n, int8_t* q, float* d);
}  // namespace dm
