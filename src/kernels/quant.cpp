// Reference quantizers and dequantizers of the GGML block formats declared in quant.h.
// The arithmetic mirrors GGML's reference C (ggml-quants.c quantize_row_*_ref / dequantize_row_*), so files
// written here and read by llama.cpp (and the reverse) hold exactly the same values.
#include "kernels/quant.h"

#include <algorithm>
#include <cmath>

#include "core/dtype.h"
#include "core/error.h"

namespace dm {

void quantize_row_q8_0(const float* x, BlockQ8_0* out, int64_t n) {
  DM_CHECK(n % kQK == 0, "Q8_0 row length ", n, " is not a multiple of 32");
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    float amax = 0;
    for (int i = 0; i < kQK; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float d = amax / 127.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    out[b].d = f32_to_f16(d);
    for (int i = 0; i < kQK; ++i) out[b].qs[i] = int8_t(std::round(x[i] * id));
  }
}

void quantize_row_q4_0(const float* x, BlockQ4_0* out, int64_t n) {
  DM_CHECK(n % kQK == 0, "Q4_0 row length ", n, " is not a multiple of 32");
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    float amax = 0, max = 0;
    for (int i = 0; i < kQK; ++i) {
      if (amax < std::fabs(x[i])) {
        amax = std::fabs(x[i]);
        max = x[i];
      }
    }
    const float d = max / -8.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    out[b].d = f32_to_f16(d);
    for (int i = 0; i < kQK / 2; ++i) {
      // note: the int8 truncation of x/d + 8.5 is GGML's rounding; x/d lies in [-8, 8] by construction.
      const int q0 = std::min(15, int(int8_t(x[i] * id + 8.5f)));
      const int q1 = std::min(15, int(int8_t(x[i + 16] * id + 8.5f)));
      out[b].qs[i] = uint8_t(q0 | (q1 << 4));
    }
  }
}

void dequantize_row_q8_0(const BlockQ8_0* b, float* out, int64_t n) {
  for (int64_t k = 0; k < n / kQK; ++k, out += kQK) {
    const float d = f16_to_f32(b[k].d);
    for (int i = 0; i < kQK; ++i) out[i] = d * float(b[k].qs[i]);
  }
}

void dequantize_row_q4_0(const BlockQ4_0* b, float* out, int64_t n) {
  for (int64_t k = 0; k < n / kQK; ++k, out += kQK) {
    const float d = f16_to_f32(b[k].d);
    for (int i = 0; i < kQK / 2; ++i) {
      out[i] = d * float((b[k].qs[i] & 15) - 8);
      out[i + 16] = d * float((b[k].qs[i] >> 4) - 8);
    }
  }
}

void dequantize_row_q4_k(const BlockQ4_K* b, float* out, int64_t n) {
  for (int64_t k = 0; k < n / kQKK; ++k) {
    const float d = f16_to_f32(b[k].d), dmin = f16_to_f32(b[k].dmin);
    const uint8_t* q = b[k].qs;
    for (int c = 0; c < 4; ++c, q += 32, out += 64) {
      int sc0, m0, sc1, m1;
      k_scale_min(2 * c, b[k].scales, sc0, m0);
      k_scale_min(2 * c + 1, b[k].scales, sc1, m1);
      const float d0 = d * float(sc0), mm0 = dmin * float(m0);
      const float d1 = d * float(sc1), mm1 = dmin * float(m1);
      for (int l = 0; l < 32; ++l) out[l] = d0 * float(q[l] & 15) - mm0;
      for (int l = 0; l < 32; ++l) out[l + 32] = d1 * float(q[l] >> 4) - mm1;
    }
  }
}

void dequantize_row_q5_k(const BlockQ5_K* b, float* out, int64_t n) {
  for (int64_t k = 0; k < n / kQKK; ++k) {
    const float d = f16_to_f32(b[k].d), dmin = f16_to_f32(b[k].dmin);
    const uint8_t* q = b[k].qs;
    for (int c = 0; c < 4; ++c, q += 32, out += 64) {
      int sc0, m0, sc1, m1;
      k_scale_min(2 * c, b[k].scales, sc0, m0);
      k_scale_min(2 * c + 1, b[k].scales, sc1, m1);
      const float d0 = d * float(sc0), mm0 = dmin * float(m0);
      const float d1 = d * float(sc1), mm1 = dmin * float(m1);
      const uint8_t u0 = uint8_t(1u << (2 * c)), u1 = uint8_t(2u << (2 * c));
      for (int l = 0; l < 32; ++l) out[l] = d0 * float((q[l] & 15) + (b[k].qh[l] & u0 ? 16 : 0)) - mm0;
      for (int l = 0; l < 32; ++l) out[l + 32] = d1 * float((q[l] >> 4) + (b[k].qh[l] & u1 ? 16 : 0)) - mm1;
    }
  }
}

void dequantize_row_q6_k(const BlockQ6_K* b, float* out, int64_t n) {
  for (int64_t k = 0; k < n / kQKK; ++k) {
    const float d = f16_to_f32(b[k].d);
    const uint8_t* ql = b[k].ql;
    const uint8_t* qh = b[k].qh;
    const int8_t* sc = b[k].scales;
    // Two halves of 128 values; in each, value l + 32·s (s = 0..3) takes a nibble of ql and 2 bits of qh[l].
    for (int h = 0; h < 2; ++h, ql += 64, qh += 32, sc += 8, out += 128) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = int((ql[l] & 15) | ((qh[l] & 3) << 4)) - 32;
        const int q2 = int((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = int((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = int((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        out[l] = d * float(sc[is]) * float(q1);
        out[l + 32] = d * float(sc[is + 2]) * float(q2);
        out[l + 64] = d * float(sc[is + 4]) * float(q3);
        out[l + 96] = d * float(sc[is + 6]) * float(q4);
      }
    }
  }
}

}  // namespace dm

namespace dm {
void quantize_activations_q8(const float* x, int64_t n, int8_t* q, float* d) {
  DM_CHECK(n % kQK == 0, "activation row length ", n, " is not a multiple of 32");
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK, q += kQK) {
    float amax = 0;
    for (int i = 0; i < kQK; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float db = amax / 127.0f;
    const float id = db != 0 ? 1.0f / db : 0.0f;
    d[b] = db;
    for (int i = 0; i < kQK; ++i) q[i] = int8_t(std::nearbyint(x[i] * id));
  }
}
}  // namespace dm
