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

// Nearest e4m3fn code (ties to the even code, saturating at ±448): a binary search over the 127 finite positive
// codes, which are increasing. Same rounding as dm::f32_to_f8_e4m3, much faster for whole checkpoints.
uint8_t to_e4m3(float x) {
  static const std::vector<float> pos = [] {
    std::vector<float> v(127);
    for (int c = 0; c < 127; ++c) v[size_t(c)] = f8_e4m3_to_f32(uint8_t(c));
    return v;
  }();
  const uint8_t sign = std::signbit(x) ? 0x80 : 0;
  const float a = std::fabs(x);
  size_t hi = size_t(std::lower_bound(pos.begin(), pos.end(), a) - pos.begin());
  uint8_t code;
  if (hi >= pos.size()) code = 126;
  else if (hi == 0) code = 0;
  else {
    const float dl = a - pos[hi - 1], dh = pos[hi] - a;
    code = uint8_t(dl < dh ? hi - 1 : dh < dl ? hi : ((hi - 1) % 2 == 0 ? hi - 1 : hi));
  }
  return sign | code;
}

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
          uint8_t code = to_e4m3(w[i * cols + j] / s);
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
  for (std::string mode : {"prefill", "decode"}) {
    auto a = run_mode(*fp8, tokens, mode, 0);
    auto b = run_mode(*ref, tokens, mode, 0);
    EXPECT_LE(max_abs_diff(a, b), 1e-5) << mode;
    // And the quantization is real: far from the unquantized model, not a copy of it.
    if (m == "v3_tiny") {
      auto orig = read_f32(kGolden + "/v3_tiny/logits/main_fp32_naive_" + mode + ".f32");
      EXPECT_GT(max_abs_diff(a, orig), 1e-3);
    }
  }
}

TEST(DeepseekFp8Rounding, FastQuantizerMatchesCore) {
  for (float x = -500; x < 500; x += 0.0137f) ASSERT_EQ(to_e4m3(x), f32_to_f8_e4m3(x)) << x;
  for (int c = 0; c < 256; ++c) {
    if (c == 0x7f || c == 0xff) continue;  // NaN
    float v = f8_e4m3_to_f32(uint8_t(c));
    ASSERT_EQ(to_e4m3(v), f32_to_f8_e4m3(v)) << c;
    if (c < 126) {  // midpoint between neighbours: ties to even
      float mid = 0.5f * (v + f8_e4m3_to_f32(uint8_t(c + 1)));
      ASSERT_EQ(to_e4m3(mid), f32_to_f8_e4m3(mid)) << c;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(All, DeepseekFp8, testing::Values("v3_tiny", "v3_fp8"));

}  // namespace

namespace {

// SHA-256 (FIPS 180-4), for the golden's hashes of dequantized FP8 weights.
std::string sha256_hex(const uint8_t* data, size_t n) {
  static const uint32_t K[64] = {
      0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
      0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
      0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
      0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
      0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
      0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
      0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
      0xc67178f2};
  uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  std::vector<uint8_t> m(data, data + n);
  m.push_back(0x80);
  while (m.size() % 64 != 56) m.push_back(0);
  for (int i = 7; i >= 0; --i) m.push_back(uint8_t((uint64_t(n) * 8) >> (8 * i)));
  auto rotr = [](uint32_t x, int r) { return (x >> r) | (x << (32 - r)); };
  for (size_t off = 0; off < m.size(); off += 64) {
    uint32_t w[64];
    for (int i = 0; i < 16; ++i)
      w[i] = uint32_t(m[off + 4 * size_t(i)]) << 24 | uint32_t(m[off + 4 * size_t(i) + 1]) << 16 |
             uint32_t(m[off + 4 * size_t(i) + 2]) << 8 | m[off + 4 * size_t(i) + 3];
    for (int i = 16; i < 64; ++i) {
      uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; ++i) {
      uint32_t t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
      uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      hh = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    uint32_t v[8] = {a, b, c, d, e, f, g, hh};
    for (int i = 0; i < 8; ++i) h[i] += v[i];
  }
  std::string out;
  char buf[9];
  for (uint32_t x : h) {
    std::snprintf(buf, sizeof buf, "%08x", x);
    out += buf;
  }
  return out;
}

}  // namespace

TEST(DeepseekFp8Golden, Sha256OfKnownInput) {
  const std::string abc = "abc";
  EXPECT_EQ(sha256_hex(reinterpret_cast<const uint8_t*>(abc.data()), 3),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

// Every FP8 tensor of v3_fp8/hf_fp8, dequantized as the model computes with it (Weight + scale_inv), hashes to the
// golden's W' (catches wrong subnormal, NaN or scale-block decoding that logits might not).
TEST(DeepseekFp8Golden, DequantizedWeightsMatchGoldenHashes) {
  const std::string dir = kGolden + "/v3_fp8/hf_fp8";
  WeightStore store = WeightStore::open_safetensors(dir);
  auto tensors = golden_json("v3_fp8")["fp8"]["stats"]["tensors"];
  int n = 0;
  for (auto& [name, t] : tensors.items()) {
    const TensorView& v = store.get(name, {DType::F8_E4M3}, t["shape"].get<std::vector<int64_t>>());
    Weight w{DType::F8_E4M3, v.dim(0), v.dim(1), v.data, store.find(name + "_scale_inv")->view.f32()};
    std::vector<float> deq(size_t(w.rows * w.cols));
    dequantize_rows(w, 0, w.rows, deq.data());
    EXPECT_EQ(sha256_hex(reinterpret_cast<const uint8_t*>(deq.data()), deq.size() * 4),
              t["W'_sha256 (float32 LE row-major)"].get<std::string>())
        << name;
    ++n;
  }
  EXPECT_EQ(n, 72);
}
