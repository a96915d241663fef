// FP8 checkpoints built in the test: the F32 weights of a golden model are quantized to F8_E4M3 with 128×128
// fp32 block scales (W ≈ q · scale_inv[i/128, j/128], ragged edge blocks since no dimension is a multiple of
// 128 in v3_tiny and only some are in v3_fp8), and written with the quantization_config of the published
// checkpoints. The FP8 model must give the logits of the same model with the dequantized weights stored as F32.
#include <gtest/gtest.h>

#include <filesystem>

#include <unistd.h>

#include "golden_util.h"
#include "kernels/linear.h"
#include "loader/safetensors.h"
#include "loader/weights.h"
#include "model/deepseek.h"

using namespace dm;
using namespace dm::test;
namespace fs = std::filesystem;

namespace {

struct Quantized {
  std::vector<uint8_t> q;      // [rows, cols] e4m3 codes
  std::vector<float> scale;    // [ceil(rows/128), ceil(cols/128)]
  std::vector<float> dequant;  // [rows, cols] q · scale, as fp32
};

// Per 128×128 block: scale = amax / 448, q = e4m3(w / scale).
Quantized quantize(const float* w, int64_t rows, int64_t cols) {
  const int64_t br = (rows + 127) / 128, bc = (cols + 127) / 128;
  Quantized out{std::vector<uint8_t>(size_t(rows * cols)), std::vector<float>(size_t(br * bc)),
                std::vector<float>(size_t(rows * cols))};
  for (int64_t bi = 0; bi < br; ++bi)
    for (int64_t bj = 0; bj < bc; ++bj) {
      float amax = 0;
      for (int64_t i = bi * 128; i < std::min(rows, bi * 128 + 128); ++i)
        for (int64_t j = bj * 128; j < std::min(cols, bj * 128 + 128); ++j) amax = std::max(amax, std::fabs(w[i * cols + j]));
      const float s = amax > 0 ? amax / 448.0f : 1.0f;
      out.scale[size_t(bi * bc + bj)] = s;
      for (int64_t i = bi * 128; i < std::min(rows, bi * 128 + 128); ++i)
        for (int64_t j = bj * 128; j < std::min(cols, bj * 128 + 128); ++j) {
          uint8_t code = f32_to_f8_e4m3(w[i * cols + j] / s);
          out.q[size_t(i * cols + j)] = code;
          out.dequant[size_t(i * cols + j)] = f8_e4m3_to_f32(code) * s;
        }
    }
  return out;
}

struct TempDir {
  fs::path dir;
  explicit TempDir(const std::string& tag) {
    dir = fs::temp_directory_path() / ("dm_" + tag + "_" + std::to_string(::getpid()));
    fs::create_directories(dir);
  }
  ~TempDir() { fs::remove_all(dir); }
};

// Writes `src` (a golden model dir) as an FP8 checkpoint into fp8_dir and its dequantized F32 twin into f32_dir.
void make_fp8_pair(const std::string& src, const fs::path& fp8_dir, const fs::path& f32_dir, int* n_fp8) {
  fs::create_directories(fp8_dir);
  fs::create_directories(f32_dir);
  const std::string config_path = src + "/config.json";
  WeightStore store = WeightStore::open_safetensors(src);
  std::vector<TensorSpec> specs = model_tensor_specs(config_path);
  std::vector<std::unique_ptr<Quantized>> keep;
  std::vector<std::vector<float>> keep_f32;
  std::vector<TensorToWrite> fp8, f32;
  *n_fp8 = 0;
  for (const TensorSpec& s : specs) {
    const TensorView& v = store.find(s.name)->view;
    std::vector<float> x(size_t(v.numel()));
    Weight w{v.dtype, v.shape.size() > 1 ? v.dim(0) : 1, v.shape.size() > 1 ? v.dim(1) : v.numel(), v.data, nullptr};
    dequantize_rows(w, 0, w.rows, x.data());  // BF16 inputs widen exactly
    if (s.kind == TensorSpec::Kind::Linear && s.name != "lm_head.weight") {
      keep.push_back(std::make_unique<Quantized>(quantize(x.data(), w.rows, w.cols)));
      Quantized& q = *keep.back();
      fp8.push_back({s.name, DType::F8_E4M3, s.shape, q.q.data(), q.q.size()});
      fp8.push_back({s.name + "_scale_inv", DType::F32, {(w.rows + 127) / 128, (w.cols + 127) / 128}, q.scale.data(),
                     q.scale.size() * 4});
      f32.push_back({s.name, DType::F32, s.shape, q.dequant.data(), q.dequant.size() * 4});
      ++*n_fp8;
    } else {
      keep_f32.push_back(std::move(x));
      auto& y = keep_f32.back();
      fp8.push_back({s.name, DType::F32, s.shape, y.data(), y.size() * 4});
      f32.push_back({s.name, DType::F32, s.shape, y.data(), y.size() * 4});
    }
  }
  write_safetensors((fp8_dir / "model.safetensors").string(), fp8);
  write_safetensors((f32_dir / "model.safetensors").string(), f32);
  nlohmann::json cfg = nlohmann::json::parse(read_file(config_path));
  std::ofstream((f32_dir / "config.json").string()) << cfg.dump(2);
  cfg["quantization_config"] = {{"activation_scheme", "dynamic"}, {"fmt", "e4m3"}, {"quant_method", "fp8"},
                                {"weight_block_size", {128, 128}}};
  std::ofstream((fp8_dir / "config.json").string()) << cfg.dump(2);
}

class DeepseekFp8 : public testing::TestWithParam<std::string> {};

TEST_P(DeepseekFp8, QuantizedCheckpointMatchesItsDequantizedTwin) {
  const std::string m = GetParam();
  TempDir t("fp8_" + m);
  int n_fp8 = 0;
  make_fp8_pair(kGolden + "/" + m + (m == "v3_fp8" ? "/hf_bf16" : "/hf_f32"), t.dir / "fp8", t.dir / "f32", &n_fp8);
  EXPECT_GT(n_fp8, 20);
  auto fp8 = load_model((t.dir / "fp8").string());
  auto ref = load_model((t.dir / "f32").string());
  EXPECT_NE(fp8->info().dtype_summary.find("F8_E4M3"), std::string::npos) << fp8->info().dtype_summary;
  EXPECT_LT(fp8->info().weight_bytes, ref->info().weight_bytes / 2);
  auto tokens = golden_tokens(m, "main");
  ThreadPool pool(2);
  for (std::string mode : {"prefill", "decode"}) {
    auto a = run_mode(*fp8, tokens, mode, 0, &pool);
    auto b = run_mode(*ref, tokens, mode, 0, &pool);
    EXPECT_LE(max_abs_diff(a, b), 1e-5) << mode;
    // And the quantization is real: far from the unquantized model, not a copy of it.
    if (m == "v3_tiny") {
      auto orig = read_f32(kGolden + "/v3_tiny/logits/main_fp32_naive_" + mode + ".f32");
      EXPECT_GT(max_abs_diff(a, orig), 1e-3);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(All, DeepseekFp8, testing::Values("v3_tiny", "v3_fp8"));

}  // namespace
