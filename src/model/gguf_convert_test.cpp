// `deepmoe convert` against llama.cpp's own converter: each golden HF model converted by us has the same tensor
// names, dims, types and metadata (keys and values) as the file llama.cpp wrote, and, in F32, the same bytes;
// Q8_0 conversion gives llama-quantize's bytes. Converting back through the GGUF adapter gives the HF tensors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "core/error.h"
#include "model/gguf_convert.h"
#include "model/gguf_model.h"

namespace dm {
namespace {

const std::string kData = DM_TEST_DATA;
namespace fs = std::filesystem;

bool same_value(const GgufValue& a, const GgufValue& b) {
  if (a.type != b.type || a.elem != b.elem) return false;
  if (a.type == GgufType::F32 || a.type == GgufType::F64) return a.f == b.f;
  return a.i == b.i && a.str == b.str && a.ints == b.ints && a.floats == b.floats && a.strings == b.strings;
}

void compare_with_llamacpp(const GgufFile& ours, const GgufFile& ref, bool same_bytes) {
  std::map<std::string, const GgufValue*> mine;
  for (auto& [k, v] : ours.metadata()) mine[k] = &v;
  for (auto& [k, v] : ref.metadata()) {
    if (k == "general.size_label") continue;  // informational, not written by deepmoe
    auto it = mine.find(k);
    if (it == mine.end()) {
      ADD_FAILURE() << ref.path() << ": key " << k << " missing";
      continue;
    }
    EXPECT_TRUE(same_value(*it->second, v)) << k << " differs (type " << gguf_type_name(it->second->type) << " vs "
                                            << gguf_type_name(v.type) << ")";
    mine.erase(it);
  }
  for (auto& [k, v] : mine) ADD_FAILURE() << "extra key " << k;
  EXPECT_EQ(ours.tensors().size(), ref.tensors().size());
  for (auto& t : ref.tensors()) {
    const GgufTensor* m = ours.find_tensor(t.name());
    if (!m) {
      ADD_FAILURE() << "missing tensor " << t.name();
      continue;
    }
    EXPECT_EQ(m->info->ne, t.info->ne) << t.name();
    EXPECT_EQ(ggml_type_name(m->info->ggml_type), ggml_type_name(t.info->ggml_type)) << t.name();
    if (!same_bytes || m->info->nbytes != t.info->nbytes) continue;
    if (t.name() == "rope_freqs.weight") {
      for (int64_t i = 0; i < t.info->numel(); ++i)
        EXPECT_NEAR(ours.view(*m).f32()[i], ref.view(t).f32()[i], 1e-6) << i;
      continue;
    }
    EXPECT_EQ(0, std::memcmp(m->data, t.data, t.info->nbytes)) << t.name();
  }
}

TEST(GgufConvert, MatchesLlamaCppConverter) {
  std::string dir = ::testing::TempDir();
  for (std::string model : {"v3_tiny", "llama3_tiny", "qwen2_tiny", "qwen3_tiny", "qwen3moe_tiny"}) {
    for (std::string type : {"f32", "q8_0"}) {
      SCOPED_TRACE(model + " " + type);
      std::string out = dir + "/" + model + "-" + type + ".gguf";
      ConvertSummary s = convert_to_gguf(kData + "/golden/" + model + "/hf_f32", out, {type, model});
      EXPECT_EQ(s.type, type);
      EXPECT_EQ(s.notes.size(), 1u);  // stand-in vocabulary: no tokenizer.json in the golden folders
      GgufFile ours = GgufFile::open(out), ref = GgufFile::open(kData + "/golden-gguf/" + model + "/model-" + type + ".gguf");
      compare_with_llamacpp(ours, ref, true);
    }
  }
}

TEST(GgufConvert, AdapterGivesBackTheCheckpoint) {
  std::string dir = ::testing::TempDir();
  for (std::string model : {"v2lite_tiny", "v3_tiny", "llama3_tiny"}) {
    for (std::string type : {"f32", "bf16"}) {
      SCOPED_TRACE(model + " " + type);
      std::string src = kData + "/golden/" + model + (type == "f32" ? "/hf_f32" : "/hf_bf16");
      std::string out = dir + "/" + model + "-rt.gguf";
      convert_to_gguf(src, out, {type, ""});
      GgufCheckpoint ck = open_gguf_checkpoint(out);
      WeightStore hf = WeightStore::open_safetensors(src);
      std::vector<std::string> names;  // the checkpoint's, plus attn_k_b / attn_v_b as stored (absorbed MLA)
      for (const std::string& n : ck.weights->names())
        if (!n.ends_with(".self_attn.k_b_proj.weight") && !n.ends_with(".self_attn.v_b_proj.weight")) names.push_back(n);
      EXPECT_EQ(names, hf.names());
      for (auto& name : hf.names()) {
        const TensorView& a = ck.weights->find(name)->view;
        const TensorView& b = hf.find(name)->view;
        ASSERT_EQ(a.shape, b.shape) << name;
        bool f32_kept = b.dtype == DType::F32 && (a.ndim() == 1 || name.find("mlp.gate.") != std::string::npos);
        bool permuted_qk = model == "llama3_tiny" && (name.find("q_proj") != std::string::npos ||
                                                      name.find("k_proj") != std::string::npos);
        if (permuted_qk) continue;  // llama.cpp's row order, flagged by deepmoe_rope_adjacent (see gguf_model_test)
        if (a.dtype == b.dtype) {
          EXPECT_EQ(0, std::memcmp(a.data, b.data, b.nbytes)) << name;
        } else {
          EXPECT_TRUE(f32_kept || a.dtype == DType::F32) << name << " " << dtype_name(a.dtype);
        }
      }
      JsonConfig hc = JsonConfig::load(src + "/config.json");
      EXPECT_EQ(ck.config.get_int("num_hidden_layers"), hc.get_int("num_hidden_layers"));
      if (model != "llama3_tiny") {
        EXPECT_EQ(ck.config.json().at("q_lora_rank"), hc.json().at("q_lora_rank"));
        EXPECT_EQ(ck.config.json().at("v_head_dim"), hc.json().at("v_head_dim"));
      }
    }
  }
}

TEST(GgufConvert, ErrorsNameTheProblem) {
  std::string dir = ::testing::TempDir() + "/bad_convert";
  fs::create_directories(dir);
  fs::copy_file(kData + "/golden/qwen2_tiny/hf_f32/model.safetensors", dir + "/model.safetensors",
                fs::copy_options::overwrite_existing);
  std::ofstream(dir + "/config.json") << R"({"model_type": "gpt_neox"})";
  try {
    convert_to_gguf(dir, dir + "/x.gguf");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'gpt_neox' cannot be converted"), std::string::npos) << e.what();
  }
  EXPECT_THROW(convert_to_gguf(kData + "/golden/qwen2_tiny/hf_f32", dir + "/x.gguf", {"q2_k", ""}), Error);
}

}  // namespace
}  // namespace dm
