// CPU features detected once at start-up; kernels pick their SIMD variant from these.
#pragma once
#include <cstddef>

namespace dm {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512vnni = false, avx512bf16 = false;
  // AMX tiles with bf16 dot products, usable: the CPU has them and the OS granted this process the tile state.
  bool amx_bf16 = false;
  // An Intel CPU: its cores stream memory best with prefetches on two cache levels, nearer ahead than AMD's
  // (linear_avx512.cpp).
  bool intel = false;
  // The x86 display family (cpuid leaf 1): on AMD 0x19 is Zen 3 / Zen 4, 0x1A Zen 5. 0 where unknown.
  unsigned family = 0;
};

// Size in bytes of the largest data cache (the L3 on current x86 parts, as the C library reads it from cpuid);
// 0 where it is not known. Working sets meant to come from memory must be several times this: a 2-vCPU guest
// of an Intel Xeon reported 480 MiB, and a 1 GiB buffer read round and round there still got a few % of hits.
size_t last_level_cache_bytes();

// Detected features, limited by the DEEPMOE_SIMD environment variable when it is set: scalar, avx2, avx512
// (AVX-512 without AMX), amx (everything; the default).
const CpuFeatures& cpu_features();

}  // namespace dm
