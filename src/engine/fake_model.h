// A deterministic stand-in for a real model, for engine tests (header-only; no weights).
// forward() writes (token, position, layer tag) into the KV slots of the new tokens through the block table and
// computes each logits row from a hash of EVERY slot it reads back for positions 0..p, so a wrong block table,
// a stale or overwritten slot, or a bad prefix reuse changes the logits. reference_logits() computes the same
// row from the token ids alone (no cache): the oracle the engine's output is compared with.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "core/error.h"
#include "model/model.h"

namespace dm {

class FakeModel : public Model {
 public:
  struct Call {
    int n_seqs = 0;
    int64_t n_tokens = 0;
  };

  explicit FakeModel(int64_t vocab = 64, int64_t max_context = 512, std::vector<int32_t> eos = {}) {
    info_.architecture = "FakeForCausalLM";
    info_.model_type = "fake";
    info_.vocab_size = vocab;
    info_.hidden_size = 8;
    info_.n_layers = 2;
    info_.kv_width = 3;
    info_.max_context = max_context;
    info_.eos_token_ids = std::move(eos);
  }

  const ModelInfo& info() const override { return info_; }

  void forward(std::span<const SeqInput> batch, KvCache& kv, float* logits, ThreadPool*, ForwardTrace*) override {
    if (throw_at_call >= 0 && int64_t(calls.size()) == throw_at_call) {
      calls.push_back({});
      fail("fake model: forced failure");
    }
    Call call{int(batch.size()), 0};
    const int bs = kv.block_size();
    float* out = logits;
    for (const SeqInput& s : batch) {
      const int64_t n = int64_t(s.tokens.size());
      call.n_tokens += n;
      DM_CHECK(int64_t(s.blocks.size()) * bs >= s.n_past + n, "block table too short");
      for (int64_t i = 0; i < n; ++i) {
        const int64_t p = s.n_past + i;
        for (int l = 0; l < info_.n_layers; ++l) {
          float* slot = kv.slot(s.blocks[size_t(p / bs)], l, int(p % bs));
          slot[0] = float(s.tokens[size_t(i)]);
          slot[1] = float(p);
          slot[2] = float(l * 1000 + 1);
        }
      }
      for (int64_t i = 0; i < n; ++i) {
        const bool want = s.logits == Logits::All || (s.logits == Logits::Last && i == n - 1);
        if (!want) continue;
        const int64_t p = s.n_past + i;
        uint64_t h = 1469598103934665603ull;
        for (int64_t q = 0; q <= p; ++q) {
          for (int l = 0; l < info_.n_layers; ++l) {
            const float* slot = kv.slot(s.blocks[size_t(q / bs)], l, int(q % bs));
            if (slot[1] != float(q) || slot[2] != float(l * 1000 + 1)) mismatches++;
            h = mix(h ^ (uint64_t(uint32_t(int32_t(slot[0]))) * 31 + uint64_t(int64_t(slot[1])) * 131071 +
                         uint64_t(int64_t(slot[2]))));
          }
        }
        row(h, out);
        out += info_.vocab_size;
      }
    }
    calls.push_back(call);
  }

  // The logits after `tokens` (the row for the last one), computed without a cache.
  std::vector<float> reference_logits(std::span<const int32_t> tokens) const {
    uint64_t h = 1469598103934665603ull;
    for (size_t q = 0; q < tokens.size(); ++q)
      for (int l = 0; l < info_.n_layers; ++l)
        h = mix(h ^ (uint64_t(uint32_t(tokens[q])) * 31 + uint64_t(q) * 131071 + uint64_t(l * 1000 + 1)));
    std::vector<float> r(size_t(info_.vocab_size));
    row(h, r.data());
    return r;
  }

  std::vector<Call> calls;
  int64_t mismatches = 0;    // slots read back with the wrong position or layer tag
  int64_t throw_at_call = -1;  // forward() number that throws dm::Error (-1: never)

 private:
  static uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
  }
  // Logits in [-4, 4): a pseudo-random function of the context hash and the token id.
  void row(uint64_t h, float* out) const {
    for (int64_t v = 0; v < info_.vocab_size; ++v)
      out[v] = float(double(mix(h ^ (uint64_t(v) << 20)) >> 40) / double(1 << 24) * 8.0 - 4.0);
  }
  ModelInfo info_;
};

}  // namespace dm
