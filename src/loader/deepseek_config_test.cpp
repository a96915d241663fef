// DeepseekConfig: every DeepSeek config in the fixtures parses with the expected values; bad configs (missing
// fields, wrong types, unsupported values, bad JSON) are dm::Errors that name the file and the field.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "loader/deepseek_config.h"

using namespace dm;

namespace {

const std::string kConfigs = DM_TEST_DATA "/fixtures/configs";

nlohmann::json v3_tiny() {
  return JsonConfig::load(DM_TEST_DATA "/golden/v3_tiny/hf_f32/config.json").json();
}

// Expects parse_deepseek_config(j) to throw a dm::Error whose message contains every one of `parts`.
void expect_error(const nlohmann::json& j, std::initializer_list<const char*> parts) {
  try {
    parse_deepseek_config(JsonConfig(j, "some/config.json"));
    ADD_FAILURE() << "no error for " << j.dump();
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("some/config.json"), std::string::npos) << msg;
    for (const char* p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

}  // namespace

TEST(DeepseekConfig, EveryFixtureOfTheFamilyParses) {
  int n = 0;
  for (auto& d : std::filesystem::directory_iterator(kConfigs)) {
    auto path = (d.path() / "config.json").string();
    if (!std::filesystem::exists(path)) continue;
    JsonConfig j = JsonConfig::load(path);
    if (!is_deepseek_config(j)) continue;
    DeepseekConfig c = parse_deepseek_config(j);
    EXPECT_GT(c.num_hidden_layers, 0) << path;
    ++n;
  }
  EXPECT_EQ(n, 3);  // deepseek-r1, deepseek-v3-base, deepseek-v2-lite
}

TEST(DeepseekConfig, R1Values) {
  DeepseekConfig c = parse_deepseek_config(JsonConfig::load(kConfigs + "/deepseek-r1/config.json"));
  EXPECT_EQ(c.architecture, "DeepseekV3ForCausalLM");
  EXPECT_EQ(c.num_hidden_layers, 61);
  EXPECT_EQ(c.num_nextn_predict_layers, 1);
  EXPECT_EQ(c.q_lora_rank, 1536);
  EXPECT_EQ(c.kv_width(), 576);
  EXPECT_TRUE(c.yarn);
  EXPECT_EQ(c.rope_factor, 40);
  EXPECT_EQ(c.original_max_position_embeddings, 4096);
  EXPECT_EQ(c.scoring_func, ScoringFunc::Sigmoid);
  EXPECT_EQ(c.topk_method, TopkMethod::NoauxTc);
  EXPECT_EQ(c.n_group, 8);
  EXPECT_EQ(c.topk_group, 4);
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_EQ(c.routed_scaling_factor, 2.5);
  EXPECT_EQ(c.first_k_dense_replace, 3);
  EXPECT_FALSE(c.is_moe_layer(2));
  EXPECT_TRUE(c.is_moe_layer(3));
  EXPECT_TRUE(c.fp8);
  // m = 0.1 ln 40 + 1; scale = 192^-0.5 m²
  double m = 0.1 * std::log(40.0) + 1;
  EXPECT_NEAR(c.softmax_scale(), m * m / std::sqrt(192.0), 1e-12);
}

TEST(DeepseekConfig, V2LiteValues) {
  DeepseekConfig c = parse_deepseek_config(JsonConfig::load(kConfigs + "/deepseek-v2-lite/config.json"));
  EXPECT_EQ(c.architecture, "DeepseekV2ForCausalLM");
  EXPECT_EQ(c.q_lora_rank, 0);  // null: plain q_proj
  EXPECT_EQ(c.scoring_func, ScoringFunc::Softmax);
  EXPECT_EQ(c.topk_method, TopkMethod::Greedy);
  EXPECT_FALSE(c.norm_topk_prob);
  EXPECT_EQ(c.n_shared_experts, 2);
  EXPECT_EQ(c.mscale_all_dim, 0.707);
  EXPECT_FALSE(c.fp8);
  EXPECT_EQ(c.bos_token_id, 100000);
  ASSERT_EQ(c.eos_token_ids.size(), 1u);
  EXPECT_EQ(c.eos_token_ids[0], 100001);
}

TEST(DeepseekConfig, GoldenTinyWithoutRopeScaling) {
  DeepseekConfig c = parse_deepseek_config(JsonConfig::load(DM_TEST_DATA "/golden/v2lite_tiny/hf_f32/config.json"));
  EXPECT_FALSE(c.yarn);
  EXPECT_NEAR(c.softmax_scale(), 1 / std::sqrt(24.0), 1e-12);
}

TEST(DeepseekConfig, MissingRequiredFields) {
  for (const char* f : {"hidden_size", "kv_lora_rank", "qk_rope_head_dim", "v_head_dim", "num_hidden_layers",
                        "vocab_size", "intermediate_size", "moe_intermediate_size", "num_experts_per_tok"}) {
    auto j = v3_tiny();
    j.erase(f);
    expect_error(j, {"missing field", f});
  }
}

TEST(DeepseekConfig, WrongTypes) {
  auto j = v3_tiny();
  j["hidden_size"] = "64";
  expect_error(j, {"hidden_size", "integer"});
  j = v3_tiny();
  j["norm_topk_prob"] = 1;
  expect_error(j, {"norm_topk_prob"});
  j = v3_tiny();
  j["rope_scaling"] = 7;
  expect_error(j, {"rope_scaling"});
  j = v3_tiny();
  j["rope_scaling"]["factor"] = "4";
  expect_error(j, {"factor"});
  j = v3_tiny();
  j["eos_token_id"] = "x";
  expect_error(j, {"eos_token_id"});
  j = v3_tiny();
  j["hidden_size"] = 64.5;
  expect_error(j, {"hidden_size"});
}

TEST(DeepseekConfig, UnsupportedValues) {
  auto set = [](const char* k, nlohmann::json v) {
    auto j = v3_tiny();
    j[k] = v;
    return j;
  };
  expect_error(set("scoring_func", "tanh"), {"scoring_func", "tanh"});
  expect_error(set("topk_method", "random"), {"topk_method"});
  expect_error(set("hidden_act", "gelu"), {"hidden_act"});
  expect_error(set("model_type", "llama"), {"model_type"});
  expect_error(set("architectures", {"LlamaForCausalLM"}), {"architectures"});
  expect_error(set("n_group", 3), {"n_group"});
  expect_error(set("topk_group", 5), {"topk_group"});
  expect_error(set("num_experts_per_tok", 9), {"num_experts_per_tok"});
  expect_error(set("qk_rope_head_dim", 7), {"qk_rope_head_dim"});
  expect_error(set("kv_lora_rank", 0), {"kv_lora_rank"});
  expect_error(set("q_lora_rank", -3), {"q_lora_rank"});
  expect_error(set("num_hidden_layers", int64_t(1) << 33), {"num_hidden_layers"});
  expect_error(set("first_k_dense_replace", -1), {"first_k_dense_replace"});
  expect_error(set("moe_layer_freq", 0), {"moe_layer_freq"});
  auto j = v3_tiny();
  j["rope_scaling"]["type"] = "linear";
  expect_error(j, {"rope_scaling.type", "linear"});
  j = v3_tiny();
  j["quantization_config"] = {{"quant_method", "fp8"}, {"fmt", "e4m3"}, {"weight_block_size", {64, 64}}};
  expect_error(j, {"weight_block_size"});
  j["quantization_config"] = {{"quant_method", "gptq"}};
  expect_error(j, {"quant_method", "gptq"});
}

TEST(DeepseekConfig, NullQLoraRankAndDefaults) {
  auto j = v3_tiny();
  j["q_lora_rank"] = nullptr;
  j.erase("scoring_func");
  j.erase("topk_method");
  DeepseekConfig c = parse_deepseek_config(JsonConfig(j, "x.json"));
  EXPECT_EQ(c.q_lora_rank, 0);
  EXPECT_EQ(c.scoring_func, ScoringFunc::Sigmoid);  // V3 defaults
  EXPECT_EQ(c.topk_method, TopkMethod::NoauxTc);
}

TEST(JsonConfigFiles, BadJsonNamesTheFile) {
  auto dir = std::filesystem::temp_directory_path() / "dm_cfg_test";
  std::filesystem::create_directories(dir);
  auto p = (dir / "config.json").string();
  for (const char* text : {"{\"hidden_size\": 64,", "[1, 2]", "", "\xff\xfe{}", "{\"a\": tru}"}) {
    FILE* f = std::fopen(p.c_str(), "wb");
    std::fputs(text, f);
    std::fclose(f);
    try {
      parse_deepseek_config(JsonConfig::load(p));
      ADD_FAILURE() << text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
    }
  }
  std::filesystem::remove_all(dir);
}

// Random field mutations: every outcome is a parsed config or a dm::Error naming the file, never anything else.
TEST(DeepseekConfig, RandomMutationsNeverCrash) {
  const auto base = v3_tiny();
  std::vector<std::string> keys;
  for (auto& [k, v] : base.items()) keys.push_back(k);
  const std::vector<nlohmann::json> values = {nullptr, -1, 0, 1, 3, 7, 1e300, -1e300, 2.5, "sigmoid", "yarn",
                                              true, nlohmann::json::array(), nlohmann::json::object(),
                                              {{"type", "yarn"}}, int64_t(1) << 62};
  uint32_t seed = 12345;
  auto next = [&] { return seed = seed * 1664525u + 1013904223u; };
  int errors = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    auto j = base;
    for (int m = 0; m < 3; ++m) {
      const std::string& k = keys[next() % keys.size()];
      if (next() % 5 == 0) j.erase(k);
      else j[k] = values[next() % values.size()];
    }
    try {
      DeepseekConfig c = parse_deepseek_config(JsonConfig(j, "mut/config.json"));
      EXPECT_GT(c.hidden_size, 0);
    } catch (const Error& e) {
      ++errors;
      EXPECT_NE(std::string(e.what()).find("mut/config.json"), std::string::npos) << e.what();
    }
  }
  EXPECT_GT(errors, 500);
}
