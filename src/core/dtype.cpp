// Scalar dtype conversions; the reference that SIMD converters are tested against.
#include "core/dtype.h"

#include <cmath>

#include "core/error.h"

namespace dm {

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::F8_E4M3: return "F8_E4M3";
    case DType::I8: return "I8";
    case DType::I16: return "I16";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
    case DType::U8: return "U8";
    case DType::BOOL: return "BOOL";
    case DType::F64: return "F64";
    case DType::Q8_0: return "Q8_0";
    case DType::Q4_0: return "Q4_0";
    case DType::Q4_K: return "Q4_K";
    case DType::Q5_K: return "Q5_K";
    case DType::Q6_K: return "Q6_K";
  }
  return "?";
}

int64_t dtype_block(DType t) {
  switch (t) {
    case DType::Q8_0:
    case DType::Q4_0: return 32;
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K: return 256;
    default: return 1;
  }
}

size_t dtype_bytes(DType t, int64_t n) {
  switch (t) {
    case DType::F32:
    case DType::I32: return size_t(n) * 4;
    case DType::F16:
    case DType::BF16:
    case DType::I16: return size_t(n) * 2;
    case DType::F8_E4M3:
    case DType::I8:
    case DType::U8:
    case DType::BOOL: return size_t(n);
    case DType::I64:
    case DType::F64: return size_t(n) * 8;
    case DType::Q8_0: return size_t(n / 32) * 34;
    case DType::Q4_0: return size_t(n / 32) * 18;
    case DType::Q4_K: return size_t(n / 256) * 144;
    case DType::Q5_K: return size_t(n / 256) * 176;
    case DType::Q6_K: return size_t(n / 256) * 210;
  }
  DM_CHECK(false, "unknown dtype");
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t man = h & 0x3ff;
  uint32_t u;
  if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        man <<= 1;
        ++e;
      } while (!(man & 0x400));
      u = sign | uint32_t(127 - 15 - e) << 23 | (man & 0x3ff) << 13;
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000 | man << 13;
  } else {
    u = sign | (exp + 127 - 15) << 23 | man << 13;
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint16_t sign = uint16_t((u >> 16) & 0x8000);
  uint32_t a = u & 0x7fffffff;
  if (a > 0x7f800000) return sign | 0x7e00;
  if (a >= 0x477ff000) return sign | 0x7c00;  // rounds to >= 65520: infinity
  if (a < 0x38800000) {                       // below the smallest normal half: subnormal or zero
    float af;
    std::memcpy(&af, &a, 4);
    // Scale so that one half-subnormal ulp (2^-24) becomes 1, and round to nearest even.
    return sign | uint16_t(std::nearbyint(af * 16777216.0f));
  }
  uint32_t mant_odd = (a >> 13) & 1;
  a += 0xfff + mant_odd;
  return sign | uint16_t(((a >> 23) - 127 + 15) << 10 | ((a >> 13) & 0x3ff));
}

float f8_e4m3_to_f32(uint8_t v) {
  uint32_t sign = v >> 7;
  uint32_t exp = (v >> 3) & 0xf;
  uint32_t man = v & 7;
  float r;
  if (exp == 15 && man == 7) {
    r = NAN;
  } else if (exp == 0) {
    r = std::ldexp(float(man), -9);  // subnormal: man/8 * 2^-6
  } else {
    r = std::ldexp(1.0f + float(man) / 8.0f, int(exp) - 7);
  }
  return sign ? -r : r;
}

uint8_t f32_to_f8_e4m3(float f) {
  uint8_t sign = std::signbit(f) ? 0x80 : 0;
  float a = std::fabs(f);
  if (std::isnan(f)) return 0x7f;
  if (a >= 448.0f) return sign | 0x7e;
  // Find the nearest representable value by exhaustive search over the 127 finite magnitudes: exact ties go to
  // the even code. Conversion runs at model-writing time only, so clarity beats speed here.
  uint8_t best = 0;
  float best_err = a;
  for (uint8_t c = 1; c <= 0x7e; ++c) {
    float err = std::fabs(f8_e4m3_to_f32(c) - a);
    if (err < best_err || (err == best_err && (c & 1) == 0)) {
      best = c;
      best_err = err;
    }
  }
  return sign | best;
}

}  // namespace dm
