// GGUF adapter tests against the llama.cpp-written golden files: the HF config it builds agrees with each model's
// config.json on every field the model reads, and every HF tensor it yields (views, expert slices, kv_b_proj rebuilt
// from attn_k_b/attn_v_b, un-permuted Llama Q/K) is bit-identical to the safetensors checkpoint's for F32 files.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <set>

#include "core/error.h"
#include "kernels/linear.h"
#include "loader/gguf_writer.h"
#include "loader/json_config.h"
#include "model/gguf_model.h"
#include "model/gguf_names.h"

namespace dm {
namespace {

const std::string kData = DM_TEST_DATA;

// HF llama3 inv_freq divisor for config parameters (transformers' _compute_llama3_parameters).
double llama3_div(double inv, const nlohmann::json& rs) {
  double factor = rs["factor"], low = rs["low_freq_factor"], high = rs["high_freq_factor"];
  double orig = rs["original_max_position_embeddings"];
  double wavelen = 2 * M_PI / inv;
  if (wavelen < orig / high) return 1;
  if (wavelen > orig / low) return factor;
  double s = (orig / wavelen - low) / (high - low);
  return 1 / ((1 - s) / factor + s);
}

// llama.cpp's Q/K row order: row 2i+p of each head holds HF row p·head_dim/2 + i.
std::vector<uint8_t> permuted(const TensorView& v, int64_t n_head) {
  const int64_t rows = v.dim(0), hd = rows / n_head;
  const size_t rb = v.nbytes / size_t(rows);
  std::vector<uint8_t> out(v.nbytes);
  for (int64_t h = 0; h < n_head; ++h)
    for (int64_t i = 0; i < hd / 2; ++i)
      for (int64_t p = 0; p < 2; ++p)
        std::memcpy(&out[size_t(h * hd + 2 * i + p) * rb],
                    static_cast<const uint8_t*>(v.data) + size_t(h * hd + p * hd / 2 + i) * rb, rb);
  return out;
}

void expect_config_matches(const nlohmann::json& got, const nlohmann::json& hf, const std::string& model) {
  for (auto& [key, want] : hf.items()) {
    static const std::set<std::string> ignored = {
        "attention_bias", "attention_dropout", "initializer_range", "use_cache", "pretraining_tp", "ep_size",
        "seq_aux", "aux_loss_alpha", "torch_dtype", "dtype", "transformers_version", "layer_types",
        "max_window_layers", "sliding_window", "use_sliding_window", "mlp_bias", "output_router_logits",
        "router_aux_loss_coef", "num_nextn_predict_layers", "rope_scaling", "moe_layer_freq"};
    if (ignored.count(key)) continue;
    if (model == "qwen2_tiny" && key == "head_dim") continue;
    ASSERT_TRUE(got.contains(key)) << model << ": missing " << key;
    if (want.is_number_float() || got[key].is_number_float())
      EXPECT_NEAR(got[key].get<double>(), want.get<double>(), 1e-6) << model << ": " << key;
    else
      EXPECT_EQ(got[key], want) << model << ": " << key;
  }
  const auto& rs = hf["rope_scaling"];
  if (rs.is_null()) {
    EXPECT_TRUE(!got.contains("rope_scaling") || got["rope_scaling"].is_null()) << model;
  } else if (rs.value("rope_type", "") == "llama3") {
    // As per-frequency divisors: each must be HF's.
    EXPECT_TRUE(got["rope_scaling"].is_null());
    EXPECT_EQ(got.value("deepmoe_rope_adjacent", false), true);
    int64_t d = hf["head_dim"];
    const auto& f = got.at("deepmoe_rope_freq_factors");
    ASSERT_EQ(int64_t(f.size()), d / 2);
    for (int64_t i = 0; i < d / 2; ++i) {
      double inv = std::pow(hf["rope_theta"].get<double>(), -2.0 * double(i) / double(d));
      EXPECT_NEAR(f[size_t(i)].get<double>(), llama3_div(inv, rs), 1e-6) << model << " freq " << i;
    }
  } else {
    for (auto& [key, want] : rs.items()) {
      ASSERT_TRUE(got["rope_scaling"].contains(key)) << model << ": rope_scaling." << key;
      if (want.is_string())
        EXPECT_EQ(got["rope_scaling"][key], want) << key;
      else
        EXPECT_NEAR(got["rope_scaling"][key].get<double>(), want.get<double>(), 1e-6) << key;
    }
  }
}

TEST(GgufModel, ConfigsAndTensorsMatchSafetensors) {
  for (std::string model : {"v3_tiny", "llama3_tiny", "qwen2_tiny", "qwen3_tiny", "qwen3moe_tiny"}) {
    std::vector<std::string> files = {"model-f32.gguf"};
    if (model == "v3_tiny") files.push_back("model-kvb-f32.gguf");
    JsonConfig hf_cfg = JsonConfig::load(kData + "/golden/" + model + "/hf_f32/config.json");
    WeightStore hf = WeightStore::open_safetensors(kData + "/golden/" + model + "/hf_f32");
    for (auto& file : files) {
      SCOPED_TRACE(model + "/" + file);
      GgufCheckpoint ck = open_gguf_checkpoint(kData + "/golden-gguf/" + model + "/" + file);
      expect_config_matches(ck.config.json(), hf_cfg.json(), model);
      std::vector<std::string> names;  // the checkpoint's, plus attn_k_b / attn_v_b as stored (absorbed MLA)
      for (const std::string& n : ck.weights->names())
        if (!n.ends_with(".self_attn.k_b_proj.weight") && !n.ends_with(".self_attn.v_b_proj.weight")) names.push_back(n);
      EXPECT_EQ(names, hf.names());
      for (auto& name : hf.names()) {
        const StoredTensor* a = ck.weights->find(name);
        const StoredTensor* b = hf.find(name);
        ASSERT_NE(a, nullptr) << name;
        EXPECT_EQ(a->view.dtype, b->view.dtype) << name;
        ASSERT_EQ(a->view.shape, b->view.shape) << name;
        ASSERT_EQ(a->view.nbytes, b->view.nbytes) << name;
        bool q = name.find("self_attn.q_proj.weight") != std::string::npos;
        bool k = name.find("self_attn.k_proj.weight") != std::string::npos;
        if (model == "llama3_tiny" && (q || k)) {
          std::vector<uint8_t> p = permuted(b->view, hf_cfg.get_int(q ? "num_attention_heads" : "num_key_value_heads"));
          EXPECT_EQ(0, std::memcmp(a->view.data, p.data(), p.size())) << name;
          EXPECT_NE(0, std::memcmp(a->view.data, b->view.data, b->view.nbytes)) << name;
        } else {
          EXPECT_EQ(0, std::memcmp(a->view.data, b->view.data, b->view.nbytes)) << name;
        }
      }
    }
  }
}

TEST(GgufModel, QuantizedFilesGiveQuantizedViews) {
  GgufCheckpoint ck = open_gguf_checkpoint(kData + "/golden-gguf/v3_tiny/model-q8_0.gguf");
  const StoredTensor* e = ck.weights->find("model.layers.1.mlp.experts.3.up_proj.weight");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->view.dtype, DType::Q8_0);
  EXPECT_EQ(e->view.shape, (std::vector<int64_t>{32, 64}));
  EXPECT_EQ(e->view.nbytes, dtype_bytes(DType::Q8_0, 32 * 64));
  // attn_k_b stays F16 (rows of 16 values), attn_v_b is Q8_0: kv_b_proj is rebuilt in F32.
  const StoredTensor* kvb = ck.weights->find("model.layers.2.self_attn.kv_b_proj.weight");
  ASSERT_NE(kvb, nullptr);
  EXPECT_EQ(kvb->view.shape, (std::vector<int64_t>{128, 32}));
  // Within Q8_0 rounding of the F32 model's kv_b_proj.
  WeightStore hf = WeightStore::open_safetensors(kData + "/golden/v3_tiny/hf_f32");
  const TensorView& ref = hf.find("model.layers.2.self_attn.kv_b_proj.weight")->view;
  Weight w{kvb->view.dtype, 128, 32, kvb->view.data, nullptr};
  std::vector<float> got(128 * 32);
  dequantize_rows(w, 0, 128, got.data());
  double max_err = 0, max_ref = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    max_err = std::max(max_err, double(std::fabs(got[i] - ref.f32()[i])));
    max_ref = std::max(max_ref, double(std::fabs(ref.f32()[i])));
  }
  EXPECT_LT(max_err, max_ref / 100);
  EXPECT_GT(max_ref, 0);
}

TEST(GgufModel, NameTableRoundTrips) {
  for (const char* g : {"token_embd.weight", "blk.0.attn_kv_a_mqa.weight", "blk.17.exp_probs_b.bias",
                        "blk.3.ffn_down_shexp.weight", "output.weight", "blk.2.attn_q.bias"}) {
    std::string h = hf_name_from_gguf(g);
    EXPECT_FALSE(h.empty()) << g;
    EXPECT_EQ(gguf_name_from_hf(h), g);
  }
  EXPECT_EQ(hf_name_from_gguf("blk.x.attn_q.weight"), "");
  EXPECT_EQ(hf_name_from_gguf("blk.1.ffn_gate_exps.weight"), "");
  EXPECT_EQ(gguf_name_from_hf("model.layers.1.mlp.experts.0.up_proj.weight"), "");
}

TEST(GgufModel, BadFilesNameFileAndKey) {
  std::string dir = ::testing::TempDir();
  auto expect_error = [&](GgufWriter& w, const std::string& want) {
    std::string path = dir + "/bad_model.gguf";
    w.write(path);
    try {
      open_gguf_checkpoint(path);
      ADD_FAILURE() << "no error, expected " << want;
    } catch (const Error& e) {
      std::string m = e.what();
      EXPECT_NE(m.find(want), std::string::npos) << m;
      EXPECT_NE(m.find(path), std::string::npos) << m;
    }
  };
  GgufWriter gpt2;
  gpt2.set("general.architecture", GgufValue::string("gpt2"));
  expect_error(gpt2, "unsupported GGUF architecture 'gpt2'");
  GgufWriter no_heads;
  no_heads.set("general.architecture", GgufValue::string("qwen2"));
  no_heads.set("qwen2.block_count", GgufValue::u32(1));
  no_heads.set("qwen2.embedding_length", GgufValue::u32(8));
  expect_error(no_heads, "missing metadata key 'qwen2.attention.head_count'");
  GgufWriter odd;
  odd.set("general.architecture", GgufValue::string("qwen2"));
  odd.set("qwen2.block_count", GgufValue::u32(1));
  odd.set("qwen2.embedding_length", GgufValue::u32(8));
  odd.set("qwen2.attention.head_count", GgufValue::u32(2));
  odd.set("qwen2.vocab_size", GgufValue::u32(4));
  std::vector<float> x(8);
  odd.add_tensor("blk.0.mystery.weight", {8}, 0, x.data(), 32);
  expect_error(odd, "tensor 'blk.0.mystery.weight' has no known meaning");
}

}  // namespace
}  // namespace dm
