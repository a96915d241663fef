// Kernel benchmark: linear() per weight dtype on real shapes of DeepSeek-V2-Lite and R1-Distill-Qwen-1.5B.
// Decode (gemv, 1 token) is reported against the read bandwidth measured in the same run (weights are cycled
// through copies filling 3x the last-level cache (beyond_caches), as a decode step streams every layer; with --hot
// one copy stays in the caches, which shows how far the kernel itself outruns memory); prefill (512 tokens)
// against the measured fp32 FMA peak (float dtypes) or the int8 VNNI peak (Q8_0/Q4_0), on AMX hosts against the
// AMX bf16 peak (packed Q8_0/Q4_0/BF16/F16 batches run on tiles there); a MoE decode step
// compares linear_multi with separate calls; --attention times the decode attention kernel instead. Times are
// medians.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "core/dtype.h"
#include "core/tensor.h"
#include "kernels/attention.h"
#include "kernels/bandwidth.h"
#include "kernels/linear.h"
#include "kernels/quant.h"

using namespace dm;

namespace {

struct Shape {
  const char* name;
  int64_t rows, cols;  // out, in
  bool gemm;           // also time prefill (lm_head only decodes: prefill needs the last token's logits)
};

const Shape kShapes[] = {
    {"v2-lite expert gate/up", 1408, 2048, true}, {"v2-lite expert down", 2048, 1408, true},
    {"v2-lite q_proj", 3072, 2048, true},         {"v2-lite dense up", 10944, 2048, true},
    {"v2-lite lm_head", 102400, 2048, false},
    {"qwen-1.5b q/o_proj", 1536, 1536, true},     {"qwen-1.5b up", 8960, 1536, true},
    {"qwen-1.5b down", 1536, 8960, true},         {"qwen-1.5b lm_head", 151936, 1536, false},
};

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// CPU time of the whole process (all threads, spinning included): rates per core-second stay meaningful when a
// shared machine gives the benchmark only part of its cores.
double cpu_s() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Random codes that decode to finite, moderate values (speed does not depend on them otherwise).
void fill_weight(DType t, uint8_t* p, size_t bytes, uint64_t seed) {
  uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
  for (size_t i = 0; i + 8 <= bytes; i += 8) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    std::memcpy(p + i, &s, 8);
  }
  auto set16 = [&](size_t at, float v) {
    uint16_t h = f32_to_f16(v);
    std::memcpy(p + at, &h, 2);
  };
  switch (t) {
    case DType::F32:
      for (size_t i = 0; i < bytes; i += 4) p[i + 3] = uint8_t((p[i + 3] & 0x80) | 0x3e);
      break;
    case DType::BF16:
      for (size_t i = 0; i < bytes; i += 2) p[i + 1] = uint8_t((p[i + 1] & 0x80) | 0x3e);
      break;
    case DType::F16:
      for (size_t i = 0; i < bytes; i += 2) p[i + 1] = uint8_t((p[i + 1] & 0x83) | 0x38);
      break;
    case DType::F8_E4M3:
      for (size_t i = 0; i < bytes; ++i) p[i] &= 0xf7;
      break;
    case DType::Q8_0:
    case DType::Q4_0: {
      const size_t bs = dtype_bytes(t, 32);
      for (size_t at = 0; at + bs <= bytes; at += bs) set16(at, 0.01f);
      break;
    }
    case DType::Q6_K:
      for (size_t at = 0; at + 210 <= bytes; at += 210) set16(at + 208, 0.01f);
      break;
    default: {  // Q4_K, Q5_K
      const size_t bs = dtype_bytes(t, 256);
      for (size_t at = 0; at + bs <= bytes; at += bs) set16(at, 0.01f), set16(at + 2, 0.02f);
    }
  }
}

std::string lower(std::string_view s) {
  std::string r(s);
  for (auto& c : r) c = char(std::tolower(c));
  return r;
}

// One V2-Lite MoE decode step's gate/up projections: 6 routed + 2 shared experts, 16 weights of [1408, 2048]
// (several copies, so they come from memory), once as 16 linear() calls and once as one linear_multi(); on huge
// pages and packed (unless unpacked) as the model holds them.
void moe_decode(DType t, ThreadPool& pool, int reps, double bw, bool unpacked) {
  const int64_t rows = 1408, cols = 2048, n_w = 16;
  Weight w{t, rows, cols, nullptr, nullptr};
  const size_t wbytes = w.bytes();
  const size_t n_sets = std::max<size_t>(2, beyond_caches(size_t(192) << 20) / (wbytes * n_w) + 1);
  HugeBuffer data(wbytes * n_w * n_sets);  // huge pages, as the model's weights (model/packed_weights.h)
  fill_weight(t, data.data(), wbytes, 3);
  for (size_t c = 1; c < n_w * n_sets; ++c) std::memcpy(data.data() + c * wbytes, data.data(), wbytes);
  std::vector<float> scales(size_t((rows + 127) / 128 * ((cols + 127) / 128)), 0.01f);
  std::vector<float> x(size_t(cols), 0.25f), y(size_t(rows * n_w));
  const bool pack = !unpacked && packable(w);
  const size_t pbytes = pack ? packed_bytes(w) : 0;
  HugeBuffer packed(pbytes * n_w * n_sets);
  std::vector<Weight> ws(n_w * n_sets, w);
  for (size_t c = 0; c < ws.size(); ++c) {
    ws[c].data = data.data() + c * wbytes;
    ws[c].scale_inv = scales.data();
    if (pack) {
      ws[c].packed = packed.data() + c * pbytes;
      pack_rows16(ws[c], packed.data() + c * pbytes);
    }
  }
  auto weight = [&](size_t set, int64_t i) { return ws[set * n_w + size_t(i)]; };
  for (int mode = 0; mode < 2; ++mode) {
    std::vector<double> times;
    for (int r = 0; r < reps; ++r) {
      const double t0 = now_s();
      for (size_t set = 0; set < n_sets; ++set) {
        if (mode == 0) {
          for (int64_t i = 0; i < n_w; ++i) linear(weight(set, i), x.data(), 1, y.data() + i * rows, &pool);
        } else {
          std::vector<LinearJob> jobs;
          for (int64_t i = 0; i < n_w; ++i) jobs.push_back({weight(set, i), x.data(), 1, y.data() + i * rows});
          linear_multi(jobs.data(), jobs.size(), &pool);
        }
      }
      times.push_back((now_s() - t0) / double(n_sets));
    }
    const double tm = median(times), gbs = double(wbytes * n_w) / tm / 1e9;
    std::printf("moe  %-8s 16 x [1408, 2048] %-13s | %8.3f ms | %6.1f GB/s | %3.0f%% of measured bandwidth\n",
                lower(dtype_name(t)).c_str(), mode ? "linear_multi" : "linear x16", tm * 1e3, gbs, 100 * gbs / bw);
  }
  std::fflush(stdout);
}

// Decode attention of one token on one thread (attend_shared_rows) over a cache laid out as the model's KvCache:
// blocks of 16 positions on huge pages, [block][layer][position][slot floats]. "cached": one layer's rows, which
// stay in the caches; "memory": cycled through `layers` layers' rows, as a decode step reads them.
void attention_decode(int reps) {
  struct Case {
    const char* name;
    int64_t heads, dk, dv, slot, value_offset;  // value_offset < 0: the values are the keys' first dv columns
  };
  const Case cases[] = {
      {"qwen-1.5b GQA (3 of 6 query heads per KV head)", 3, 128, 128, 512, 256},
      {"llama-8b GQA (4 query heads per KV head)", 4, 128, 128, 2048, 1024},
      {"v2-lite MLA (8 of 16 heads, 576-wide latent)", 8, 576, 512, 576, -1},
  };
  const int64_t layers = 28;
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (const Case& c : cases)
    for (int64_t n : {512, 2048, 4096}) {
      constexpr int64_t kBlock = 16;
      HugeBuffer buf(size_t(layers * n * c.slot) * sizeof(float));
      float* cache = reinterpret_cast<float*>(buf.data());
      for (int64_t i = 0; i < layers * n * c.slot; ++i) cache[i] = nd(rng);
      std::vector<float> q(size_t(c.heads * c.dk)), out(size_t(c.heads * c.dv));
      for (float& v : q) v = nd(rng);
      std::vector<std::vector<const float*>> keys(static_cast<size_t>(layers)), values(static_cast<size_t>(layers));
      for (int64_t l = 0; l < layers; ++l)
        for (int64_t j = 0; j < n; ++j) {
          const float* row = cache + ((j / kBlock * layers + l) * kBlock + j % kBlock) * c.slot;
          keys[size_t(l)].push_back(row);
          values[size_t(l)].push_back(c.value_offset < 0 ? row : row + c.value_offset);
        }
      const double flop = 2.0 * double(n) * double(c.heads) * double(c.dk + c.dv);
      const double bytes = double(n) * double(c.value_offset < 0 ? c.dk : c.dk + c.dv) * sizeof(float);
      for (bool from_memory : {false, true}) {
        const int64_t nl = from_memory ? layers : 1;
        std::vector<double> times;
        for (int r = 0; r < std::max(reps, 3); ++r) {
          const double t0 = now_s();
          for (int64_t l = 0; l < nl; ++l)
            attend_shared_rows(q.data(), c.dk, c.heads, keys[size_t(l)].data(), values[size_t(l)].data(), n, c.dk,
                               c.dv, 0.05f, out.data(), c.dv);
          times.push_back((now_s() - t0) / double(nl));
        }
        const double tm = median(times);
        std::printf("attn %-48s n=%-5lld %-6s | %8.1f us | %6.1f GFLOP/s | %6.1f GB/s of rows\n", c.name,
                    (long long)n, from_memory ? "memory" : "cached", tm * 1e6, flop / tm / 1e9, bytes / tm / 1e9);
      }
    }
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_kernels: linear() speed per dtype on real model shapes"};
  int threads = 2, reps = 5, gemm_tokens = 512;
  std::vector<std::string> dtypes = {"f32", "bf16", "f16", "f8_e4m3", "q8_0", "q4_0", "q4_k", "q5_k", "q6_k"};
  std::string only;
  bool no_gemm = false, no_moe = false, unpacked = false, hot = false;
  app.add_option("-t,--threads", threads, "threads");
  app.add_option("-r,--reps", reps, "timed repetitions (median reported)");
  app.add_option("--dtype", dtypes, "dtypes to run");
  app.add_option("--shape", only, "only shapes whose name contains this");
  app.add_option("--gemm-tokens", gemm_tokens, "tokens of the prefill GEMM");
  app.add_flag("--no-gemm", no_gemm, "decode only");
  app.add_flag("--unpacked", unpacked, "Q8_0/Q4_0: the kernels over the rows as stored, not the packed layout");
  app.add_flag("--no-moe", no_moe, "skip the MoE decode step (linear_multi against separate calls)");
  app.add_flag("--hot", hot,
               "decode from one copy of the weights, which stays in the caches: the kernel's own rate, what it "
               "leaves to spare over the memory's");
  bool attention = false;
  app.add_flag("--attention", attention,
               "time decode attention (attend_shared_rows, one thread) on GQA and MLA shapes instead");
  CLI11_PARSE(app, argc, argv);
  if (attention) {
    attention_decode(reps);
    return 0;
  }

  ThreadPool pool(threads);
  const double fma_peak = measure_fma_gflops(pool), vnni_peak = measure_vnni_gops(pool);
  const double amx_peak = linear_simd() == Simd::Amx ? measure_amx_bf16_gflops(pool) : 0.0;
  std::printf("threads %d | fp32 FMA peak %.0f GFLOP/s | int8 VNNI peak %.0f GOP/s | AMX bf16 peak %.0f GFLOP/s | simd %d\n",
              threads, fma_peak, vnni_peak, amx_peak, int(linear_simd()));
  const DType all[] = {DType::F32,  DType::BF16, DType::F16,  DType::F8_E4M3, DType::Q8_0,
                       DType::Q4_0, DType::Q4_K, DType::Q5_K, DType::Q6_K};
  ReadBandwidthProbe probe(pool);  // one buffer for every dtype's probe (a fresh one per probe slows what follows)
  for (const std::string& want : dtypes) {
    DType t = DType::F32;
    bool found = false;
    for (DType d : all)
      if (lower(dtype_name(d)) == lower(want)) t = d, found = true;
    if (!found) {
      std::fprintf(stderr, "unknown dtype %s\n", want.c_str());
      return 1;
    }
    const double bw = probe.measure();
    std::printf("-- %s | measured read bandwidth %.1f GB/s\n", lower(dtype_name(t)).c_str(), bw);
    if (!no_moe && 2048 % dtype_block(t) == 0) moe_decode(t, pool, reps, bw, unpacked);
    for (const Shape& sh : kShapes) {
      if (!only.empty() && std::string(sh.name).find(only) == std::string::npos) continue;
      if (sh.cols % dtype_block(t) != 0) {  // e.g. K-quants need rows of whole 256-value super-blocks
        std::printf("skip %-8s n=%-6lld k=%-5lld | rows are not whole %lld-value blocks  (%s)\n",
                    lower(dtype_name(t)).c_str(), (long long)sh.rows, (long long)sh.cols,
                    (long long)dtype_block(t), sh.name);
        continue;
      }
      Weight w{t, sh.rows, sh.cols, nullptr, nullptr};
      const size_t wbytes = w.bytes();
      const size_t n_copies = hot ? 1 : std::max<size_t>(1, beyond_caches(size_t(192) << 20) / wbytes + 1);
      HugeBuffer data(wbytes * n_copies);  // huge pages, as the model's weights (model/packed_weights.h)
      fill_weight(t, data.data(), wbytes, 1);
      for (size_t c = 1; c < n_copies; ++c) std::memcpy(data.data() + c * wbytes, data.data(), wbytes);
      std::vector<float> scales(size_t((sh.rows + 127) / 128 * ((sh.cols + 127) / 128)), 0.01f);
      const size_t read_bytes = wbytes + (t == DType::F8_E4M3 ? scales.size() * 4 : 0);
      std::vector<Weight> ws(n_copies, w);
      const bool pack = !unpacked && packable(w);
      HugeBuffer packed(pack ? packed_bytes(w) * n_copies : 0);
      for (size_t c = 0; c < n_copies; ++c) {
        ws[c].data = data.data() + c * wbytes;
        ws[c].scale_inv = scales.data();
        if (pack) {
          ws[c].packed = packed.data() + c * packed_bytes(w);
          pack_rows16(ws[c], packed.data() + c * packed_bytes(w));
        }
      }
      std::vector<float> x(size_t(sh.cols * std::max(1, gemm_tokens)), 0.5f), y(size_t(sh.rows * std::max(1, gemm_tokens)));
      for (size_t i = 0; i < x.size(); ++i) x[i] = float(int(i * 7919 % 2001) - 1000) / 1000.0f;

      // Decode: one token, cycling through the copies so each gemv reads its weights from memory (--hot: from
      // the caches).
      const size_t iters = std::max<size_t>(n_copies, 20);
      for (size_t i = 0; i < n_copies; ++i) linear(ws[i], x.data(), 1, y.data(), &pool);
      std::vector<double> times;
      for (int r = 0; r < reps; ++r) {
        const double t0 = now_s();
        for (size_t i = 0; i < iters; ++i) linear(ws[i % n_copies], x.data(), 1, y.data(), &pool);
        times.push_back((now_s() - t0) / double(iters));
      }
      const double tg = median(times);
      const double gbs = double(read_bytes) / tg / 1e9;
      std::printf("gemv %-8s n=%-6lld k=%-5lld | %8.3f ms | %6.1f GB/s | %3.0f%% of measured bandwidth  (%s)\n",
                  lower(dtype_name(t)).c_str(), (long long)sh.rows, (long long)sh.cols, tg * 1e3, gbs,
                  100 * gbs / bw, sh.name);
      std::fflush(stdout);

      if (no_gemm || !sh.gemm || gemm_tokens <= 1) continue;
      linear(ws[0], x.data(), gemm_tokens, y.data(), &pool);  // warm-up
      times.clear();
      std::vector<double> cpu_times;
      for (int r = 0; r < std::max(3, reps / 2 + 1); ++r) {
        const double t0 = now_s(), c0 = cpu_s();
        linear(ws[size_t(r) % n_copies], x.data(), gemm_tokens, y.data(), &pool);
        times.push_back(now_s() - t0);
        cpu_times.push_back(cpu_s() - c0);
      }
      const double tp = median(times);
      const double flop = 2.0 * double(sh.rows) * double(sh.cols) * gemm_tokens;
      const double gflops = flop / tp / 1e9, per_core = flop / median(cpu_times) / 1e9;
      const bool int8 = (t == DType::Q8_0 || t == DType::Q4_0) && vnni_peak > 0;
      const bool amx = amx_peak > 0 && ws[0].packed &&
                       (t == DType::Q8_0 || t == DType::Q4_0 || t == DType::BF16 || t == DType::F16);
      const double peak = amx ? amx_peak : int8 ? vnni_peak : fma_peak;
      std::printf(
          "gemm %-8s m=%d n=%-6lld k=%-5lld | %8.3f ms | %6.1f GFLOP/s | %3.0f%% of %s peak | %5.1f GFLOP/s per "
          "core-second  (%s)\n",
          lower(dtype_name(t)).c_str(), gemm_tokens, (long long)sh.rows, (long long)sh.cols, tp * 1e3, gflops,
          100 * gflops / peak, amx ? "AMX bf16" : int8 ? "int8 VNNI" : "fp32 FMA", per_core, sh.name);
      std::fflush(stdout);
    }
  }
  return 0;
}
