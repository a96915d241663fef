// The engine over the real DeepSeek model code: greedy generation reproduces the argmax of the official
// reference's golden logits token by token (prefix after prefix, so the prefix cache is exercised too),
// prefix-cache reuse gives the same logits as a cold run, and batching doesn't change a sequence's tokens.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "engine/engine.h"
#include "model/model.h"

namespace dm {

// golden.json holds a few non-standard Infinity literals (routing margins); they don't matter here.
nlohmann::json read_golden(const std::string& path) {
  std::string text = read_file(path);
  for (size_t at; (at = text.find("Infinity")) != std::string::npos;) text.replace(at, 8, "1e300");
  return nlohmann::json::parse(text);
}
namespace {

const std::string kGolden = std::string(DM_TEST_DATA) + "/golden/";

struct Outcome {
  std::vector<int32_t> tokens;
  std::vector<StreamEvent> events;
  RequestUsage usage;
  FinishReason finish = FinishReason::None;
};

Request request(std::vector<int32_t> prompt, int max_tokens, SamplingParams sp, Outcome& r) {
  Request q;
  q.prompt = std::move(prompt);
  q.max_tokens = max_tokens;
  q.sampling = sp;
  q.ignore_eos = true;
  q.on_event = [&r](const StreamEvent& e) {
    r.events.push_back(e);
    if (e.token >= 0) r.tokens.push_back(e.token);
    if (e.finish != FinishReason::None) {
      r.finish = e.finish;
      r.usage = e.usage;
    }
    return true;
  };
  return q;
}

SamplingParams greedy_with_logprobs() {
  SamplingParams p;
  p.temperature = 0;
  p.logprobs = true;
  p.top_logprobs = 5;
  return p;
}

std::vector<float> read_f32(const std::string& path) {
  std::string bytes = read_file(path);
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), v.size() * 4);
  return v;
}

class GoldenGeneration : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenGeneration, GreedyEqualsArgmaxOfGoldenLogits) {
  const std::string dir = kGolden + GetParam();
  nlohmann::json g = read_golden(dir + "/golden.json");
  std::vector<int32_t> seq = g["sequences"]["main"]["tokens"].get<std::vector<int32_t>>();
  std::unique_ptr<Model> model = load_model(dir + "/hf_f32");
  const int64_t vocab = model->info().vocab_size;
  const std::vector<float> golden = read_f32(dir + "/logits/main_fp32_naive_prefill.f32");
  ASSERT_EQ(golden.size(), seq.size() * size_t(vocab));

  EngineConfig cfg;
  cfg.block_size = 4;
  cfg.kv_cache_tokens = 256;
  Engine engine(*model, nullptr, cfg);
  int checked = 0;
  int64_t cached = 0;
  for (size_t k = 1; k <= seq.size(); ++k) {
    const float* row = golden.data() + (k - 1) * size_t(vocab);
    std::vector<int32_t> order(static_cast<size_t>(vocab));
    for (int64_t i = 0; i < vocab; ++i) order[size_t(i)] = int32_t(i);
    std::partial_sort(order.begin(), order.begin() + 2, order.end(), [&](int32_t a, int32_t b) { return row[a] > row[b]; });
    Outcome r;
    ASSERT_TRUE(engine.submit(request(std::vector<int32_t>(seq.begin(), seq.begin() + long(k)), 1,
                                      greedy_with_logprobs(), r)).ok());
    engine.run_until_idle();
    ASSERT_EQ(r.tokens.size(), 1u);
    cached += r.usage.cached_prompt_tokens;
    if (row[order[0]] - row[order[1]] < 1e-3f) continue;  // a tie within tolerance: either is right
    EXPECT_EQ(r.tokens[0], order[0]) << "after " << k << " tokens";
    // The reported logprob is the golden log-softmax (fp32 compute agrees to 1e-4).
    double mx = row[order[0]], sum = 0;
    for (int64_t i = 0; i < vocab; ++i) sum += std::exp(double(row[i]) - mx);
    EXPECT_NEAR(r.events[0].logprob, row[order[0]] - mx - std::log(sum), 2e-4);
    checked++;
  }
  EXPECT_GT(checked, 20);
  EXPECT_GT(cached, 0);  // later prefixes reused the KV of earlier ones
}

INSTANTIATE_TEST_SUITE_P(DeepSeek, GoldenGeneration, ::testing::Values("v3_tiny", "v2lite_tiny"));

TEST(RealModel, PrefixReuseGivesTheLogitsOfAColdRun) {
  const std::string dir = kGolden + "v3_tiny";
  nlohmann::json g = read_golden(dir + "/golden.json");
  std::vector<int32_t> seq = g["sequences"]["long"]["tokens"].get<std::vector<int32_t>>();
  std::unique_ptr<Model> model = load_model(dir + "/hf_f32");
  EngineConfig cfg;
  cfg.block_size = 16;
  cfg.kv_cache_tokens = 1024;

  cfg.prefix_cache = false;
  Outcome cold;
  {
    Engine e(*model, nullptr, cfg);
    ASSERT_TRUE(e.submit(request(seq, 8, greedy_with_logprobs(), cold)).ok());
    e.run_until_idle();
  }
  cfg.prefix_cache = true;
  Outcome prime, warm;
  Engine e(*model, nullptr, cfg);
  ASSERT_TRUE(e.submit(request(std::vector<int32_t>(seq.begin(), seq.begin() + 70), 1, greedy_with_logprobs(), prime)).ok());
  e.run_until_idle();
  ASSERT_TRUE(e.submit(request(seq, 8, greedy_with_logprobs(), warm)).ok());
  e.run_until_idle();
  EXPECT_EQ(warm.usage.cached_prompt_tokens, 64);
  EXPECT_EQ(warm.tokens, cold.tokens);
  ASSERT_EQ(warm.events.size(), cold.events.size());
  float worst = 0;
  for (size_t i = 0; i < cold.events.size(); ++i) {
    ASSERT_EQ(warm.events[i].top_logprobs.size(), cold.events[i].top_logprobs.size());
    for (size_t j = 0; j < cold.events[i].top_logprobs.size(); ++j) {
      EXPECT_EQ(warm.events[i].top_logprobs[j].token, cold.events[i].top_logprobs[j].token);
      worst = std::max(worst, std::fabs(warm.events[i].top_logprobs[j].logprob - cold.events[i].top_logprobs[j].logprob));
    }
  }
  EXPECT_LT(worst, 1e-5f);
  RecordProperty("max_logprob_diff", std::to_string(worst));
}

TEST(RealModel, BatchingDoesNotChangeTokens) {
  const std::string dir = kGolden + "v3_tiny";
  std::unique_ptr<Model> model = load_model(dir + "/hf_f32");
  nlohmann::json g = read_golden(dir + "/golden.json");
  std::vector<int32_t> seq = g["sequences"]["long"]["tokens"].get<std::vector<int32_t>>();
  std::vector<std::vector<int32_t>> prompts = {{seq.begin(), seq.begin() + 5},
                                               {seq.begin() + 10, seq.begin() + 40},
                                               {seq.begin() + 50, seq.begin() + 53},
                                               {seq.begin() + 60, seq.begin() + 80}};
  auto sampled = [](uint64_t seed) {
    SamplingParams p;
    p.temperature = 0.8f;
    p.seed = seed;
    return p;
  };
  EngineConfig cfg;
  cfg.block_size = 8;
  cfg.kv_cache_tokens = 1024;
  cfg.prefix_cache = false;
  std::vector<std::vector<int32_t>> alone;
  for (size_t i = 0; i < prompts.size(); ++i) {
    Engine e(*model, nullptr, cfg);
    Outcome r;
    ASSERT_TRUE(e.submit(request(prompts[i], 12, sampled(i), r)).ok());
    e.run_until_idle();
    alone.push_back(r.tokens);
  }
  Engine e(*model, nullptr, cfg);
  std::vector<Outcome> runs(prompts.size());
  ASSERT_TRUE(e.submit(request(prompts[0], 12, sampled(0), runs[0])).ok());
  for (int s = 0; s < 3; ++s) e.step();  // the others join mid-way
  for (size_t i = 1; i < prompts.size(); ++i) ASSERT_TRUE(e.submit(request(prompts[i], 12, sampled(i), runs[i])).ok());
  e.run_until_idle();
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(runs[i].tokens, alone[i]) << "request " << i;
}

}  // namespace
}  // namespace dm
