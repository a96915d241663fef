// Helpers of the dense-family tests: golden files, and running a model over a token sequence in the golden
// modes (prefill: one forward; decode: one token per forward; mixed: a prefill then decode).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "model/model.h"

namespace dm::test {

inline std::string golden_dir(const std::string& model) { return std::string(DM_TEST_DATA) + "/golden/" + model; }
inline std::string config_dir(const std::string& name) {
  return std::string(DM_TEST_DATA) + "/fixtures/configs/" + name;
}

inline std::vector<float> read_f32(const std::string& path) {
  std::string s = read_file(path);
  std::vector<float> v(s.size() / sizeof(float));
  std::memcpy(v.data(), s.data(), v.size() * sizeof(float));
  return v;
}

inline nlohmann::json golden_json(const std::string& model) {
  return nlohmann::json::parse(read_file(golden_dir(model) + "/golden.json"));
}

inline std::vector<int32_t> golden_tokens(const std::string& model, const std::string& seq) {
  return golden_json(model)["sequences"][seq]["tokens"].get<std::vector<int32_t>>();
}

inline float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return 1e30f;
  float m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

constexpr int kBlockSize = 16;

// A block table that is not the identity (reversed, offset), so the test checks the indirection.
inline std::vector<int32_t> scrambled_blocks(int64_t n_tokens, int32_t first, int32_t n_blocks) {
  std::vector<int32_t> b;
  for (int64_t i = 0; i < (n_tokens + kBlockSize - 1) / kBlockSize; ++i) b.push_back(n_blocks - 1 - first - int32_t(i));
  return b;
}

// Logits [T, vocab] of `tokens`: mode "prefill", "decode", or "mixed" (prefill of prefill_len tokens, then decode).
inline std::vector<float> run_sequence(Model& m, const std::vector<int32_t>& tokens, const std::string& mode,
                                       int64_t prefill_len, ThreadPool* pool) {
  const int64_t T = int64_t(tokens.size()), V = m.info().vocab_size;
  const int32_t n_blocks = int32_t(T / kBlockSize + 3);
  KvCache kv(m.info().n_layers, m.info().kv_width, kBlockSize, n_blocks);
  std::vector<int32_t> blocks = scrambled_blocks(T, 1, n_blocks);
  std::vector<float> out(size_t(T * V));
  int64_t done = 0;
  if (mode != "decode") {
    const int64_t p = mode == "prefill" ? T : prefill_len;
    SeqInput in{std::span<const int32_t>(tokens.data(), size_t(p)), 0, blocks, Logits::All};
    m.forward(std::span<const SeqInput>(&in, 1), kv, out.data(), pool);
    done = p;
  }
  for (; done < T; ++done) {
    SeqInput in{std::span<const int32_t>(tokens.data() + done, 1), done, blocks, Logits::Last};
    m.forward(std::span<const SeqInput>(&in, 1), kv, out.data() + done * V, pool);
  }
  return out;
}

}  // namespace dm::test
