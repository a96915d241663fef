// DeepSeek forward pass speed on a random-weight model built in memory from the family's tensor specs (no files):
// prefill of --tokens tokens, then --decode single-token steps through the latent KV cache. Prints tokens/s and the
// achieved rate: GFLOP/s for prefill (2 · active parameters per token + attention), GB/s of weights for decode.
// Shapes default to a small DeepSeek-V3 (MLA + 16 routed experts, top-4 in groups); --hidden etc. scale it.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <random>

#include "core/dtype.h"
#include "loader/json_config.h"
#include "loader/weights.h"
#include "model/deepseek.h"

using namespace dm;

int main(int argc, char** argv) {
  CLI::App app{"DeepSeek forward pass: prefill and decode speed on random weights"};
  int64_t hidden = 512, n_tokens = 256, n_decode = 16, layers = 3, experts = 16, vocab = 4096;
  int threads = 0;
  std::string dtype = "bf16";
  app.add_option("--hidden", hidden);
  app.add_option("--layers", layers);
  app.add_option("--experts", experts);
  app.add_option("--vocab", vocab);
  app.add_option("--tokens", n_tokens, "prefill length");
  app.add_option("--decode", n_decode, "decode steps after the prefill");
  app.add_option("--dtype", dtype, "bf16 | f32")->check(CLI::IsMember({"bf16", "f32"}));
  app.add_option("-t,--threads", threads);
  CLI11_PARSE(app, argc, argv);

  nlohmann::json j = {
      {"architectures", {"DeepseekV3ForCausalLM"}}, {"model_type", "deepseek_v3"}, {"vocab_size", vocab},
      {"hidden_size", hidden}, {"num_hidden_layers", layers}, {"num_attention_heads", hidden / 64},
      {"q_lora_rank", hidden * 3 / 4}, {"kv_lora_rank", hidden / 2}, {"qk_nope_head_dim", 64},
      {"qk_rope_head_dim", 32}, {"v_head_dim", 64}, {"intermediate_size", hidden * 3},
      {"moe_intermediate_size", hidden / 2}, {"n_routed_experts", experts}, {"n_shared_experts", 1},
      {"num_experts_per_tok", 4}, {"n_group", 4}, {"topk_group", 2}, {"topk_method", "noaux_tc"},
      {"scoring_func", "sigmoid"}, {"norm_topk_prob", true}, {"routed_scaling_factor", 2.5},
      {"first_k_dense_replace", 1}, {"max_position_embeddings", 4096}, {"rope_theta", 10000},
      {"rope_scaling", {{"type", "yarn"}, {"factor", 4}, {"original_max_position_embeddings", 1024},
                        {"beta_fast", 32}, {"beta_slow", 1}, {"mscale", 1.0}, {"mscale_all_dim", 1.0}}}};
  JsonConfig cfg(j, "bench-config.json");
  auto store = std::make_shared<WeightStore>();
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0, 1);
  const DType dt = dtype == "bf16" ? DType::BF16 : DType::F32;
  for (const TensorSpec& s : deepseek_tensor_specs(cfg)) {
    int64_t n = 1;
    for (int64_t d : s.shape) n *= d;
    const bool f32 = s.kind == TensorSpec::Kind::RouterBias || dt == DType::F32;
    Buffer b(dtype_bytes(f32 ? DType::F32 : DType::BF16, n));
    const float sd = s.kind == TensorSpec::Kind::Norm ? 0 : s.shape.size() > 1 ? 1 / std::sqrt(float(s.shape[1])) : 0.1f;
    for (int64_t i = 0; i < n; ++i) {
      float v = s.kind == TensorSpec::Kind::Norm ? 1.0f : sd * normal(rng);
      if (f32) b.as<float>()[i] = v;
      else b.as<uint16_t>()[i] = f32_to_bf16(v);
    }
    store->add_owned(s.name, "random", f32 ? DType::F32 : DType::BF16, s.shape, std::move(b));
  }
  auto model = load_deepseek(cfg, store, {});
  const ModelInfo& info = model->info();
  ThreadPool pool(threads);

  std::vector<int32_t> tokens(size_t(n_tokens + n_decode));
  for (auto& t : tokens) t = int32_t(rng() % uint32_t(vocab));
  const int bs = 16;
  KvCache kv(info.n_layers, info.kv_width, bs, (int64_t(tokens.size()) + bs - 1) / bs);
  std::vector<int32_t> blocks(size_t(kv.n_blocks()));
  for (size_t i = 0; i < blocks.size(); ++i) blocks[i] = int32_t(i);
  std::vector<float> logits(static_cast<size_t>(vocab));
  auto step = [&](int64_t begin, int64_t n) {
    SeqInput s;
    s.tokens = std::span<const int32_t>(tokens.data() + begin, size_t(n));
    s.n_past = begin;
    s.blocks = blocks;
    s.logits = Logits::Last;
    auto t0 = std::chrono::steady_clock::now();
    model->forward(std::span<const SeqInput>(&s, 1), kv, logits.data(), &pool);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  std::printf("model: hidden %lld, %d layers, %lld experts, %s weights: %.1fM params, %.1fM active, %d threads\n",
              (long long)hidden, info.n_layers, (long long)experts, dtype.c_str(), double(info.n_params) / 1e6,
              double(info.n_active_params) / 1e6, pool.size());
  double tp = step(0, n_tokens);
  double flops = 2.0 * double(info.n_active_params) * double(n_tokens);
  std::printf("prefill %lld tokens | %.3f s | %.1f tok/s | %.2f GFLOP/s (weights only)\n", (long long)n_tokens, tp,
              double(n_tokens) / tp, flops / tp / 1e9);
  double td = 0;
  for (int64_t i = 0; i < n_decode; ++i) td += step(n_tokens + i, 1);
  if (n_decode > 0)
    std::printf("decode  %lld tokens | %.4f s/token | %.1f tok/s | %.2f GB/s of weights\n", (long long)n_decode,
                td / double(n_decode), double(n_decode) / td,
                double(info.weight_bytes_per_token) * double(n_decode) / td / 1e9);
  return 0;
}
