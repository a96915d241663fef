// Decode speed of a Llama-style model (Qwen2 / Llama / Qwen3 / Qwen3-MoE) with random BF16 weights at the shapes
// of a real config.json (default: DeepSeek-R1-Distill-Qwen-1.5B), against the machine's measured read bandwidth.
// Usage: bench_dense_decode [config.json] [n_decode=16] [n_context=64] [threads=0 (all)]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "loader/json_config.h"
#include "loader/weights.h"
#include "model/llama.h"

using namespace dm;
using Clock = std::chrono::steady_clock;

static double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Read bandwidth: sum a 1 GiB buffer once per thread share (the best of three passes).
static double measure_read_gbs(ThreadPool& pool) {
  const int64_t n = int64_t(1) << 28;  // floats
  Buffer b(size_t(n) * sizeof(float));
  float* p = b.as<float>();
  pool.parallel_for(n, [&](int64_t a, int64_t e) {
    for (int64_t i = a; i < e; ++i) p[i] = 1.0f;
  });
  double best = 0;
  std::vector<float> sums(size_t(pool.size()) * 16);
  for (int rep = 0; rep < 3; ++rep) {
    auto t0 = Clock::now();
    pool.run([&](int t, int nt) {
      const int64_t a = n * t / nt, e = n * (t + 1) / nt;
      float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (int64_t i = a; i + 3 < e; i += 4) {
        s0 += p[i];
        s1 += p[i + 1];
        s2 += p[i + 2];
        s3 += p[i + 3];
      }
      sums[size_t(t) * 16] = s0 + s1 + s2 + s3;
    });
    best = std::max(best, double(n) * sizeof(float) / seconds_since(t0) / 1e9);
  }
  return best;
}

int main(int argc, char** argv) {
  const std::string config =
      argc > 1 && argv[1][0]
          ? argv[1]
          : std::string(DM_TEST_DATA) + "/fixtures/configs/deepseek-r1-distill-qwen-1.5b-resaved/config.json";
  const int n_decode = argc > 2 ? std::atoi(argv[2]) : 16;
  const int n_context = argc > 3 ? std::atoi(argv[3]) : 64;
  ThreadPool pool(argc > 4 ? std::atoi(argv[4]) : 0);
  try {
    JsonConfig cfg = JsonConfig::load(config);
    auto t0 = Clock::now();
    auto store = std::make_shared<WeightStore>();
    uint64_t state = 0x9e3779b97f4a7c15ull;
    for (const TensorSpec& s : llama_tensor_specs(cfg)) {
      int64_t n = 1;
      for (int64_t d : s.shape) n *= d;
      Buffer buf(size_t(n) * 2);
      uint16_t* w = buf.as<uint16_t>();
      const float scale = s.kind == TensorSpec::Kind::Norm ? 0.0f
                          : s.shape.size() == 2            ? 1.0f / float(s.shape[1])
                                                           : 0.02f;
      for (int64_t i = 0; i < n; ++i) {
        state ^= state << 13, state ^= state >> 7, state ^= state << 17;  // xorshift64
        const float u = float(state >> 40) / float(1 << 24) - 0.5f;       // [-0.5, 0.5)
        w[i] = f32_to_bf16(s.kind == TensorSpec::Kind::Norm ? 1.0f : u * 3.46f * std::sqrt(scale));
      }
      store->add_owned(s.name, "random", DType::BF16, s.shape, std::move(buf));
    }
    auto model = load_llama(cfg, store, {});
    const ModelInfo& info = model->info();
    std::printf(
        "model %s (%s): %.3f B params, %.2f GB of BF16 weights, %.2f GB read per decoded token; made in %.1f s\n",
        info.architecture.c_str(), config.c_str(), double(info.n_params) / 1e9, double(info.weight_bytes) / 1e9,
        double(info.weight_bytes_per_token) / 1e9, seconds_since(t0));

    const int bs = 16;
    const int total = n_context + n_decode;
    KvCache kv(info.n_layers, info.kv_width, bs, (total + bs - 1) / bs);
    std::vector<int32_t> blocks;
    for (int i = 0; i < (total + bs - 1) / bs; ++i) blocks.push_back(i);
    std::vector<int32_t> toks(static_cast<size_t>(total));
    for (int i = 0; i < total; ++i) toks[size_t(i)] = int32_t((i * 7919) % info.vocab_size);
    std::vector<float> logits(size_t(info.vocab_size));

    t0 = Clock::now();
    SeqInput pre{std::span<const int32_t>(toks.data(), size_t(n_context)), 0, blocks, Logits::Last};
    model->forward(std::span<const SeqInput>(&pre, 1), kv, logits.data(), &pool);
    const double t_pre = seconds_since(t0);
    t0 = Clock::now();
    for (int i = n_context; i < total; ++i) {
      SeqInput in{std::span<const int32_t>(toks.data() + i, 1), i, blocks, Logits::Last};
      model->forward(std::span<const SeqInput>(&in, 1), kv, logits.data(), &pool);
    }
    const double t_dec = seconds_since(t0);
    const double bw = measure_read_gbs(pool);
    const double tps = n_decode / t_dec, gbs = double(info.weight_bytes_per_token) * tps / 1e9;
    std::printf("prefill %d tokens | %.3f s | %.1f tok/s\n", n_context, t_pre, n_context / t_pre);
    std::printf(
        "decode  %d tokens after %d | %.1f ms/token | %.2f tok/s | %.1f GB/s | %.0f%% of measured read "
        "bandwidth (%.1f GB/s, %d threads)\n",
        n_decode, n_context, 1e3 * t_dec / n_decode, tps, gbs, 100 * gbs / bw, bw, pool.size());
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_dense_decode: %s\n", e.what());
    return 1;
  }
  return 0;
}
