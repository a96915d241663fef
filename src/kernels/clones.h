// Function multiversioning for the hot portable loops: compiled for AVX-512 and AVX2 as well as the baseline,
// picked at load by the CPU (off under ASan, whose instrumentation does not mix with ifuncs).
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define DM_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DM_CLONES
#endif

#include <cstdint>
#include <cstring>

// The helpers below take and return vectors wider than the baseline ABI's registers; they are inlined into the
// clones (never called across a library boundary), so GCC's note on that ABI does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace dm::vec {

// 16 floats as one GCC vector: lowered to the clone's width (one zmm, two ymm or four xmm), so the portable loops
// say outright what runs in lanes instead of leaving it to the auto-vectorizer (which -O3 sometimes scalarizes).
using V16 = float __attribute__((vector_size(16 * sizeof(float))));
using I16 = int32_t __attribute__((vector_size(16 * sizeof(int32_t))));

inline V16 load16(const float* p) {
  V16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store16(float* p, const V16& v) { std::memcpy(p, &v, sizeof v); }
inline V16 splat16(float a) { return V16{} + a; }

}  // namespace dm::vec
