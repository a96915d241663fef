// CPU features detected once at start-up; kernels pick their SIMD variant from these.
#pragma once

namespace dm {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512vnni = false, avx512bf16 = false;
  // AMX tiles with bf16 dot products, usable: the CPU has them and the OS granted this process the tile state.
  bool amx_bf16 = false;
  // An Intel CPU: its cores stream memory best with prefetches on two cache levels, nearer ahead than AMD's
  // (linear_avx512.cpp).
  bool intel = false;
};

// Detected features, limited by the DEEPMOE_SIMD environment variable when it is set: scalar, avx2, avx512
// (AVX-512 without AMX), amx (everything; the default).
const CpuFeatures& cpu_features();

}  // namespace dm
