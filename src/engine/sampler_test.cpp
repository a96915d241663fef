// Sampler: each filter and penalty against hand-computed distributions, greedy ties, logprobs, seeds, and a
// chi-square test of temperature sampling with a fixed seed; generation_config.json defaults.
#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace dm {
namespace {

std::vector<float> softmax(std::vector<double> l) {
  double mx = -1e300, s = 0;
  for (double v : l) mx = std::max(mx, v);
  for (double& v : l) s += (v = std::exp(v - mx));
  std::vector<float> p;
  for (double v : l) p.push_back(float(v / s));
  return p;
}

void expect_dist(const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-6) << "token " << i;
}

const std::vector<float> kProbs = {0.5f, 0.3f, 0.15f, 0.05f};
std::vector<float> log_probs() {
  std::vector<float> l;
  for (float p : kProbs) l.push_back(std::log(p));
  return l;
}

TEST(Sampler, GreedyTakesArgmaxLowestOnTies) {
  SamplingParams p;
  p.temperature = 0;
  TokenCounts c;
  SamplerRng rng(1);
  std::vector<float> scratch;
  std::vector<float> l = {1, 3, 3, 2};
  EXPECT_EQ(sample(l, p, c, rng, scratch).token, 1);
  l[3] = 5;
  EXPECT_EQ(sample(l, p, c, rng, scratch).token, 3);
}

TEST(Sampler, TemperatureScalesLogits) {
  SamplingParams p;
  p.temperature = 0.5f;
  std::vector<float> l = {0, 1, 2};
  expect_dist(sampling_distribution(l, p, {}), softmax({0, 2, 4}));
  p.temperature = 2.0f;
  expect_dist(sampling_distribution(l, p, {}), softmax({0, 0.5, 1}));
}

TEST(Sampler, TopKKeepsKMostLikely) {
  SamplingParams p;
  p.top_k = 2;
  std::vector<float> l = {1, 4, 2, 3};
  std::vector<float> s = softmax({4, 3});
  expect_dist(sampling_distribution(l, p, {}), {0, s[0], 0, s[1]});
}

TEST(Sampler, TopPKeepsSmallestSetReachingP) {
  SamplingParams p;
  p.top_p = 0.75f;  // 0.5 < 0.75, 0.5 + 0.3 >= 0.75 -> {0, 1}
  expect_dist(sampling_distribution(log_probs(), p, {}), {0.625f, 0.375f, 0, 0});
  p.top_p = 0.85f;  // needs the third token too
  expect_dist(sampling_distribution(log_probs(), p, {}), {0.5f / 0.95f, 0.3f / 0.95f, 0.15f / 0.95f, 0});
  p.top_p = 0.1f;  // at least one token
  expect_dist(sampling_distribution(log_probs(), p, {}), {1, 0, 0, 0});
}

TEST(Sampler, TopPOverALargeVocabularyNeedsTheFullSort) {
  // 1000 equally likely tokens: top_p 0.9 keeps 900 of them, more than the 256 sorted first.
  SamplingParams p;
  p.top_p = 0.9f;
  std::vector<float> l(1000, 0.0f);
  std::vector<float> d = sampling_distribution(l, p, {});
  int kept = 0;
  for (float v : d) kept += v > 0;
  EXPECT_NEAR(kept, 900, 1);
}

TEST(Sampler, TopKThenTopPRenormalizes) {
  SamplingParams p;
  p.top_k = 3;       // 0.5, 0.3, 0.15 -> renormalized 0.526, 0.316, 0.158
  p.top_p = 0.8f;    // 0.526 < 0.8, 0.842 >= 0.8 -> {0, 1}
  expect_dist(sampling_distribution(log_probs(), p, {}), {0.625f, 0.375f, 0, 0});
}

TEST(Sampler, MinPRelativeToMostLikely) {
  SamplingParams p;
  p.min_p = 0.5f;  // threshold 0.25
  expect_dist(sampling_distribution(log_probs(), p, {}), {0.625f, 0.375f, 0, 0});
  p.min_p = 0.2f;  // threshold 0.1
  expect_dist(sampling_distribution(log_probs(), p, {}), {0.5f / 0.95f, 0.3f / 0.95f, 0.15f / 0.95f, 0});
}

TEST(Sampler, RepetitionPenaltyDividesPositiveMultipliesNegative) {
  SamplingParams p;
  p.repetition_penalty = 2.0f;
  TokenCounts c;
  std::vector<int32_t> prompt = {0, 1};
  c.add_prompt(prompt);
  std::vector<float> l = {2, -2, 1};
  expect_dist(sampling_distribution(l, p, c), softmax({1, -4, 1}));
}

TEST(Sampler, PresenceAndFrequencyPenaltiesCountOutputOnly) {
  SamplingParams p;
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.25f;
  TokenCounts c;
  std::vector<int32_t> prompt = {2};  // prompt tokens are not penalized
  c.add_prompt(prompt);
  c.add_output(0);
  c.add_output(0);
  c.add_output(1);
  std::vector<float> l = {1, 1, 1, 1};
  expect_dist(sampling_distribution(l, p, c), softmax({1 - 0.5 - 0.5, 1 - 0.5 - 0.25, 1, 1}));
}

TEST(Sampler, LogitBiasAdds) {
  SamplingParams p;
  p.temperature = 0;
  p.logit_bias = {{2, 10.0f}};
  TokenCounts c;
  SamplerRng rng(1);
  std::vector<float> scratch;
  std::vector<float> l = {5, 4, 0};
  EXPECT_EQ(sample(l, p, c, rng, scratch).token, 2);
  p.temperature = 1;
  p.logit_bias = {{0, -1.0f}};
  expect_dist(sampling_distribution(l, p, {}), softmax({4, 4, 0}));
}

TEST(Sampler, LogprobsAreRawLogSoftmax) {
  SamplingParams p;
  p.temperature = 0;
  p.logprobs = true;
  p.top_logprobs = 2;
  p.logit_bias = {{3, 100.0f}};  // changes the choice, not the reported distribution
  TokenCounts c;
  SamplerRng rng(1);
  std::vector<float> scratch;
  SampleResult r = sample(log_probs(), p, c, rng, scratch);
  EXPECT_EQ(r.token, 3);
  EXPECT_NEAR(r.logprob, std::log(0.05), 1e-5);
  ASSERT_EQ(r.top.size(), 2u);
  EXPECT_EQ(r.top[0].token, 0);
  EXPECT_NEAR(r.top[0].logprob, std::log(0.5), 1e-5);
  EXPECT_EQ(r.top[1].token, 1);
  EXPECT_NEAR(r.top[1].logprob, std::log(0.3), 1e-5);
}

TEST(Sampler, TemperatureSamplingMatchesDistribution) {
  // Chi-square goodness of fit of 20000 seeded draws against softmax(l / T); 3 degrees of freedom,
  // 16.27 is the 0.1% critical value. Deterministic with the fixed seed.
  SamplingParams p;
  p.temperature = 0.7f;
  std::vector<float> l = {0, 1, 2, 0.5f};
  std::vector<float> want = softmax({0 / 0.7, 1 / 0.7, 2 / 0.7, 0.5 / 0.7});
  TokenCounts c;
  SamplerRng rng(42);
  std::vector<float> scratch;
  const int n = 20000;
  std::vector<int> hist(4, 0);
  for (int i = 0; i < n; ++i) hist[size_t(sample(l, p, c, rng, scratch).token)]++;
  double chi2 = 0;
  for (int i = 0; i < 4; ++i) {
    const double e = n * want[size_t(i)];
    chi2 += (hist[size_t(i)] - e) * (hist[size_t(i)] - e) / e;
  }
  EXPECT_LT(chi2, 16.27) << hist[0] << " " << hist[1] << " " << hist[2] << " " << hist[3];
  // A sampler that ignored temperature would fail: check the statistic against T = 1.
  std::vector<float> t1 = softmax({0, 1, 2, 0.5});
  double chi2_t1 = 0;
  for (int i = 0; i < 4; ++i) {
    const double e = n * t1[size_t(i)];
    chi2_t1 += (hist[size_t(i)] - e) * (hist[size_t(i)] - e) / e;
  }
  EXPECT_GT(chi2_t1, 100);
}

TEST(Sampler, SameSeedSameTokens) {
  SamplingParams p;
  std::vector<float> l(50);
  for (size_t i = 0; i < l.size(); ++i) l[i] = float(std::sin(double(i)));
  auto draw = [&](uint64_t seed) {
    SamplerRng rng(seed);
    TokenCounts c;
    std::vector<float> scratch;
    std::vector<int32_t> out;
    for (int i = 0; i < 64; ++i) out.push_back(sample(l, p, c, rng, scratch).token);
    return out;
  };
  EXPECT_EQ(draw(7), draw(7));
  EXPECT_NE(draw(7), draw(8));
}

TEST(Sampler, ValidateNamesTheField) {
  SamplingParams p;
  EXPECT_EQ(validate(p, 10), "");
  p.top_p = 0;
  EXPECT_NE(validate(p, 10).find("top_p"), std::string::npos);
  p = {};
  p.temperature = NAN;
  EXPECT_NE(validate(p, 10).find("temperature"), std::string::npos);
  p = {};
  p.logit_bias = {{10, 1.0f}};
  EXPECT_NE(validate(p, 10).find("logit_bias"), std::string::npos);
  p = {};
  p.top_logprobs = 21;
  EXPECT_NE(validate(p, 10).find("top_logprobs"), std::string::npos);
}

class GenerationConfigTest : public ::testing::Test {
 protected:
  std::string write(const std::string& text) {
    path_ = (std::filesystem::temp_directory_path() / ("dm_gen_" + std::to_string(::getpid()) + ".json")).string();
    std::ofstream(path_) << text;
    return path_;
  }
  void TearDown() override {
    if (!path_.empty()) std::filesystem::remove(path_);
  }
  std::string path_;
};

TEST_F(GenerationConfigTest, RecommendedSampling) {
  GenerationConfig g = load_generation_config(
      write(R"({"bos_token_id": 0, "eos_token_id": 1, "do_sample": true, "temperature": 0.6, "top_p": 0.95})"));
  EXPECT_EQ(g.eos_token_ids, std::vector<int32_t>{1});
  SamplingParams p = default_sampling(g);
  EXPECT_FLOAT_EQ(p.temperature, 0.6f);
  EXPECT_FLOAT_EQ(p.top_p, 0.95f);
  EXPECT_EQ(p.top_k, 0);
}

TEST_F(GenerationConfigTest, DoSampleFalseIsGreedy) {
  GenerationConfig g = load_generation_config(write(R"({"eos_token_id": [7, 9], "do_sample": false, "temperature": 0.6})"));
  EXPECT_EQ(g.eos_token_ids, (std::vector<int32_t>{7, 9}));
  EXPECT_TRUE(default_sampling(g).greedy());
}

TEST_F(GenerationConfigTest, MissingFileIsEmptyBadFieldThrows) {
  GenerationConfig g = load_generation_config("/nonexistent/generation_config.json");
  EXPECT_TRUE(g.eos_token_ids.empty());
  EXPECT_FLOAT_EQ(default_sampling(g).temperature, 1.0f);
  EXPECT_THROW(load_generation_config(write(R"({"eos_token_id": "x"})")), Error);
  EXPECT_THROW(load_generation_config(write(R"({"temperature": "hot"})")), Error);
  EXPECT_THROW(load_generation_config(write("{not json")), Error);
}

}  // namespace
}  // namespace dm
