// Measured hardware limits that kernel speeds are reported against: memory read bandwidth (decode is bound by
// it) and the fp32 FMA / int8 VNNI / AMX bf16 rates (prefill is bound by them). Each takes well under a second.
#pragma once
#include <cstddef>

#include "core/tensor.h"
#include "core/thread_pool.h"

namespace dm {

// A working set that comes from memory, not the caches: at least `at_least` bytes and 3x the largest cache.
size_t beyond_caches(size_t at_least);

// STREAM-like read of a buffer of `bytes` (larger than the caches, on huge pages where the kernel grants them)
// by all threads of the pool, each its own contiguous slice, in GB/s (1e9 bytes per second): the best of five
// patterns (one sequential stream; 4 rows side by side with software prefetch; one and four streams with each
// line prefetched 2 KiB ahead; two streams with each line prefetched 4 KiB ahead into L2 and 2 KiB into L1, as
// the decode kernels read on Intel), each the median of 5 passes.
// bytes = 0: beyond_caches(1 GiB).
// The buffer is mapped and faulted in once, by the constructor; measure() can then run as often as wanted.
// note: probing often, keep one probe: on a VM guest, mapping and faulting in a fresh 1.5 GiB for each probe
// took the host's time (steal) and left the model's decode ~10% slower for a few seconds after it.
class ReadBandwidthProbe {
 public:
  explicit ReadBandwidthProbe(ThreadPool& pool, size_t bytes = 0);
  double measure();

 private:
  ThreadPool& pool_;
  size_t slice_;  // bytes per thread, a multiple of 4 KiB
  HugeBuffer buf_;
};
double measure_read_bandwidth_gbs(ThreadPool& pool, size_t bytes = 0);  // one probe, one measure()

// Peak fp32 FMA rate of all threads (GFLOP/s, 2 flops per multiply-add) from a short loop of independent
// 512-bit (AVX-512) or 256-bit (AVX2) FMAs; 0 where the CPU has neither.
double measure_fma_gflops(ThreadPool& pool);
// Peak int8 multiply-add rate with AVX-512 VNNI vpdpbusd (GOP/s, 2 ops per multiply-add); 0 without VNNI.
double measure_vnni_gops(ThreadPool& pool);
// Peak bf16 dot-product rate with AVX512-BF16 vdpbf16ps (GFLOP/s, 2 flops per multiply-add); 0 without it.
double measure_dpbf16_gflops(ThreadPool& pool);
// Peak rate of AMX bf16 tile dot products (tdpbf16ps, GFLOP/s, 2 flops per multiply-add); 0 without AMX.
double measure_amx_bf16_gflops(ThreadPool& pool);

}  // namespace dm
