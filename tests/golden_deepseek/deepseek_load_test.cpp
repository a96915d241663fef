// Load-time checks of DeepSeek checkpoints: every tensor by name, dtype and shape. Missing, unknown, misshapen and
// mistyped tensors, FP8 weights without scales, and bad configs are dm::Errors naming the file and the tensor;
// MTP layers (index >= num_hidden_layers) are skipped. Also `deepmoe inspect` on weights and on a config alone.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <functional>

#include <unistd.h>

#include "golden_util.h"
#include "loader/safetensors.h"
#include "loader/weights.h"
#include "model/deepseek.h"

using namespace dm;
using namespace dm::test;
namespace fs = std::filesystem;

namespace {

struct Edit {
  std::vector<TensorToWrite> tensors;  // starts as a copy of v3_tiny/hf_f32
  nlohmann::json config;
};

// Writes v3_tiny with `edit` applied to a temp dir, then expects load_model to fail with all `parts` in the message
// (or to succeed when parts is empty).
void expect_load(const std::function<void(Edit&)>& edit, std::initializer_list<const char*> parts) {
  const std::string src = kGolden + "/v3_tiny/hf_f32";
  WeightStore store = WeightStore::open_safetensors(src);
  Edit e;
  e.config = nlohmann::json::parse(read_file(src + "/config.json"));
  for (const std::string& n : store.names()) {
    const TensorView& v = store.find(n)->view;
    e.tensors.push_back({n, v.dtype, v.shape, v.data, v.nbytes});
  }
  edit(e);
  fs::path dir = fs::temp_directory_path() / ("dm_load_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  write_safetensors((dir / "model.safetensors").string(), e.tensors);
  std::ofstream((dir / "config.json").string()) << e.config.dump();
  try {
    auto m = load_model(dir.string());
    EXPECT_EQ(parts.size(), 0u) << "loaded without error";
  } catch (const Error& err) {
    std::string msg = err.what();
    EXPECT_NE(parts.size(), 0u) << msg;
    for (const char* p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
  fs::remove_all(dir);
}

TensorToWrite* find(Edit& e, const std::string& name) {
  for (auto& t : e.tensors)
    if (t.name == name) return &t;
  ADD_FAILURE() << name;
  return nullptr;
}

const std::vector<float> kZeros(1 << 16, 0.0f);

}  // namespace

TEST(DeepseekLoad, UnmodifiedLoads) { expect_load([](Edit&) {}, {}); }

TEST(DeepseekLoad, MissingTensor) {
  expect_load([](Edit& e) { std::erase_if(e.tensors, [](auto& t) { return t.name == "model.layers.2.mlp.experts.5.up_proj.weight"; }); },
              {"model.safetensors", "missing", "model.layers.2.mlp.experts.5.up_proj.weight"});
  expect_load([](Edit& e) { std::erase_if(e.tensors, [](auto& t) { return t.name == "lm_head.weight"; }); },
              {"missing", "lm_head.weight"});
}

TEST(DeepseekLoad, UnknownTensor) {
  expect_load([](Edit& e) { e.tensors.push_back({"model.layers.1.mlp.experts.8.up_proj.weight", DType::F32, {4}, kZeros.data(), 16}); },
              {"model.safetensors", "unknown", "model.layers.1.mlp.experts.8.up_proj.weight"});
  expect_load([](Edit& e) { e.tensors.push_back({"model.layers.1.self_attn.o_proj.weight_scale_inv", DType::F32, {1, 1}, kZeros.data(), 4}); },
              {"unknown", "o_proj.weight_scale_inv"});
}

TEST(DeepseekLoad, MtpLayersAreSkipped) {
  expect_load([](Edit& e) {
    e.tensors.push_back({"model.layers.4.eh_proj.weight", DType::F32, {64, 128}, kZeros.data(), 64 * 128 * 4});
    e.tensors.push_back({"model.layers.4.self_attn.q_a_proj.weight", DType::F32, {3}, kZeros.data(), 12});
  }, {});
}

TEST(DeepseekLoad, WrongShapeAndDtype) {
  expect_load([](Edit& e) { find(e, "model.layers.0.self_attn.kv_b_proj.weight")->shape = {32, 128}; },
              {"model.safetensors", "model.layers.0.self_attn.kv_b_proj.weight", "[32, 128]", "[128, 32]"});
  expect_load([](Edit& e) {
    auto* t = find(e, "model.norm.weight");
    t->dtype = DType::I32;
  }, {"model.norm.weight", "I32"});
  expect_load([](Edit& e) {
    auto* t = find(e, "model.layers.1.mlp.gate.e_score_correction_bias");
    t->shape = {2, 4};
  }, {"e_score_correction_bias", "[2, 4]"});
}

TEST(DeepseekLoad, Fp8WithoutScale) {
  static std::vector<uint8_t> codes(96 * 32, 0x38);
  expect_load([](Edit& e) {
    auto* t = find(e, "model.layers.0.self_attn.q_b_proj.weight");
    *t = {t->name, DType::F8_E4M3, {96, 32}, codes.data(), codes.size()};
  }, {"q_b_proj.weight", "scale_inv"});
  expect_load([](Edit& e) {
    auto* t = find(e, "model.layers.0.self_attn.q_b_proj.weight");
    *t = {t->name, DType::F8_E4M3, {96, 32}, codes.data(), codes.size()};
    e.tensors.push_back({t->name + "_scale_inv", DType::F32, {2, 1}, kZeros.data(), 8});
  }, {"q_b_proj.weight_scale_inv", "[2, 1]", "[1, 1]"});
}

TEST(DeepseekLoad, BadConfig) {
  expect_load([](Edit& e) { e.config["scoring_func"] = "relu"; }, {"config.json", "scoring_func", "relu"});
  expect_load([](Edit& e) { e.config.erase("kv_lora_rank"); }, {"config.json", "kv_lora_rank"});
  expect_load([](Edit& e) { e.config["model_type"] = "gpt2"; }, {"config.json", "gpt2"});
  // A config that disagrees with the weights: the first mismatching tensor is named.
  expect_load([](Edit& e) { e.config["moe_intermediate_size"] = 48; }, {"experts.0.gate_proj.weight", "[48, 64]"});
}

TEST(DeepseekInspect, ConfigOnlyAndWithWeights) {
  // DeepSeek-R1 as published: 671B parameters, ~37B active per token, 576 floats of KV per token and layer.
  fs::path dir = fs::temp_directory_path() / ("dm_inspect_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::copy_file(DM_TEST_DATA "/fixtures/configs/deepseek-r1/config.json", dir / "config.json");
  ModelInfo r1 = describe_model(dir.string());
  EXPECT_EQ(r1.n_layers, 61);
  EXPECT_EQ(r1.kv_width, 576);
  EXPECT_NEAR(double(r1.n_params) / 1e9, 671.0, 1.0);  // main model without the MTP layer
  EXPECT_NEAR(double(r1.n_active_params) / 1e9, 37.0, 1.0);
  EXPECT_NE(r1.dtype_summary.find("F8_E4M3"), std::string::npos);
  std::string cmd = std::string(DEEPMOE_BIN) + " inspect " + dir.string() + " > " + (dir / "out.txt").string();
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::string out = read_file((dir / "out.txt").string());
  EXPECT_NE(out.find("DeepseekV3ForCausalLM"), std::string::npos) << out;
  fs::remove_all(dir);

  auto m = load_model(kGolden + "/v3_fp8/hf_fp8");
  ModelInfo d = describe_model(kGolden + "/v3_fp8/hf_fp8");
  EXPECT_EQ(m->info().n_params, d.n_params);
  EXPECT_EQ(m->info().weight_bytes, d.weight_bytes);
  EXPECT_LT(m->info().weight_bytes_per_token, m->info().weight_bytes);
  EXPECT_LT(m->info().n_active_params, m->info().n_params);
}
