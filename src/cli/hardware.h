// What the machine can do, measured in the same run as a benchmark: sustained memory read bandwidth (all threads
// streaming one large buffer) and peak f32 FMA rate (independent register accumulators, the widest vector unit).
// Decode is bound by the first, prefill by the second; `deepmoe bench` reports its speed as a share of each.
#pragma once
#include <cstddef>
#include <string>

#include "core/thread_pool.h"

namespace dm::cli {

// Best of a few passes reading `bytes` with every thread of `pool`, in GB/s (1e9 bytes).
double measure_read_bandwidth_gbs(ThreadPool& pool, size_t bytes);
// f32 FMA throughput of all threads in GFLOP/s (an FMA counts 2); `isa` says which vectors were used.
double measure_peak_gflops(ThreadPool& pool, std::string* isa = nullptr);

}  // namespace dm::cli
