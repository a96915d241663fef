// Element types of weights and activations, and scalar conversions between them.
// bf16: upper half of an IEEE f32 (round to nearest even); f16: IEEE binary16; f8_e4m3: OCP e4m3fn
// (no infinities, 0x7f/0xff are NaN, max 448). Quantized block types follow llama.cpp's GGML layouts.
#pragma once
#include <cstdint>
#include <cstring>
#include <string_view>

namespace dm {

enum class DType : uint8_t { F32, F16, BF16, F8_E4M3, I8, I16, I32, I64, U8, BOOL, F64, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K };

std::string_view dtype_name(DType t);
// Bytes for n elements (n must be a multiple of the block size for block types).
size_t dtype_bytes(DType t, int64_t n);
// Elements per block (1 for plain types, 32 for Q8_0/Q4_0, 256 for K-quants).
int64_t dtype_block(DType t);

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffff) > 0x7f800000) return uint16_t((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fff + ((u >> 16) & 1);                                          // round to nearest even
  return uint16_t(u >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
float f8_e4m3_to_f32(uint8_t v);
uint8_t f32_to_f8_e4m3(float f);  // round to nearest even, saturating to +-448

}  // namespace dm
