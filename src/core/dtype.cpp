// Scalar dtype conversions; the reference that SIMD converters are tested against.
#include "core/dtype.h"

#include <bit>

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

namespace {

// e4m3fn decoded by bits, exactly: normal (1 + m/8)·2^(e-7) -> f32 exponent e - 7 + 127, mantissa m << 20;
// subnormal m·2^-9 (an exact small integer times a power of two); 0x7f/0xff NaN.
constexpr float e4m3_value(uint32_t v) {
  const uint32_t sign = (v >> 7) << 31, exp = (v >> 3) & 0xf, man = v & 7;
  if (exp == 15 && man == 7) return std::bit_cast<float>(sign | 0x7fc00000u);
  if (exp == 0) return (sign ? -1.0f : 1.0f) * float(man) / 512.0f;
  return std::bit_cast<float>(sign | (exp - 7 + 127) << 23 | man << 20);
}

struct E4m3Table {
  float v[256];
  constexpr E4m3Table() : v() {
    for (uint32_t i = 0; i < 256; ++i) v[i] = e4m3_value(i);
  }
};
constexpr E4m3Table kE4m3;  // immutable: built at compile time

}  // namespace

float f8_e4m3_to_f32(uint8_t v) { return kE4m3.v[v]; }

uint8_t f32_to_f8_e4m3(float f) {
  uint8_t sign = std::signbit(f) ? 0x80 : 0;
  float a = std::fabs(f);
  if (std::isnan(f)) return 0x7f;
  if (a >= 448.0f) return sign | 0x7e;
  // Codes 0..0x7e are the finite magnitudes in increasing order: binary search for the first one >= a, then take
  // the nearer of it and its predecessor; exact ties go to the even code.
  uint8_t lo = 0, hi = 0x7e;
  while (lo < hi) {
    const uint8_t mid = uint8_t((lo + hi) / 2);
    if (kE4m3.v[mid] < a) lo = uint8_t(mid + 1); else hi = mid;
  }
  if (lo == 0) return sign;
  const float up = kE4m3.v[lo] - a, down = a - kE4m3.v[lo - 1];
  const uint8_t best = up < down ? lo : down < up ? uint8_t(lo - 1) : ((lo & 1) == 0 ? lo : uint8_t(lo - 1));
  return sign | best;
}

}  // namespace dm
