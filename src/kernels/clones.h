// Function multiversioning for the hot portable loops: compiled for AVX-512 and AVX2 as well as the baseline,
// picked at load by the CPU (off under ASan, whose instrumentation does not mix with ifuncs).
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define DM_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DM_CLONES
#endif
