// CPU feature detection through the compiler's cpuid builtins.
#include "core/cpu.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#include <sys/syscall.h>
#endif

namespace dm {

#if defined(__x86_64__)
// AMX-BF16 and AMX-TILE (CPUID.7.0:EDX bits 22, 24), the tile state enabled by the OS in XCR0 (bits 17, 18), and
// Linux's permission for this process to use it (arch_prctl ARCH_REQ_XCOMP_PERM for XTILEDATA, Linux 5.16+):
// without the permission the first tile instruction faults.
static bool detect_amx() {
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  if (!(d & (1u << 22)) || !(d & (1u << 24))) return false;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return false;  // OSXSAVE: xgetbv is allowed
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  if ((lo & (3u << 17)) != (3u << 17)) return false;
  constexpr long kReqXcompPerm = 0x1023, kXtiledata = 18;
  return syscall(SYS_arch_prctl, kReqXcompPerm, kXtiledata) == 0;
}
#endif

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
  f.amx_bf16 = f.avx512bf16 && f.avx512bw && f.avx512vl && detect_amx();
#endif
  if (const char* s = std::getenv("DEEPMOE_SIMD")) {
    if (std::strcmp(s, "scalar") == 0) f = CpuFeatures{};
    if (std::strcmp(s, "avx512") == 0) f.amx_bf16 = false;
    if (std::strcmp(s, "avx2") == 0) {
      bool a = f.avx2, m = f.fma;
      f = CpuFeatures{};
      f.avx2 = a;
      f.fma = m;
      f.f16c = a;
    }
  }
#if defined(__x86_64__)
  f.intel = __builtin_cpu_is("intel");
  unsigned a, b, c, d;
  if (__get_cpuid(1, &a, &b, &c, &d)) {
    f.family = (a >> 8) & 0xf;
    if (f.family == 0xf) f.family += (a >> 20) & 0xff;
  }
#endif
  return f;
}

size_t last_level_cache_bytes() {
  long best = 0;
#if defined(_SC_LEVEL3_CACHE_SIZE)
  for (int name : {_SC_LEVEL1_DCACHE_SIZE, _SC_LEVEL2_CACHE_SIZE, _SC_LEVEL3_CACHE_SIZE, _SC_LEVEL4_CACHE_SIZE})
    best = std::max(best, sysconf(name));
#endif
  return size_t(std::max(best, 0L));
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

}  // namespace dm
