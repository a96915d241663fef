// Element-wise and row-wise ops of the forward pass, on f32 activations. Plain loops the compiler vectorizes;
// each is its own reference (tests compare them with double-precision formulas).
#pragma once
#include <cstdint>

namespace dm {

// out = x / sqrt(mean(x²) + eps) · w, over n values. out may alias x.
void rms_norm(const float* x, const float* w, int64_t n, float eps, float* out);
// In-place softmax over n values (max-subtracted; e^x within ~1 ulp of expf, summed in 16 lanes).
void softmax(float* x, int64_t n);
// out[i] = silu(gate[i]) · up[i], silu(g) = g / (1 + e^-g). out may alias gate or up.
void silu_mul(const float* gate, const float* up, int64_t n, float* out);
// y += a · x
void axpy(float a, const float* x, int64_t n, float* y);
float dot(const float* a, const float* b, int64_t n);
// Rotary embedding over d values (d even) with per-pair cos/sin [d/2]:
// adjacent pairs (x[2i], x[2i+1]) — DeepSeek's stored layout, GGUF "norm" rope;
// halves (x[i], x[i + d/2]) — Llama/Qwen HF layout (rotate_half), GGUF "neox" rope.
void rope_adjacent(float* x, int64_t d, const float* cos, const float* sin);
void rope_halves(float* x, int64_t d, const float* cos, const float* sin);

}  // namespace dm
