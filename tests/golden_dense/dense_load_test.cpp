// Loading the Llama-style family: missing / misshapen / wrongly typed tensors give dm::Error naming the tensor;
// the GGUF-layout rope flags (deepmoe_rope_adjacent, deepmoe_rope_freq_factors) on llama.cpp-permuted q/k rows
// reproduce the golden;
// norm_topk_prob false routes with unnormalised weights.
#include <gtest/gtest.h>

#include "dense_test_util.h"
#include "loader/json_config.h"
#include "loader/weights.h"
#include "model/llama.h"

using namespace dm;
using namespace dm::test;

namespace {

struct Checkpoint {
  JsonConfig config;
  std::shared_ptr<WeightStore> store;
};

Checkpoint open(const std::string& model) {
  const std::string dir = golden_dir(model) + "/hf_f32";
  return {JsonConfig::load(dir + "/config.json"), std::make_shared<WeightStore>(WeightStore::open_safetensors(dir))};
}

// A copy of `src` with `edit` applied to each tensor (return false to drop it).
std::shared_ptr<WeightStore> edited(const WeightStore& src,
                                    const std::function<bool(const std::string&, StoredTensor&)>& edit) {
  auto out = std::make_shared<WeightStore>();
  for (auto& f : src.files()) out->keep_file(f);
  for (const std::string& n : src.names()) {
    StoredTensor t = *src.find(n);
    if (edit(n, t)) out->add(n, t);
  }
  return out;
}

std::string load_error(const JsonConfig& c, std::shared_ptr<WeightStore> w) {
  try {
    load_llama(c, std::move(w), {});
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(DenseLoad, MissingTensor) {
  Checkpoint ck = open("qwen2_tiny");
  auto w = edited(*ck.store,
                  [](const std::string& n, StoredTensor&) { return n != "model.layers.1.self_attn.k_proj.bias"; });
  std::string e = load_error(ck.config, w);
  EXPECT_NE(e.find("missing tensor 'model.layers.1.self_attn.k_proj.bias'"), std::string::npos) << e;
}

TEST(DenseLoad, WrongShape) {
  Checkpoint ck = open("qwen3moe_tiny");
  auto w = edited(*ck.store, [](const std::string& n, StoredTensor& t) {
    if (n == "model.layers.2.mlp.experts.5.down_proj.weight") t.view.shape = {32, 64};
    return true;
  });
  std::string e = load_error(ck.config, w);
  EXPECT_NE(e.find("'model.layers.2.mlp.experts.5.down_proj.weight' has shape [32, 64], expected [64, 32]"),
            std::string::npos)
      << e;
}

TEST(DenseLoad, WrongDtype) {
  Checkpoint ck = open("llama3_tiny");
  auto w = edited(*ck.store, [](const std::string& n, StoredTensor& t) {
    if (n == "model.layers.0.self_attn.o_proj.weight") t.view.dtype = DType::I32;
    if (n == "model.norm.weight") t.view.dtype = DType::I32;
    return true;
  });
  std::string e = load_error(ck.config, w);
  EXPECT_NE(e.find("'model.layers.0.self_attn.o_proj.weight' has dtype I32"), std::string::npos) << e;
  auto w2 = edited(*ck.store, [](const std::string& n, StoredTensor& t) {
    if (n == "model.norm.weight") t.view.dtype = DType::I32;
    return true;
  });
  e = load_error(ck.config, w2);
  EXPECT_NE(e.find("'model.norm.weight' has dtype I32"), std::string::npos) << e;
}

TEST(DenseLoad, WrongConfigForCheckpoint) {
  // A qwen2 checkpoint described as llama: no q/k/v bias expected, fine; but q_norm expected as qwen3 -> missing.
  Checkpoint ck = open("qwen2_tiny");
  nlohmann::json j = ck.config.json();
  j["model_type"] = "qwen3";
  j["architectures"] = {"Qwen3ForCausalLM"};
  j["head_dim"] = 16;
  std::string e = load_error(JsonConfig(j, "x"), ck.store);
  EXPECT_NE(e.find("missing tensor 'model.layers.0.self_attn.q_norm.weight'"), std::string::npos) << e;
}

TEST(DenseLoad, BadDirectory) {
  EXPECT_THROW(load_model(std::string(DM_TEST_DATA) + "/no-such-model"), Error);
  EXPECT_THROW(load_model(config_dir("qwen3-30b-a3b")), Error);  // config only, no weights
}

TEST(DenseLoad, ModelInfo) {
  auto m = load_model(golden_dir("qwen3moe_tiny") + "/hf_bf16");
  const ModelInfo& i = m->info();
  EXPECT_EQ(i.architecture, "Qwen3MoeForCausalLM");
  EXPECT_EQ(i.kv_width, 2 * 2 * 16);
  EXPECT_EQ(i.n_layers, 3);
  EXPECT_EQ(i.eos_token_ids, std::vector<int32_t>{1});
  EXPECT_EQ(i.bos_token_id, 0);
  const int64_t expert = 3 * 64 * 32;  // gate + up + down of one expert
  EXPECT_EQ(i.n_params - i.n_active_params, 3 * (8 - 2) * expert);
  EXPECT_EQ(i.weight_bytes, 2 * i.n_params);  // every tensor BF16
  EXPECT_NE(i.dtype_summary.find("BF16"), std::string::npos);
}

// llama.cpp's converter permutes Llama q/k rows per head so that rotary pairs become adjacent:
// HF row a·(d/2) + i  ->  GGUF row 2i + a. With deepmoe_rope_adjacent the permuted rows give the same logits.
TEST(DenseLoad, RopeAdjacentOnPermutedRows) {
  Checkpoint ck = open("llama3_tiny");
  const int64_t D = 16, half = D / 2, hidden = 64;
  auto permuted = std::make_shared<WeightStore>();
  for (auto& f : ck.store->files()) permuted->keep_file(f);
  for (const std::string& n : ck.store->names()) {
    const StoredTensor& t = *ck.store->find(n);
    const bool qk = n.find("q_proj.weight") != std::string::npos || n.find("k_proj.weight") != std::string::npos;
    if (!qk) {
      permuted->add(n, t);
      continue;
    }
    Buffer b(t.view.nbytes);
    const float* src = t.view.f32();
    float* dst = b.as<float>();
    for (int64_t h = 0; h < t.view.dim(0) / D; ++h)
      for (int64_t a = 0; a < 2; ++a)
        for (int64_t i = 0; i < half; ++i)
          std::copy_n(src + (h * D + a * half + i) * hidden, hidden, dst + (h * D + 2 * i + a) * hidden);
    permuted->add_owned(n, "permuted", DType::F32, t.view.shape, std::move(b));
  }
  nlohmann::json j = ck.config.json();
  std::vector<float> want = read_f32(golden_dir("llama3_tiny") + "/logits/main_fp32_prefill.f32");
  std::vector<int32_t> toks = golden_tokens("llama3_tiny", "main");

  j["deepmoe_rope_adjacent"] = true;
  auto m = load_llama(JsonConfig(j, "x"), permuted, {});
  EXPECT_LE(max_abs_diff(run_sequence(*m, toks, "prefill", 0, nullptr), want), 1e-4);
  // llama.cpp's files carry llama3 scaling as rope_freqs.weight, one divisor per frequency; these are the values
  // of tests/data/golden-gguf/llama3_tiny/model-f32.gguf, written by llama.cpp's converter.
  nlohmann::json g = j;
  g.erase("rope_scaling");
  g["deepmoe_rope_freq_factors"] = {1.0, 2.4422595500946045, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0};
  auto mg = load_llama(JsonConfig(g, "x"), permuted, {});
  EXPECT_LE(max_abs_diff(run_sequence(*mg, toks, "prefill", 0, nullptr), want), 1e-4);
  // Without the flag the same rows are wrong: the test can fail.
  j.erase("deepmoe_rope_adjacent");
  auto wrong = load_llama(JsonConfig(j, "x"), permuted, {});
  EXPECT_GT(max_abs_diff(run_sequence(*wrong, toks, "prefill", 0, nullptr), want), 1e-2);
}

// Tied embeddings: lm_head is embed_tokens. A tied checkpoint (no lm_head.weight) must equal an untied one whose
// lm_head.weight is a copy of embed_tokens; a tied checkpoint that still carries an lm_head.weight ignores it.
TEST(DenseLoad, TiedEmbeddings) {
  Checkpoint ck = open("qwen3_tiny");
  const StoredTensor embed = *ck.store->find("model.embed_tokens.weight");
  auto untied = edited(*ck.store, [&](const std::string& n, StoredTensor& t) {
    if (n == "lm_head.weight") t = embed;
    return true;
  });
  auto tied = edited(*ck.store, [](const std::string& n, StoredTensor&) { return n != "lm_head.weight"; });
  nlohmann::json j = ck.config.json();
  j["tie_word_embeddings"] = true;
  std::vector<int32_t> toks = golden_tokens("qwen3_tiny", "main");
  std::vector<float> want = run_sequence(*load_llama(ck.config, untied, {}), toks, "prefill", 0, nullptr);
  EXPECT_EQ(run_sequence(*load_llama(JsonConfig(j, "x"), tied, {}), toks, "prefill", 0, nullptr), want);
  // With the original (different) lm_head.weight present but tied in the config, it is ignored.
  EXPECT_EQ(run_sequence(*load_llama(JsonConfig(j, "x"), ck.store, {}), toks, "prefill", 0, nullptr), want);
  // The golden's own lm_head gives other logits, so the comparisons above can fail.
  std::vector<float> golden = read_f32(golden_dir("qwen3_tiny") + "/logits/main_fp32_prefill.f32");
  EXPECT_GT(max_abs_diff(want, golden), 1e-2);
  EXPECT_EQ(load_llama(JsonConfig(j, "x"), tied, {})->info().n_params + 512 * 64,
            load_llama(ck.config, ck.store, {})->info().n_params);
}

TEST(DenseLoad, NormTopkProbFalse) {
  Checkpoint ck = open("qwen3moe_tiny");
  nlohmann::json j = ck.config.json();
  j["norm_topk_prob"] = false;
  auto m = load_llama(JsonConfig(j, "x"), ck.store, {});
  std::vector<int32_t> toks = golden_tokens("qwen3moe_tiny", "main");
  KvCache kv(3, m->info().kv_width, kBlockSize, 2);
  std::vector<int32_t> blocks = {0, 1};
  std::vector<float> logits(512);
  SeqInput in{toks, 0, blocks, Logits::Last};
  ForwardTrace trace;
  m->forward(std::span<const SeqInput>(&in, 1), kv, logits.data(), nullptr, &trace);
  for (const auto& w : trace.weights[1]) {
    EXPECT_LT(w[0] + w[1], 1.0f);           // softmax mass of the two best of 8 experts, not renormalised
    EXPECT_GT(w[0] + w[1], 0.25f - 1e-6f);  // the two best hold at least 2/8 of the mass
  }
}

TEST(DenseLoad, BadBatchIsAnError) {
  auto m = load_model(golden_dir("qwen2_tiny") + "/hf_f32");
  KvCache kv(3, m->info().kv_width, kBlockSize, 2);
  std::vector<float> logits(512);
  std::vector<int32_t> bad_tok = {5, 512}, toks(20, 3), one_block = {0}, bad_block = {0, 9}, ok = {0, 1};
  auto run = [&](std::span<const int32_t> t, std::span<const int32_t> b) {
    SeqInput in{t, 0, b, Logits::Last};
    m->forward(std::span<const SeqInput>(&in, 1), kv, logits.data(), nullptr);
  };
  EXPECT_THROW(run(bad_tok, ok), Error);
  EXPECT_THROW(run(toks, one_block), Error);  // 20 positions need 2 blocks of 16
  EXPECT_THROW(run(toks, bad_block), Error);
  KvCache wrong(3, 32, kBlockSize, 2);
  SeqInput in{toks, 0, ok, Logits::Last};
  EXPECT_THROW(m->forward(std::span<const SeqInput>(&in, 1), wrong, logits.data(), nullptr), Error);
}

}  // namespace
