// CPU feature detection through the compiler's cpuid builtins.
#include "core/cpu.h"

#include <cstdlib>
#include <cstring>

namespace dm {

static CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__)
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.f16c = f.avx2;  // every AVX2 x86-64 part has F16C
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
  f.avx512vnni = __builtin_cpu_supports("avx512vnni");
  f.avx512bf16 = __builtin_cpu_supports("avx512bf16");
#endif
  if (const char* s = std::getenv("DEEPMOE_SIMD")) {
    if (std::strcmp(s, "scalar") == 0) f = CpuFeatures{};
    if (std::strcmp(s, "avx2") == 0) {
      bool a = f.avx2, m = f.fma;
      f = CpuFeatures{};
      f.avx2 = a;
      f.fma = m;
      f.f16c = a;
    }
  }
  return f;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

}  // namespace dm
