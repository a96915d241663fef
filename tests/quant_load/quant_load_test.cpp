// --quant at load on the tiny golden checkpoints (DeepSeek-V3 and Qwen2 shapes; V2-Lite tiny has no 32-multiple rows): every linear weight becomes
// Q8_0/Q4_0 and nothing else changes; the quantized model agrees with its dequantized twin (same weights in F32,
// so only activation quantization differs) and, for Q8_0, its mean log-prob on random tokens is within 1% of the
// original model's.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>

#include "kernels/linear.h"
#include "loader/json_config.h"
#include "loader/weights.h"
#include "model/deepseek.h"
#include "model/llama.h"
#include "model/quantize_load.h"

using namespace dm;

namespace {

struct Case {
  std::string dir;
  bool deepseek;
};

const Case kCases[] = {{DM_TEST_DATA "/golden/v3_tiny/hf_f32", true},
                       {DM_TEST_DATA "/golden/qwen2_tiny/hf_f32", false}};

std::vector<TensorSpec> specs(const Case& k, const JsonConfig& cfg) {
  return k.deepseek ? deepseek_tensor_specs(cfg) : llama_tensor_specs(cfg);
}

std::unique_ptr<Model> load(const Case& k, const JsonConfig& cfg, std::shared_ptr<const WeightStore> w,
                            const LoadOptions& o = {}) {
  return k.deepseek ? load_deepseek(cfg, std::move(w), o) : load_llama(cfg, std::move(w), o);
}

// The same store with every Q8_0/Q4_0 tensor dequantized to F32.
std::shared_ptr<const WeightStore> dequantized(const WeightStore& s) {
  auto out = std::make_shared<WeightStore>();
  for (const std::string& n : s.names()) {
    const StoredTensor& t = *s.find(n);
    if (t.view.dtype != DType::Q8_0 && t.view.dtype != DType::Q4_0) {
      out->add(n, t);
      continue;
    }
    Weight w{t.view.dtype, t.view.dim(0), t.view.dim(1), t.view.data, nullptr};
    Buffer b(size_t(w.rows * w.cols) * sizeof(float));
    dequantize_rows(w, 0, w.rows, b.as<float>());
    out->add_owned(n, t.file, DType::F32, t.view.shape, std::move(b));
  }
  for (const auto& f : s.files()) out->keep_file(f);
  return out;
}

// Logits of every position of `tokens`, one prefill: [n, vocab].
std::vector<float> all_logits(Model& m, const std::vector<int32_t>& tokens, ThreadPool* pool) {
  const int bs = 16;
  const int64_t n = int64_t(tokens.size()), nb = (n + bs - 1) / bs;
  KvCache kv(m.info().n_layers, m.info().kv_width, bs, nb);
  std::vector<int32_t> blocks(static_cast<size_t>(nb));
  for (int64_t i = 0; i < nb; ++i) blocks[size_t(i)] = int32_t(i);
  SeqInput s{tokens, 0, blocks, Logits::All};
  std::vector<float> out(size_t(n * m.info().vocab_size));
  m.forward(std::span<const SeqInput>(&s, 1), kv, out.data(), pool);
  return out;
}

// Mean over positions i < n-1 of log p(tokens[i+1] | tokens[..i]).
double mean_log_prob(const std::vector<float>& logits, const std::vector<int32_t>& tokens, int64_t vocab) {
  double sum = 0;
  for (size_t i = 0; i + 1 < tokens.size(); ++i) {
    const float* l = &logits[i * size_t(vocab)];
    double mx = l[0], z = 0;
    for (int64_t v = 1; v < vocab; ++v) mx = std::max(mx, double(l[v]));
    for (int64_t v = 0; v < vocab; ++v) z += std::exp(double(l[v]) - mx);
    sum += double(l[tokens[i + 1]]) - mx - std::log(z);
  }
  return sum / double(tokens.size() - 1);
}

int64_t argmax(const float* v, int64_t n) { return std::max_element(v, v + n) - v; }

}  // namespace

TEST(QuantLoad, LinearWeightsOnlyAreQuantized) {
  for (const Case& k : kCases) {
    JsonConfig cfg = JsonConfig::load(k.dir + "/config.json");
    auto src = std::make_shared<const WeightStore>(WeightStore::open_safetensors(k.dir));
    auto q = quantize_linear_weights(src, specs(k, cfg), "q4_0");
    int n_quant = 0;
    for (const TensorSpec& s : specs(k, cfg)) {
      const bool quantizable = s.kind == TensorSpec::Kind::Linear && s.shape[1] % 32 == 0;
      const DType want = quantizable ? DType::Q4_0 : src->find(s.name)->view.dtype;
      EXPECT_EQ(q->find(s.name)->view.dtype, want) << k.dir << " " << s.name;
      n_quant += quantizable;
    }
    EXPECT_GE(n_quant, 3) << k.dir;
    EXPECT_EQ(quantize_linear_weights(src, specs(k, cfg), "").get(), src.get());
    EXPECT_THROW(quantize_linear_weights(src, specs(k, cfg), "q5_1"), Error);
  }
}

TEST(QuantLoad, AgreesWithDequantizedTwinAndOriginal) {
  ThreadPool pool(2);
  for (const Case& k : kCases) {
    JsonConfig cfg = JsonConfig::load(k.dir + "/config.json");
    auto src = std::make_shared<const WeightStore>(WeightStore::open_safetensors(k.dir));
    auto orig = load(k, cfg, src);
    const int64_t vocab = orig->info().vocab_size;
    std::mt19937 rng(7);
    std::vector<int32_t> tokens(48);
    for (int32_t& t : tokens) t = int32_t(rng() % uint32_t(vocab));
    const std::vector<float> lo = all_logits(*orig, tokens, &pool);
    const double lp_orig = mean_log_prob(lo, tokens, vocab);

    for (const std::string quant : {"q8_0", "q4_0"}) {
      auto q = load(k, cfg, src, LoadOptions{quant});
      auto qstore = quantize_linear_weights(src, specs(k, cfg), quant);
      auto twin = load(k, cfg, dequantized(*qstore));
      const std::vector<float> lq = all_logits(*q, tokens, &pool), lt = all_logits(*twin, tokens, &pool);
      double max_err = 0, max_logit = 0;
      int agree = 0;
      for (size_t i = 0; i < lq.size(); ++i) {
        max_err = std::max(max_err, double(std::fabs(lq[i] - lt[i])));
        max_logit = std::max(max_logit, double(std::fabs(lt[i])));
      }
      for (size_t i = 0; i < tokens.size(); ++i)
        agree += argmax(&lq[i * size_t(vocab)], vocab) == argmax(&lt[i * size_t(vocab)], vocab);
      const double lp_q = mean_log_prob(lq, tokens, vocab);
      const double rel = std::fabs(lp_q - lp_orig) / std::fabs(lp_orig);
      std::printf("%s %s: max |logit - twin| %.3g (max |logit| %.3g), top-1 agreement %d/%zu, mean log-prob %.5f "
                  "vs original %.5f (%.3f%%)\n",
                  k.dir.c_str(), quant.c_str(), max_err, max_logit, agree, tokens.size(), lp_q, lp_orig, 100 * rel);
      // note: in the MoE model a token whose expert scores nearly tie can pick another expert once activations
      // are quantized, which moves its logits by a lot: there only the agreement and log-prob bounds apply.
      if (!k.deepseek) {
        EXPECT_LT(max_err, (quant == "q8_0" ? 0.02 : 0.05) * max_logit) << k.dir << " " << quant;
        EXPECT_GE(agree, int(tokens.size()) * 9 / 10) << k.dir << " " << quant;
      } else {
        EXPECT_GE(agree, int(tokens.size()) * 3 / 4) << k.dir << " " << quant;
      }
      if (quant == "q8_0") {
        EXPECT_LT(rel, 0.01) << k.dir;
      }
      // The quantized weights are really used: logits differ from the original's.
      double diff = 0;
      for (size_t i = 0; i < lq.size(); ++i) diff = std::max(diff, double(std::fabs(lq[i] - lo[i])));
      EXPECT_GT(diff, 0) << k.dir << " " << quant;
    }
  }
}

// `deepmoe synth --format gguf --type q4_0` writes a file that loads through load_model with Q4_0 linear weights
// and the config's shapes, and runs.
TEST(QuantLoad, SynthGgufLoadsAndRuns) {
  for (const char* name : {"v3_tiny", "qwen2_tiny"}) {
    const std::string out = ::testing::TempDir() + "/synth_" + name + ".gguf";
    const std::string cmd = std::string(DEEPMOE_BIN) + " synth --config " + DM_TEST_DATA "/golden/" + name +
                            "/hf_f32/config.json --format gguf --type q4_0 -t 1 --out " + out + " > /dev/null 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    auto m = load_model(out);
    JsonConfig cfg = JsonConfig::load(std::string(DM_TEST_DATA "/golden/") + name + "/hf_f32/config.json");
    EXPECT_EQ(m->info().vocab_size, cfg.get_int("vocab_size"));
    EXPECT_EQ(m->info().n_layers, cfg.get_int("num_hidden_layers"));
    EXPECT_NE(m->info().dtype_summary.find("Q4_0"), std::string::npos) << m->info().dtype_summary;
    ThreadPool pool(1);
    std::vector<int32_t> tokens = {1, 2, 3, 4, 5};
    std::vector<float> l = all_logits(*m, tokens, &pool);
    for (float v : l) ASSERT_TRUE(std::isfinite(v));
    std::remove(out.c_str());
  }
}
