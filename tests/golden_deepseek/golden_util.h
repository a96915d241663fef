// Helpers of the DeepSeek golden tests: reading .f32 / .npy files and golden.json, running a model in the
// golden modes (prefill, decode, mixed, prefix) through a fresh paged KV cache, and comparing logits.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/mapped_file.h"
#include "model/model.h"

namespace dm::test {

inline const std::string kGolden = DM_TEST_DATA "/golden";
// f32 activations everywhere (the goldens' fp32 compute): no bf16 rounding of prompt batches over BF16 weights.
inline LoadOptions f32_activations() {
  LoadOptions o;
  o.bf16_activations = false;
  return o;
}
// Positions whose largest logit is the same in a and b ([positions, V] each).
inline int argmax_agree(const std::vector<float>& a, const std::vector<float>& b, int64_t V) {
  int n = 0;
  for (size_t p = 0; p + size_t(V) <= a.size() && p + size_t(V) <= b.size(); p += size_t(V)) {
    const auto ia = std::max_element(a.begin() + long(p), a.begin() + long(p) + V) - a.begin();
    const auto ib = std::max_element(b.begin() + long(p), b.begin() + long(p) + V) - b.begin();
    n += ia == ib;
  }
  return n;
}

inline std::vector<float> read_f32(const std::string& path) {
  std::string b = read_file(path);
  std::vector<float> v(b.size() / 4);
  std::memcpy(v.data(), b.data(), v.size() * 4);
  return v;
}

// A minimal .npy reader for little-endian int32 C-order arrays (the golden topk_idx files).
struct NpyI32 {
  std::vector<int64_t> shape;
  std::vector<int32_t> data;
};
inline NpyI32 read_npy_i32(const std::string& path) {
  std::string b = read_file(path);
  if (b.size() < 10 || b.compare(0, 6, "\x93NUMPY") != 0) fail(path, ": not a .npy file");
  const int major = uint8_t(b[6]);
  size_t hlen, off;
  if (major == 1) {
    hlen = uint8_t(b[8]) | size_t(uint8_t(b[9])) << 8;
    off = 10;
  } else {
    if (b.size() < 12) fail(path, ": truncated .npy");
    hlen = uint8_t(b[8]) | size_t(uint8_t(b[9])) << 8 | size_t(uint8_t(b[10])) << 16 | size_t(uint8_t(b[11])) << 24;
    off = 12;
  }
  if (off + hlen > b.size()) fail(path, ": truncated .npy header");
  std::string h = b.substr(off, hlen);
  if (h.find("'descr': '<i4'") == std::string::npos) fail(path, ": expected dtype <i4: ", h);
  if (h.find("'fortran_order': False") == std::string::npos) fail(path, ": expected C order");
  NpyI32 r;
  size_t p = h.find("'shape': (");
  if (p == std::string::npos) fail(path, ": no shape");
  p += 10;
  while (p < h.size() && h[p] != ')') {
    if (h[p] >= '0' && h[p] <= '9') {
      size_t q = p;
      while (q < h.size() && h[q] >= '0' && h[q] <= '9') ++q;
      r.shape.push_back(std::stoll(h.substr(p, q - p)));
      p = q;
    } else {
      ++p;
    }
  }
  int64_t n = 1;
  for (int64_t d : r.shape) n *= d;
  if (off + hlen + size_t(n) * 4 != b.size()) fail(path, ": data size does not match shape");
  r.data.resize(size_t(n));
  std::memcpy(r.data.data(), b.data() + off + hlen, size_t(n) * 4);
  return r;
}

// golden.json may hold Python's non-standard Infinity / NaN literals (routing margins); they become null.
inline nlohmann::json golden_json(const std::string& model) {
  std::string s = read_file(kGolden + "/" + model + "/golden.json");
  for (const char* lit : {"-Infinity", "Infinity", "NaN"})
    for (size_t p = s.find(lit); p != std::string::npos; p = s.find(lit, p)) s.replace(p, std::strlen(lit), "null");
  return nlohmann::json::parse(s);
}
inline std::vector<int32_t> golden_tokens(const std::string& model, const std::string& seq) {
  return golden_json(model)["sequences"][seq]["tokens"].get<std::vector<int32_t>>();
}

inline KvCache make_cache(const Model& m, int64_t n_tokens, int block_size = 16) {
  return KvCache(m.info().n_layers, m.info().kv_width, block_size, (n_tokens + block_size - 1) / block_size);
}

// Logits [n, vocab] of `tokens` in `mode`: "prefill", "decode", "mixed" (first n_prefill at once, then decode),
// "prefix" (row t from a fresh prefill of tokens[0..t]), "chunked" (first n_prefill at once, then the rest as one
// chunk after that cached prefix). Blocks are used in reverse order to exercise the table.
inline std::vector<float> run_mode(Model& m, const std::vector<int32_t>& tokens, const std::string& mode,
                                   int64_t n_prefill = 16, ThreadPool* pool = nullptr, ForwardTrace* trace = nullptr) {
  const int64_t n = int64_t(tokens.size()), V = m.info().vocab_size;
  std::vector<float> logits(size_t(n * V));
  KvCache kv = make_cache(m, n);
  std::vector<int32_t> blocks(size_t(kv.n_blocks()));
  for (size_t b = 0; b < blocks.size(); ++b) blocks[b] = int32_t(blocks.size() - 1 - b);
  auto run = [&](int64_t begin, int64_t end, int64_t n_past, Logits which, float* out) {
    SeqInput s;
    s.tokens = std::span<const int32_t>(tokens.data() + begin, size_t(end - begin));
    s.n_past = n_past;
    s.blocks = blocks;
    s.logits = which;
    m.forward(std::span<const SeqInput>(&s, 1), kv, out, pool, trace);
  };
  if (mode == "prefix") {
    for (int64_t t = 0; t < n; ++t) run(0, t + 1, 0, Logits::Last, &logits[size_t(t * V)]);
    return logits;
  }
  int64_t np = mode == "prefill" ? n : mode == "decode" ? 0 : n_prefill;
  if (np > 0) run(0, np, 0, Logits::All, logits.data());
  if (mode == "chunked") {
    if (np < n) run(np, n, np, Logits::All, &logits[size_t(np * V)]);
    return logits;
  }
  for (int64_t t = np; t < n; ++t) run(t, t + 1, t, Logits::All, &logits[size_t(t * V)]);
  return logits;
}

inline double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, double(std::fabs(a[i] - b[i])));
  return m;
}

}  // namespace dm::test
