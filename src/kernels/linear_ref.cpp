// Scalar reference for linear layers: dequantize one row at a time to f32, then plain dot products.
// This is the test oracle for every SIMD variant; it favours obviousness over speed.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "kernels/linear.h"
#include "kernels/quant.h"

namespace dm {

Weight Weight::slice_rows(int64_t r0, int64_t n) const {
  DM_CHECK(r0 >= 0 && n >= 0 && r0 + n <= rows, "slice ", r0, "+", n, " of ", rows, " rows");
  Weight w = *this;
  w.rows = n;
  w.data = row(r0);
  const bool keep = r0 % 16 == 0 && (packed_panels(*this) == 1 || (r0 == 0 && n == rows));
  w.packed = packed && keep ? packed + size_t(r0 / 16) * packed_group_bytes(*this) : nullptr;
  if (dtype == DType::F8_E4M3) {
    DM_CHECK(r0 % 128 == 0, "F8 row slice must start on a 128-row block, got ", r0);
    w.scale_inv = scale_inv + (r0 / 128) * scale_cols();
  }
  return w;
}

bool linear_supports(DType t) {
  switch (t) {
    case DType::F32:
    case DType::F16:
    case DType::BF16:
    case DType::F8_E4M3:
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K: return true;
    default: return false;
  }
}

void dequantize_rows(const Weight& w, int64_t r0, int64_t r1, float* out) {
  const int64_t n = w.cols;
  for (int64_t r = r0; r < r1; ++r) {
    float* o = out + (r - r0) * n;
    const uint8_t* src = w.row(r);
    switch (w.dtype) {
      case DType::F32: {
        const float* s = reinterpret_cast<const float*>(src);
        for (int64_t c = 0; c < n; ++c) o[c] = s[c];
        break;
      }
      case DType::BF16: {
        const uint16_t* s = reinterpret_cast<const uint16_t*>(src);
        for (int64_t c = 0; c < n; ++c) o[c] = bf16_to_f32(s[c]);
        break;
      }
      case DType::F16: {
        const uint16_t* s = reinterpret_cast<const uint16_t*>(src);
        for (int64_t c = 0; c < n; ++c) o[c] = f16_to_f32(s[c]);
        break;
      }
      case DType::F8_E4M3: {
        const float* srow = w.scale_inv + (r / 128) * w.scale_cols();
        for (int64_t c = 0; c < n; ++c) o[c] = f8_e4m3_to_f32(src[c]) * srow[c / 128];
        break;
      }
      case DType::Q8_0: dequantize_row_q8_0(reinterpret_cast<const BlockQ8_0*>(src), o, n); break;
      case DType::Q4_0: dequantize_row_q4_0(reinterpret_cast<const BlockQ4_0*>(src), o, n); break;
      case DType::Q4_K: dequantize_row_q4_k(reinterpret_cast<const BlockQ4_K*>(src), o, n); break;
      case DType::Q5_K: dequantize_row_q5_k(reinterpret_cast<const BlockQ5_K*>(src), o, n); break;
      case DType::Q6_K: dequantize_row_q6_k(reinterpret_cast<const BlockQ6_K*>(src), o, n); break;
      default: DM_CHECK(false, "dequantize_rows: unsupported dtype ", dtype_name(w.dtype));
    }
  }
}

void linear_ref(const Weight& w, const float* x, int64_t n_tokens, float* y) {
  std::vector<float> row(size_t(w.cols));
  for (int64_t r = 0; r < w.rows; ++r) {
    dequantize_rows(w, r, r + 1, row.data());
    for (int64_t t = 0; t < n_tokens; ++t) {
      const float* xt = x + t * w.cols;
      float acc = 0;
      for (int64_t c = 0; c < w.cols; ++c) acc += xt[c] * row[size_t(c)];
      y[t * w.rows + r] = acc;
    }
  }
}

void linear_ref_q8(const Weight& w, const float* x, int64_t n_tokens, float* y) {
  DM_CHECK(w.dtype == DType::Q8_0 || w.dtype == DType::Q4_0, "linear_ref_q8: ", dtype_name(w.dtype));
  const int64_t nb = w.cols / kQK;
  std::vector<int8_t> xq(size_t(w.cols)), wq(size_t(w.cols));
  std::vector<float> xd(static_cast<size_t>(nb)), wd(static_cast<size_t>(nb));
  for (int64_t t = 0; t < n_tokens; ++t) {
    quantize_activations_q8(x + t * w.cols, w.cols, xq.data(), xd.data());
    for (int64_t r = 0; r < w.rows; ++r) {
      for (int64_t b = 0; b < nb; ++b) {  // weights as int8 values and an f32 scale per block
        if (w.dtype == DType::Q8_0) {
          const BlockQ8_0& blk = reinterpret_cast<const BlockQ8_0*>(w.row(r))[b];
          wd[size_t(b)] = f16_to_f32(blk.d);
          for (int i = 0; i < kQK; ++i) wq[size_t(b * kQK + i)] = blk.qs[i];
        } else {
          const BlockQ4_0& blk = reinterpret_cast<const BlockQ4_0*>(w.row(r))[b];
          wd[size_t(b)] = f16_to_f32(blk.d);
          for (int i = 0; i < kQK / 2; ++i) {
            wq[size_t(b * kQK + i)] = int8_t((blk.qs[i] & 15) - 8);
            wq[size_t(b * kQK + i + 16)] = int8_t((blk.qs[i] >> 4) - 8);
          }
        }
      }
      float acc = 0;  // blocks in order, one fused multiply-add each (the packed kernels' exact order)
      for (int64_t b = 0; b < nb; ++b) {
        int32_t isum = 0;
        for (int i = 0; i < kQK; ++i) isum += int32_t(wq[size_t(b * kQK + i)]) * xq[size_t(b * kQK + i)];
        acc = std::fma(float(isum), wd[size_t(b)] * xd[size_t(b)], acc);
      }
      y[t * w.rows + r] = acc;
    }
  }
}

size_t packed_group_bytes(const Weight& w) {
  if (w.dtype == DType::BF16 || w.dtype == DType::F16) return size_t((w.cols + 15) / 16) * 512;
  return 16 * w.row_bytes();
}

size_t packed_bytes(const Weight& w) { return size_t((w.rows + 15) / 16) * packed_group_bytes(w); }

namespace {
bool quant_packed(const Weight& w) { return w.dtype == DType::Q8_0 || w.dtype == DType::Q4_0; }
// Units of a packed row (32-column blocks, or 16-column chunks for BF16 / F16) and their bytes in a 16-row group.
int64_t packed_units(const Weight& w) { return quant_packed(w) ? w.cols / kQK : (w.cols + 15) / 16; }
size_t packed_unit_bytes(const Weight& w) {
  if (!quant_packed(w)) return 512;
  return 16 * (w.dtype == DType::Q8_0 ? sizeof(BlockQ8_0) : sizeof(BlockQ4_0));
}
}  // namespace

// Units per panel: about 2048 Q4_0 / 1024 Q8_0 columns (a group's piece of 17-18 KiB, half of L1), the panels
// of a row of equal size bar the last (an even number of blocks); rows of up to 1.5 such panels stay whole.
// BF16 / F16: 256 columns (8 KiB pieces) in rows of more than 2048 columns. On the Zen 4 host (2 threads, gemvs
// over 937 MB of copies in turns with plain reads of the same memory, high-bandwidth phase; see
// docs/performance.md), Qwen-1.5B's down_proj (1536 x 8960) in Q4_0 read 47.0 GB/s in one panel, 55.3-55.7 with
// panels of 1536-2048 columns, 54.0 with 3072 (the plain read 62.4); Q8_0 56.3 -> 57.5 with 1024 columns, 55.5
// with 512; one thread Q4_0 26.1 -> 30.0 GB/s (plain 29.9). BF16 51.1 -> 57.7 with 256 columns, 56.3 with 512,
// 48.8 with 1024 (plain 58.7); 2048 x 2816 BF16 54.2 -> 56.5; 8960 x 1536 BF16 in panels of 512 columns 55.4 ->
// 54.9, so rows that short stay whole.
int64_t packed_panel_blocks(const Weight& w) {
  const int64_t nu = packed_units(w);
  if (!quant_packed(w)) return nu > 128 ? 16 : nu;
  const int64_t target = w.dtype == DType::Q8_0 ? 32 : 64;
  if (2 * nu <= 3 * target) return nu;
  const int64_t n = (nu + target - 1) / target, per = (nu + n - 1) / n;
  return per + per % 2;
}

int64_t packed_panels(const Weight& w) {
  const int64_t per = packed_panel_blocks(w);
  return per > 0 ? (packed_units(w) + per - 1) / per : 1;
}

size_t packed_piece(const Weight& w, int64_t g, int64_t k) {
  const int64_t per = packed_panel_blocks(w), nu = packed_units(w), groups = (w.rows + 15) / 16;
  const int64_t band = g / kPanelBand * kPanelBand, in_band = std::min(kPanelBand, groups - band);
  const int64_t units = std::min(per, nu - k * per);  // in panel k
  return size_t(band) * packed_group_bytes(w) + size_t(k * per * in_band + (g - band) * units) * packed_unit_bytes(w);
}

namespace {

void pack_rows16_f16(const Weight& w, uint8_t* out) {
  const int64_t groups = (w.rows + 15) / 16;
  const bool bf16 = w.dtype == DType::BF16;
  const int64_t per = packed_panel_blocks(w), span = per * 16;  // columns per panel
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t k = 0; k * span < w.cols; ++k) {
      uint16_t* piece = reinterpret_cast<uint16_t*>(out + packed_piece(w, g, k));
      for (int64_t l = 0; l < 16 && g * 16 + l < w.rows; ++l) {
        const uint16_t* row = reinterpret_cast<const uint16_t*>(w.row(g * 16 + l));
        for (int64_t c = k * span; c < std::min(w.cols, k * span + span); ++c) {
          uint16_t* line = piece + (((c - k * span) / 16) * 8 + l / 2) * 32;  // 32 halfwords per 64-byte line
          line[bf16 ? 2 * (c % 16) + l % 2 : (l % 2) * 16 + c % 16] = row[c];
        }
      }
    }
  }
}

}  // namespace

void pack_rows16(const Weight& w, uint8_t* out) {
  DM_CHECK(w.dtype == DType::Q8_0 || w.dtype == DType::Q4_0 || w.dtype == DType::BF16 || w.dtype == DType::F16,
           "pack_rows16: ", dtype_name(w.dtype));
  if (w.dtype == DType::BF16 || w.dtype == DType::F16) {
    std::memset(out, 0, packed_bytes(w));
    return pack_rows16_f16(w, out);
  }
  const int64_t nb = w.cols / kQK, groups = (w.rows + 15) / 16;
  const bool q8 = w.dtype == DType::Q8_0;
  const int64_t chunks = q8 ? 8 : 4, block_bytes = q8 ? int64_t(sizeof(BlockQ8_0)) : int64_t(sizeof(BlockQ4_0));
  std::memset(out, 0, packed_bytes(w));
  const int64_t per = packed_panel_blocks(w);
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t k = 0; k * per < nb; ++k) {
      uint8_t* piece = out + packed_piece(w, g, k);
      const int64_t in_panel = std::min(per, nb - k * per);
      for (int64_t l = 0; l < 16 && g * 16 + l < w.rows; ++l) {
        const uint8_t* row = w.row(g * 16 + l);
        for (int64_t b = k * per; b < k * per + in_panel; ++b) {
          const PackedBlock at = packed_block(w.dtype, in_panel, b - k * per);
          const uint8_t* blk = row + b * block_bytes;
          std::memcpy(piece + at.scales + 2 * l, blk, 2);  // both layouts start with the fp16 scale
          for (int64_t i = 0; i < chunks; ++i) std::memcpy(piece + at.quants + (i * 16 + l) * 4, blk + 2 + 4 * i, 4);
        }
      }
    }
  }
}

}  // namespace dm
