// Unit tests of DeepSeek pieces the goldens only partly cover: every routing variant (greedy,
// group_limited_greedy, noaux_tc; softmax/sigmoid; bias for selection only; norm_topk_prob; routed_scaling_factor)
// on hand-made scores, and the YaRN frequencies / softmax scale against the reference's recorded values.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "loader/deepseek_config.h"
#include "model/deepseek_model.h"

using namespace dm;

namespace {

DeepseekConfig tiny_v3() {
  return parse_deepseek_config(JsonConfig::load(DM_TEST_DATA "/golden/v3_tiny/hf_f32/config.json"));
}

std::set<int32_t> route_set(const DeepseekConfig& c, const std::vector<float>& bias, const std::vector<float>& logits,
                            std::vector<float>* w = nullptr) {
  std::vector<int32_t> idx(size_t(c.num_experts_per_tok));
  std::vector<float> wt(size_t(c.num_experts_per_tok));
  moe_route(c, bias, logits.data(), idx.data(), wt.data());
  if (w) *w = wt;
  return {idx.begin(), idx.end()};
}

std::vector<double> softmax_d(const std::vector<float>& l) {
  double m = *std::max_element(l.begin(), l.end()), s = 0;
  std::vector<double> p;
  for (float v : l) s += std::exp(double(v) - m);
  for (float v : l) p.push_back(std::exp(double(v) - m) / s);
  return p;
}

}  // namespace

// Sigmoid + noaux_tc, 4 groups of 2, top-2 groups, 2 experts: groups are ranked by the sum of their two biased
// scores; the bias moves expert 1 in, but its weight is its unbiased score; weights renormalised, times 2.5.
TEST(DeepseekRouting, NoauxTcSigmoidWithBias) {
  DeepseekConfig c = tiny_v3();
  ASSERT_EQ(c.topk_method, TopkMethod::NoauxTc);
  const std::vector<double> s = {0.9, 0.1, 0.5, 0.45, 0.6, 0.59, 0.2, 0.95};
  std::vector<float> logits, bias(8, 0.0f);
  for (double v : s) logits.push_back(float(std::log(v / (1 - v))));
  bias[1] = 0.85f;  // biased: e1 = 0.95; group sums: g0 1.85, g1 0.95, g2 1.19, g3 1.15 -> keep g0, g2
  std::vector<float> w;
  auto sel = route_set(c, bias, logits, &w);
  EXPECT_EQ(sel, (std::set<int32_t>{0, 1}));  // not 7 (0.95, but in a dropped group)
  // Order: best biased first (e1 0.95, e0 0.9); weights 2.5 * s / (s0 + s1).
  EXPECT_NEAR(w[0], 2.5 * 0.1 / 1.0, 1e-6);
  EXPECT_NEAR(w[1], 2.5 * 0.9 / 1.0, 1e-6);
  c.norm_topk_prob = false;
  route_set(c, bias, logits, &w);
  EXPECT_NEAR(w[0], 2.5 * 0.1, 1e-6);
  EXPECT_NEAR(w[1], 2.5 * 0.9, 1e-6);
}

// The three selection methods on the same softmax scores, 2 groups of 4, keep 1 group, 2 experts.
TEST(DeepseekRouting, GreedyGroupLimitedAndNoauxDiffer) {
  DeepseekConfig c = tiny_v3();
  c.scoring_func = ScoringFunc::Softmax;
  c.n_group = 2;
  c.topk_group = 1;
  c.num_experts_per_tok = 2;
  c.norm_topk_prob = false;
  c.routed_scaling_factor = 1.5;
  const std::vector<float> l = {3, -1, -1, -1, 2.9f, 2.8f, 0, 0};
  const std::vector<float> none;
  auto p = softmax_d(l);

  c.topk_method = TopkMethod::Greedy;  // groups ignored
  std::vector<float> w;
  EXPECT_EQ(route_set(c, none, l, &w), (std::set<int32_t>{0, 4}));
  EXPECT_NEAR(w[0], 1.5 * p[0], 1e-6);
  EXPECT_NEAR(w[1], 1.5 * p[4], 1e-6);

  c.topk_method = TopkMethod::GroupLimitedGreedy;  // group score = max: g0 (3) beats g1 (2.9)
  EXPECT_EQ(route_set(c, none, l, &w), (std::set<int32_t>{0, 1}));

  c.topk_method = TopkMethod::NoauxTc;  // group score = top-2 sum: g1 (2.9 + 2.8) beats g0 (3 - 1)
  EXPECT_EQ(route_set(c, std::vector<float>(8, 0.0f), l, &w), (std::set<int32_t>{4, 5}));
}

TEST(DeepseekRouting, SingleGroupIsPlainTopK) {
  DeepseekConfig c = tiny_v3();
  c.n_group = 1;
  c.topk_group = 1;
  c.num_experts_per_tok = 3;
  const std::vector<float> l = {0.1f, 0.7f, -0.2f, 0.5f, 0.9f, 0.0f, 0.3f, 0.6f};
  EXPECT_EQ(route_set(c, std::vector<float>(8, 0.0f), l), (std::set<int32_t>{4, 1, 7}));
  std::vector<float> w;
  route_set(c, std::vector<float>(8, 0.0f), l, &w);
  EXPECT_NEAR(w[0] + w[1] + w[2], 2.5, 1e-5);  // normalised, times routed_scaling_factor
}

// v3_tiny: yarn factor 4 over original 64, d = 8. The reference recorded its frequencies and softmax scale.
TEST(DeepseekRope, YarnFrequenciesAndScaleMatchReference) {
  DeepseekConfig c = tiny_v3();
  auto g = nlohmann::json::parse(read_file(DM_TEST_DATA "/golden/v3_tiny/golden.json"), nullptr, true, false);
  auto want = g["semantic_checks"]["ref_freqs_at_pos1"].get<std::vector<double>>();
  auto got = rope_inv_freq(c);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 3e-7 * want[i]) << i;  // a couple of fp32 ulps (torch pow)
  EXPECT_NEAR(c.softmax_scale(), g["semantic_checks"]["ref_softmax_scale"].get<double>(), 1e-12);
  // Without YaRN: plain theta^(-2i/d), scale = (nope + rope)^-0.5.
  c.yarn = false;
  got = rope_inv_freq(c);
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], std::pow(10000.0, -2.0 * double(i) / 8), 1e-7);
  EXPECT_NEAR(c.softmax_scale(), 1 / std::sqrt(24.0), 1e-12);
}
