// deepmoe bench: prefill and decode speed of a model, like llama-bench (pp<N> / tg<N>: median of runs, min-max),
// reported against the hardware measured in the same run: decode against memory read bandwidth (it streams the
// active weights once per step: weight_bytes_per_token), prefill against the peak f32 FMA rate (2 FLOPs per
// active parameter and token). Runs the model directly (no scheduler): B sequences, one forward per step.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <numeric>

#include "cli/commands.h"
#include "cli/model_loading.h"
#include "core/cpu.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/linear.h"
#include "kernels/bandwidth.h"
#include "model/kv_cache.h"
#include "model/model.h"

namespace dm::cli {

namespace {

// A "Vm..." line of /proc/self/status in bytes (0 if unavailable).
double proc_status_bytes(const char* key) {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  double v = 0;
  const size_t n = std::strlen(key);
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, key, n) == 0 && line[n] == ':') v = std::atof(line + n + 1) * 1024.0;  // kB
  std::fclose(f);
  return v;
}

using Clock = std::chrono::steady_clock;

struct Stats {
  double median = 0, min = 0, max = 0;
};
Stats stats_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  Stats s;
  if (v.empty()) return s;
  s.min = v.front();
  s.max = v.back();
  s.median = v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
  return s;
}

int32_t argmax(const float* row, int64_t n) {
  return int32_t(std::max_element(row, row + n) - row);
}

// Block tables and random prompts of `batch` sequences, each with room for `positions` tokens.
struct BenchSeqs {
  std::vector<std::vector<int32_t>> tables, prompts;
};

BenchSeqs bench_seqs(const ModelInfo& info, int bs, int64_t positions, int64_t n_prompt, int batch, uint64_t seed) {
  const int64_t blocks_per_seq = (positions + bs - 1) / bs;
  BenchSeqs b{std::vector<std::vector<int32_t>>(size_t(batch)), std::vector<std::vector<int32_t>>(size_t(batch))};
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  for (int s = 0; s < batch; ++s) {
    b.tables[size_t(s)].resize(size_t(blocks_per_seq));
    std::iota(b.tables[size_t(s)].begin(), b.tables[size_t(s)].end(), int32_t(s * blocks_per_seq));
    for (int64_t i = 0; i < n_prompt; ++i) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      b.prompts[size_t(s)].push_back(int32_t(x % uint64_t(info.vocab_size)));
    }
  }
  return b;
}

// Fills positions [0, depth) of every sequence with a random context (once, untimed), as llama-bench's -d.
void fill_context(Model& model, KvCache& kv, ThreadPool& pool, int64_t depth, int64_t positions, int batch) {
  if (depth <= 0) return;
  const BenchSeqs b = bench_seqs(model.info(), kv.block_size(), positions, depth, batch, 977);
  std::vector<float> logits(size_t(batch) * size_t(model.info().vocab_size));
  std::vector<SeqInput> in(static_cast<size_t>(batch));
  for (int s = 0; s < batch; ++s) in[size_t(s)] = {b.prompts[size_t(s)], 0, b.tables[size_t(s)], Logits::Last};
  model.forward(in, kv, logits.data(), &pool);
}

// One repetition: prefill `n_prompt` tokens in each of `batch` sequences (one forward), then `n_gen` decode
// steps over all of them, both after the `depth` positions of context already in the cache. Returns {prefill
// seconds, decode seconds}.
std::pair<double, double> run_once(Model& model, KvCache& kv, ThreadPool& pool, int64_t depth, int64_t n_prompt,
                                   int64_t n_gen, int batch, uint64_t seed,
                                   const std::function<void()>& before_decode = {}) {
  const ModelInfo& info = model.info();
  BenchSeqs b = bench_seqs(info, kv.block_size(), depth + std::max(n_prompt, n_gen), n_prompt, batch, seed);
  auto& tables = b.tables;
  auto& prompts = b.prompts;
  std::vector<float> logits(size_t(batch) * size_t(info.vocab_size));
  std::vector<SeqInput> in(static_cast<size_t>(batch));
  for (int s = 0; s < batch; ++s) in[size_t(s)] = {prompts[size_t(s)], depth, tables[size_t(s)], Logits::Last};
  auto t0 = Clock::now();
  model.forward(in, kv, logits.data(), &pool);
  const double prefill = std::chrono::duration<double>(Clock::now() - t0).count();

  // Decode is its own test, as llama-bench's tg: from the context of `depth` positions (empty by default), each
  // sequence starts from its prompt's first token and feeds back its greedy choice n_gen times.
  std::vector<int32_t> next(static_cast<size_t>(batch));
  for (int s = 0; s < batch; ++s) next[size_t(s)] = n_prompt > 0 ? prompts[size_t(s)][0] : 1;
  if (before_decode && n_gen > 0) before_decode();
  t0 = Clock::now();
  for (int64_t step = 0; step < n_gen; ++step) {
    for (int s = 0; s < batch; ++s)
      in[size_t(s)] = {std::span<const int32_t>(&next[size_t(s)], 1), depth + step, tables[size_t(s)], Logits::Last};
    model.forward(in, kv, logits.data(), &pool);
    for (int s = 0; s < batch; ++s) next[size_t(s)] = argmax(logits.data() + size_t(s) * info.vocab_size, info.vocab_size);
  }
  const double decode = std::chrono::duration<double>(Clock::now() - t0).count();
  return {prefill, decode};
}

}  // namespace

int cmd_bench(int argc, char** argv) {
  CLI::App app{"Prefill / decode tokens per second, against measured memory bandwidth and FLOP rate", "deepmoe bench"};
  std::string model_dir = default_model_dir();
  int64_t n_prompt = 512, n_gen = 128, depth = 0;
  int reps = 5, threads = 0, batch = 1;
  bool json = false;
  std::string quant;
  app.add_option("-m,--model", model_dir, "model directory (Hugging Face layout) or .gguf file");
  app.add_option("-p,--n-prompt", n_prompt, "prompt tokens per sequence (prefill test)")->check(CLI::Range(1, 1 << 20));
  app.add_option("-n,--n-gen", n_gen, "generated tokens per sequence (decode test)")->check(CLI::Range(0, 1 << 20));
  app.add_option("-d,--depth", depth, "tokens of context already in the cache before each test (as llama-bench -d)")
      ->check(CLI::Range(0, 1 << 20));
  app.add_option("-r,--repetitions", reps, "runs; the median is reported")->check(CLI::Range(1, 1000));
  app.add_option("-t,--threads", threads, "worker threads (0: one per CPU this process may use)");
  app.add_option("--batch", batch, "sequences decoded together")->check(CLI::Range(1, 4096));
  app.add_option("--quant", quant, "quantize at load: q8_0, q4_0");
  app.add_flag("--json", json, "print one JSON object instead of the table");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  LoadOptions opts;
  opts.quant = quant;
  std::unique_ptr<Model> model = load_model_with_progress(model_dir, opts, json);
  const double load_peak_rss = proc_status_bytes("VmHWM");  // before any buffer of the benchmark itself
  const ModelInfo& info = model->info();
  if (info.max_context > 0 && depth + std::max(n_prompt, n_gen) > info.max_context)
    fail("-d ", depth, " + -p ", n_prompt, " / -n ", n_gen, " exceeds the model's context of ", info.max_context,
         " tokens");
  ThreadPool pool(threads);

  const int bs = 16;
  const int64_t positions = depth + std::max(n_prompt, n_gen);
  const int64_t blocks = int64_t(batch) * ((positions + bs - 1) / bs);
  KvCache kv(info.n_layers, info.kv_width, bs, blocks);
  if (!json)
    std::fprintf(stderr, "bench: %s, %d threads, batch %d, KV cache %s; measuring the machine...\n",
                 info.model_type.c_str(), pool.size(), batch, human_bytes(double(kv.bytes())).c_str());
  // A buffer well beyond the caches: 4x the weights, between 256 MiB and 1 GiB, and at least 3x the last-level
  // cache (a Xeon guest's 480 MiB L3 lifted a 1 GiB probe by ~2%).
  const size_t bw_bytes =
      beyond_caches(std::clamp<size_t>(size_t(4 * info.weight_bytes), size_t(256) << 20, size_t(1) << 30));
  const double int8_peak = measure_vnni_gops(pool);  // 0 without AVX-512 VNNI
  const std::string isa = cpu_features().avx512f ? "avx512 f32 fma" : cpu_features().avx2 ? "avx2 f32 fma" : "none";
  const double peak = measure_fma_gflops(pool);  // 0 without AVX2 / AVX-512
  const double amx_peak = linear_simd() == Simd::Amx ? measure_amx_bf16_gflops(pool) : 0.0;  // 0: not in use
  // vdpbf16ps: what BF16 prompt batches run on where there are no AMX tiles (0: not in use)
  const double dp_peak = linear_simd() == Simd::Avx512 ? measure_dpbf16_gflops(pool) : 0.0;

  run_once(*model, kv, pool, 0, std::min<int64_t>(n_prompt, 16), std::min<int64_t>(n_gen, 2), 1, 0);  // warm-up
  fill_context(*model, kv, pool, depth, positions, batch);  // the tests never write below `depth`
  // The host's memory bandwidth drifts (on shared machines by 2x within minutes): it is probed right before and
  // right after every decode run, and each run's speed is taken as a share of the mean of its two probes. One
  // probe buffer serves them all (see ReadBandwidthProbe); it is released before the RSS after the runs is read.
  auto probe = n_gen > 0 ? std::make_unique<ReadBandwidthProbe>(pool, bw_bytes) : nullptr;
  std::vector<double> pp, tg, bws, probes, shares;
  const double bytes_per_token = double(info.weight_bytes_per_token);
  for (int r = 0; r < reps; ++r) {
    double before = 0;
    auto [p, d] = run_once(*model, kv, pool, depth, n_prompt, n_gen, batch, uint64_t(r) + 1,
                           [&] { before = probe->measure(); });
    pp.push_back(double(n_prompt) * batch / p);
    const double after = n_gen > 0 ? probe->measure() : 0.0;
    const double bw_r = (before + after) / 2;
    bws.push_back(bw_r);
    probes.insert(probes.end(), {before, after});
    if (n_gen > 0) {
      tg.push_back(double(n_gen) * batch / d);
      shares.push_back(bw_r > 0 ? tg.back() / batch * bytes_per_token / 1e9 / bw_r : 0.0);
    }
  }
  const Stats sp = stats_of(pp), sd = stats_of(tg), sb = stats_of(probes), ss = stats_of(shares);
  const double bw = stats_of(bws).median;
  probe.reset();
  const double rss_after = proc_status_bytes("VmRSS");
  // Matrix products per prompt token: every active weight but the embedding table (a row lookup); the lm_head
  // runs for the last token only. Attention's own products are left out (under 2% at 512 tokens).
  const double head_params = double(info.vocab_size) * double(info.hidden_size);
  const double flops_per_token = 2.0 * (double(info.n_active_params - info.n_lookup_params) - head_params) +
                                 2.0 * head_params / double(n_prompt);
  // Decode streams the active weights once per step (a lower bound for batch > 1, where more experts are hit).
  const double decode_gbs = sd.median / batch * bytes_per_token / 1e9;
  const double prefill_gflops = sp.median * flops_per_token / 1e9;

  if (json) {
    nlohmann::ordered_json j;
    j["model"] = model_dir;
    j["model_type"] = info.model_type;
    j["threads"] = pool.size();
    j["pinned"] = pool.pinned();
    j["batch"] = batch;
    j["n_prompt"] = n_prompt;
    j["n_gen"] = n_gen;
    j["depth"] = depth;
    j["repetitions"] = reps;
    j["prefill_tok_s"] = {{"median", sp.median}, {"min", sp.min}, {"max", sp.max}};
    j["decode_tok_s"] = {{"median", sd.median}, {"min", sd.min}, {"max", sd.max}};
    j["read_bandwidth_gb_s"] = bw;
    j["weight_bytes_per_token"] = info.weight_bytes_per_token;
    j["decode_weight_gb_s"] = decode_gbs;
    j["decode_bandwidth_share"] = ss.median;  // median over the runs of (run's GB/s / its own probe)
    j["read_bandwidth_gb_s_min"] = sb.min;
    j["read_bandwidth_gb_s_max"] = sb.max;
    // Each repetition on its own: on a host whose bandwidth changes from one minute to the next, a run is read
    // against the probes taken right before and after it.
    nlohmann::ordered_json runs = nlohmann::ordered_json::array();
    for (size_t r = 0; r < pp.size(); ++r) {
      nlohmann::ordered_json one = {{"prefill_tok_s", pp[r]}};
      if (n_gen > 0)
        one.update({{"decode_tok_s", tg[r]}, {"probe_before_gb_s", probes[2 * r]},
                    {"probe_after_gb_s", probes[2 * r + 1]}, {"decode_bandwidth_share", shares[r]}});
      runs.push_back(std::move(one));
    }
    j["runs"] = std::move(runs);
    j["peak_gflop_s"] = peak;
    j["peak_isa"] = isa;
    j["peak_int8_gop_s"] = int8_peak;
    j["prefill_int8_share"] = int8_peak > 0 ? prefill_gflops / int8_peak : 0.0;
    j["peak_amx_bf16_gflop_s"] = amx_peak;
    j["prefill_amx_share"] = amx_peak > 0 ? prefill_gflops / amx_peak : 0.0;
    j["peak_bf16_dot_gflop_s"] = dp_peak;
    j["prefill_bf16_dot_share"] = dp_peak > 0 ? prefill_gflops / dp_peak : 0.0;
    j["load_peak_rss_bytes"] = load_peak_rss;
    j["rss_after_runs_bytes"] = rss_after;
    j["kv_cache_bytes"] = kv.bytes();
    j["flops_per_token"] = flops_per_token;
    j["prefill_gflop_s"] = prefill_gflops;
    j["prefill_flop_share"] = peak > 0 ? prefill_gflops / peak : 0.0;
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("model: %s (%s), %d layers, %.2f B params (%.2f B active), %s, %s\n", info.model_type.c_str(),
              info.architecture.c_str(), info.n_layers, info.n_params / 1e9, info.n_active_params / 1e9,
              human_bytes(double(info.weight_bytes)).c_str(), info.dtype_summary.c_str());
  std::printf("machine: %d threads%s | read bandwidth %.1f GB/s (%.1f - %.1f, probed before and after each decode "
              "run) | peak "
              "%.0f GFLOP/s (%s) | int8 peak %.0f GOP/s%s%s\n",
              pool.size(), pool.pinned() ? " (workers pinned)" : "", bw, sb.min, sb.max, peak, isa.c_str(), int8_peak,
              amx_peak > 0 ? (" | AMX bf16 peak " + std::to_string(int(amx_peak)) + " GFLOP/s").c_str() : "",
              dp_peak > 0 ? (" | bf16 dot peak " + std::to_string(int(dp_peak)) + " GFLOP/s").c_str() : "");
  std::printf("memory: peak RSS at load %s, RSS after the runs %s (weights %s + KV cache %s)\n",
              human_bytes(load_peak_rss).c_str(), human_bytes(rss_after).c_str(),
              human_bytes(double(info.weight_bytes)).c_str(), human_bytes(double(kv.bytes())).c_str());
  const int w = depth > 0 ? 18 : 10;
  std::printf("%-*s | %12s | %21s | %s\n", w, "test", "tok/s", "min - max", "share of the hardware limit");
  char name[32];
  const std::string at = depth > 0 ? " @ d" + std::to_string(depth) : "";
  std::snprintf(name, sizeof name, "pp%lld%s", (long long)n_prompt, at.c_str());
  std::printf("%-*s | %12.2f | %9.2f - %9.2f | %.1f GFLOP/s = %.1f%% of f32 peak, %.1f%% of int8 peak", w, name,
              sp.median, sp.min, sp.max, prefill_gflops, peak > 0 ? 100 * prefill_gflops / peak : 0.0,
              int8_peak > 0 ? 100 * prefill_gflops / int8_peak : 0.0);
  if (amx_peak > 0) std::printf(", %.1f%% of AMX bf16 peak", 100 * prefill_gflops / amx_peak);
  if (dp_peak > 0) std::printf(", %.1f%% of bf16 dot peak", 100 * prefill_gflops / dp_peak);
  std::printf("\n");
  if (n_gen > 0) {
    std::snprintf(name, sizeof name, "tg%lld%s", (long long)n_gen, at.c_str());
    std::printf("%-*s | %12.2f | %9.2f - %9.2f | %.1f GB/s of weights = %.1f%% of measured bandwidth (median of "
                "the runs' shares)\n", w, name, sd.median, sd.min, sd.max, decode_gbs, 100 * ss.median);
  }
  if (batch > 1) std::printf("(batch %d: tok/s are totals over all sequences)\n", batch);
  return 0;
}

}  // namespace dm::cli
