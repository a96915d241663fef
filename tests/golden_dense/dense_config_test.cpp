// Config parsing of the Llama-style family (every fixture config and golden config of these families), errors
// that name the field, and tensor specs at full size (names equal the published index of R1-Distill-Qwen).
#include "loader/dense_config.h"

#include <gtest/gtest.h>

#include <set>

#include "dense_test_util.h"
#include "model/llama.h"

using namespace dm;
using namespace dm::test;

namespace {

JsonConfig fixture(const std::string& name) { return JsonConfig::load(config_dir(name) + "/config.json"); }

// Parses `base` with `edit` applied and returns the error message ("" if it parsed).
std::string parse_error(const JsonConfig& base, const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json j = base.json();
  edit(j);
  try {
    parse_dense_config(JsonConfig(j, "edited/config.json"));
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(DenseConfig, FixtureConfigsParse) {
  DenseConfig q15 = parse_dense_config(fixture("deepseek-r1-distill-qwen-1.5b-resaved"));
  EXPECT_EQ(q15.architecture, "Qwen2ForCausalLM");
  EXPECT_EQ(q15.dtype, "float32");  // torch_dtype
  EXPECT_EQ(q15.head_dim, 128);
  EXPECT_EQ(q15.kv_width(), 2 * 2 * 128);
  EXPECT_TRUE(q15.qkv_bias);
  EXPECT_FALSE(q15.o_bias);
  EXPECT_FALSE(q15.tie_word_embeddings);
  EXPECT_EQ(q15.eos_token_ids, std::vector<int32_t>{151643});

  DenseConfig q32 = parse_dense_config(fixture("deepseek-r1-distill-qwen-32b"));  // sliding_window set, unused
  EXPECT_EQ(q32.num_key_value_heads, 8);
  EXPECT_DOUBLE_EQ(q32.rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(q32.rope_theta, 1e6);

  DenseConfig q3 = parse_dense_config(fixture("qwen3-4b-2507-modelcard"));
  EXPECT_TRUE(q3.qk_norm);
  EXPECT_TRUE(q3.tie_word_embeddings);
  EXPECT_EQ(q3.head_dim, 128);
  EXPECT_FALSE(q3.qkv_bias);

  DenseConfig moe = parse_dense_config(fixture("qwen3-30b-a3b"));
  EXPECT_EQ(moe.num_experts, 128);
  EXPECT_EQ(moe.num_experts_per_tok, 8);
  EXPECT_EQ(moe.moe_intermediate_size, 768);
  EXPECT_TRUE(moe.norm_topk_prob);
  for (int i = 0; i < moe.num_hidden_layers; ++i) EXPECT_TRUE(moe.layer_is_moe(i));
  EXPECT_EQ(moe.eos_token_ids, std::vector<int32_t>{151645});
}

TEST(DenseConfig, GoldenConfigsParse) {
  for (const char* m : {"qwen2_tiny", "llama3_tiny", "qwen3_tiny", "qwen3moe_tiny"})
    for (const char* w : {"hf_f32", "hf_bf16"}) {
      SCOPED_TRACE(std::string(m) + "/" + w);
      DenseConfig c = parse_dense_config(JsonConfig::load(golden_dir(m) + "/" + w + "/config.json"));
      EXPECT_EQ(c.head_dim, 16);
      EXPECT_EQ(c.kv_width(), 64);
    }
  DenseConfig l = parse_dense_config(JsonConfig::load(golden_dir("llama3_tiny") + "/hf_f32/config.json"));
  EXPECT_TRUE(l.rope_llama3);
  EXPECT_DOUBLE_EQ(l.llama3.factor, 8.0);
  EXPECT_DOUBLE_EQ(l.llama3.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(l.llama3.high_freq_factor, 4.0);
  EXPECT_EQ(l.llama3.original_max_position_embeddings, 64);
  EXPECT_DOUBLE_EQ(l.rope_theta, 500000.0);
  EXPECT_FALSE(l.rope_adjacent);
}

TEST(DenseConfig, MoeLayerRule) {
  JsonConfig base = fixture("qwen3-30b-a3b");
  nlohmann::json j = base.json();
  j["decoder_sparse_step"] = 2;
  j["mlp_only_layers"] = {3};
  j["norm_topk_prob"] = false;
  DenseConfig c = parse_dense_config(JsonConfig(j, "x"));
  EXPECT_FALSE(c.layer_is_moe(0));  // (0 + 1) % 2 != 0
  EXPECT_TRUE(c.layer_is_moe(1));
  EXPECT_FALSE(c.layer_is_moe(3));  // mlp_only_layers
  EXPECT_TRUE(c.layer_is_moe(5));
  EXPECT_FALSE(c.norm_topk_prob);
  std::vector<TensorSpec> s = llama_tensor_specs(JsonConfig(j, "x"));
  auto has = [&](const std::string& n) {
    return std::any_of(s.begin(), s.end(), [&](const TensorSpec& t) { return t.name == n; });
  };
  EXPECT_TRUE(has("model.layers.0.mlp.gate_proj.weight"));
  EXPECT_TRUE(has("model.layers.1.mlp.experts.127.up_proj.weight"));
  EXPECT_TRUE(has("model.layers.3.mlp.down_proj.weight"));
  EXPECT_FALSE(has("model.layers.3.mlp.gate.weight"));
}

TEST(DenseConfig, ErrorsNameTheField) {
  JsonConfig q = fixture("deepseek-r1-distill-qwen-1.5b-resaved");
  JsonConfig m = fixture("qwen3-30b-a3b");
  auto has = [](const std::string& msg, const std::string& what) {
    return msg.find(what) != std::string::npos && msg.find("edited/config.json") != std::string::npos;
  };
  EXPECT_TRUE(has(parse_error(q, [](auto& j) { j["use_sliding_window"] = true; }), "use_sliding_window"));
  EXPECT_TRUE(has(parse_error(q,
                              [](auto& j) {
                                j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4}};
                              }),
                  "rope_scaling.rope_type"));
  EXPECT_TRUE(has(parse_error(q, [](auto& j) { j["hidden_act"] = "gelu"; }), "hidden_act"));
  EXPECT_TRUE(has(parse_error(q, [](auto& j) { j["num_key_value_heads"] = 5; }), "num_key_value_heads"));
  EXPECT_TRUE(has(parse_error(q, [](auto& j) { j.erase("hidden_size"); }), "hidden_size"));
  EXPECT_TRUE(has(parse_error(q, [](auto& j) { j["vocab_size"] = -3; }), "vocab_size"));
  EXPECT_TRUE(has(parse_error(q, [](auto& j) { j["torch_dtype"] = "int8"; }), "torch_dtype"));
  EXPECT_TRUE(has(parse_error(q, [](auto& j) { j["model_type"] = "mistral"; }), "model_type"));
  EXPECT_TRUE(has(parse_error(q, [](auto& j) { j["architectures"] = {"LlamaForCausalLM"}; }), "architectures"));
  EXPECT_TRUE(has(parse_error(q, [](auto& j) { j["layer_types"][3] = "sliding_attention"; }), "layer_types"));
  EXPECT_TRUE(has(parse_error(q, [](auto& j) { j["eos_token_id"] = "x"; }), "eos_token_id"));
  EXPECT_TRUE(has(parse_error(m, [](auto& j) { j["num_experts_per_tok"] = 200; }), "num_experts_per_tok"));
  EXPECT_TRUE(has(parse_error(m, [](auto& j) { j["mlp_only_layers"] = {48}; }), "mlp_only_layers"));
  EXPECT_TRUE(has(parse_error(m, [](auto& j) { j.erase("moe_intermediate_size"); }), "moe_intermediate_size"));
  EXPECT_TRUE(has(parse_error(m,
                              [](auto& j) {
                                j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8}};
                              }),
                  "low_freq_factor"));
  EXPECT_TRUE(has(parse_error(q,
                              [](auto& j) {
                                j["deepmoe_rope_freq_factors"] = {1.0, 2.0};
                              }),
                  "deepmoe_rope_freq_factors"));
  // Accepted: torch_dtype or dtype, sliding-window fields that are off, eos lists.
  EXPECT_EQ(parse_error(q,
                        [](auto& j) {
                          j.erase("torch_dtype");
                          j["dtype"] = "bfloat16";
                        }),
            "");
  EXPECT_EQ(parse_error(q,
                        [](auto& j) {
                          j["sliding_window"] = 4096;
                          j["eos_token_id"] = {1, 2};
                        }),
            "");
}

TEST(DenseSpecs, R1DistillQwenNamesEqualThePublishedIndex) {
  for (const char* name : {"deepseek-r1-distill-qwen-1.5b-resaved", "deepseek-r1-distill-qwen-32b"}) {
    SCOPED_TRACE(name);
    std::vector<TensorSpec> specs = model_tensor_specs(config_dir(name) + "/config.json");
    nlohmann::json index = nlohmann::json::parse(read_file(config_dir(name) + "/model.safetensors.index.json"));
    std::set<std::string> want, got;
    for (auto& [k, v] : index["weight_map"].items()) want.insert(k);
    for (auto& s : specs) EXPECT_TRUE(got.insert(s.name).second) << "duplicate " << s.name;
    EXPECT_EQ(got, want);
  }
  // Shapes and parameter count of the 1.5B: 1,777,088,000 parameters (untied embeddings).
  std::vector<TensorSpec> s = model_tensor_specs(config_dir("deepseek-r1-distill-qwen-1.5b-resaved") + "/config.json");
  int64_t n = 0;
  for (auto& t : s) {
    int64_t e = 1;
    for (int64_t d : t.shape) e *= d;
    n += e;
    if (t.name == "model.layers.0.self_attn.k_proj.weight") {
      EXPECT_EQ(t.shape, (std::vector<int64_t>{256, 1536}));
    }
    if (t.name == "model.layers.0.self_attn.q_proj.bias") {
      EXPECT_EQ(t.shape, (std::vector<int64_t>{1536}));
    }
    if (t.name == "model.layers.27.mlp.down_proj.weight") {
      EXPECT_EQ(t.shape, (std::vector<int64_t>{1536, 8960}));
    }
  }
  EXPECT_EQ(n, 1777088000);
}

TEST(DenseSpecs, Qwen3MoeFullSize) {
  std::vector<TensorSpec> s = model_tensor_specs(config_dir("qwen3-30b-a3b") + "/config.json");
  // embed + 48 · (2 norms + q/k/v/o + q/k norms + router + 128 · 3 expert matrices) + norm + lm_head
  EXPECT_EQ(s.size(), size_t(1 + 48 * (2 + 4 + 2 + 1 + 128 * 3) + 2));
  int64_t n = 0;
  for (auto& t : s) {
    int64_t e = 1;
    for (int64_t d : t.shape) e *= d;
    n += e;
    if (t.name == "model.layers.0.self_attn.q_proj.weight") {
      EXPECT_EQ(t.shape, (std::vector<int64_t>{4096, 2048}));
    }
    if (t.name == "model.layers.0.self_attn.k_proj.weight") {
      EXPECT_EQ(t.shape, (std::vector<int64_t>{512, 2048}));
    }
    if (t.name == "model.layers.0.self_attn.o_proj.weight") {
      EXPECT_EQ(t.shape, (std::vector<int64_t>{2048, 4096}));
    }
    if (t.name == "model.layers.0.self_attn.q_norm.weight") {
      EXPECT_EQ(t.shape, (std::vector<int64_t>{128}));
    }
    if (t.name == "model.layers.47.mlp.gate.weight") {
      EXPECT_EQ(t.shape, (std::vector<int64_t>{128, 2048}));
      EXPECT_EQ(t.kind, TensorSpec::Kind::Router);
    }
    if (t.name == "model.layers.47.mlp.experts.127.down_proj.weight") {
      EXPECT_EQ(t.shape, (std::vector<int64_t>{2048, 768}));
    }
  }
  EXPECT_EQ(n, 30532122624);  // Qwen3-30B-A3B: 30.5B parameters
  // Config only (inspect without weights): Qwen3-30B-A3B activates 3.3B parameters per token.
  ModelInfo info = describe_model(config_dir("qwen3-30b-a3b"));
  EXPECT_EQ(info.n_params, 30532122624);
  EXPECT_EQ(info.n_active_params, 3353032704);
  EXPECT_EQ(info.kv_width, 2 * 4 * 128);
  EXPECT_EQ(info.weight_bytes, 2 * info.n_params);  // torch_dtype bfloat16
  EXPECT_EQ(info.architecture, "Qwen3MoeForCausalLM");
  // Tied Qwen3-4B: no lm_head.weight.
  std::vector<TensorSpec> t = model_tensor_specs(config_dir("qwen3-4b-2507-modelcard") + "/config.json");
  EXPECT_TRUE(std::none_of(t.begin(), t.end(), [](const TensorSpec& x) { return x.name == "lm_head.weight"; }));
}

}  // namespace
