// Token sampling from one row of logits: penalties (repetition as in HF transformers / CTRL, presence and
// frequency as in the OpenAI API), logit_bias, then greedy or temperature -> top_k -> top_p -> min_p -> draw.
// Logprobs are those of the model's raw distribution (log_softmax of the logits before any penalty,
// bias or temperature), which is what OpenAI-style APIs report.
// Randomness comes from a generator owned by each sequence, so a seed gives the same tokens in any batch.
#pragma once
#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace dm {

struct SamplingParams {
  float temperature = 1.0f;  // <= 0: greedy (argmax, lowest id on ties)
  int top_k = 0;             // 0: off
  float top_p = 1.0f;        // 1: off
  float min_p = 0.0f;        // 0: off; keep tokens with p >= min_p * p_max
  float repetition_penalty = 1.0f;  // 1: off; over prompt and generated tokens
  float presence_penalty = 0.0f;    // over generated tokens
  float frequency_penalty = 0.0f;   // over generated tokens
  std::vector<std::pair<int32_t, float>> logit_bias;  // (token id, added to its logit)
  std::optional<uint64_t> seed;  // none: drawn from std::random_device at submission
  bool logprobs = false;         // report the chosen token's logprob
  int top_logprobs = 0;          // and the N most likely alternatives (0..20)

  bool greedy() const { return temperature <= 0.0f; }
};

// Model's recommended sampling and stop ids, from generation_config.json (all optional).
struct GenerationConfig {
  std::optional<bool> do_sample;
  std::optional<float> temperature, top_p, repetition_penalty;
  std::optional<int> top_k;
  std::vector<int32_t> eos_token_ids;
  std::optional<int32_t> bos_token_id;
};

// Reads `path` (a generation_config.json). A missing file gives an empty config; malformed JSON or a field of
// the wrong type throws dm::Error naming the file and field.
GenerationConfig load_generation_config(const std::string& path);

// The sampling a model recommends when the user gives none: do_sample=false -> greedy; else its temperature,
// top_p, top_k; fields it doesn't set keep SamplingParams' defaults.
SamplingParams default_sampling(const GenerationConfig& gen);

// Checks ranges; returns "" when valid, else a message naming the field (for an API error, never thrown).
std::string validate(const SamplingParams& p, int64_t vocab_size);

struct TokenLogprob {
  int32_t token = -1;
  float logprob = 0.0f;
};

struct SampleResult {
  int32_t token = -1;
  float logprob = 0.0f;             // set when params.logprobs
  std::vector<TokenLogprob> top;    // params.top_logprobs entries, most likely first
};

// The random source of one sequence: a 64-bit Mersenne twister seeded once.
class SamplerRng {
 public:
  explicit SamplerRng(uint64_t seed) : gen_(seed) {}
  double uniform() { return double(gen_() >> 11) * 0x1.0p-53; }  // [0, 1)
 private:
  std::mt19937_64 gen_;
};

// Penalty state of one sequence: how often each token occurred in the prompt and in the output.
class TokenCounts {
 public:
  void add_prompt(std::span<const int32_t> tokens);
  void add_output(int32_t token);
  void clear();
  const std::vector<std::pair<int32_t, int32_t>>& output() const { return output_; }  // (token, count)
  const std::vector<int32_t>& seen() const { return seen_; }  // distinct tokens of prompt + output

 private:
  void see(int32_t token);
  std::vector<int32_t> seen_;
  std::vector<std::pair<int32_t, int32_t>> output_;
  std::vector<int32_t> output_index_;  // token -> index in output_ + 1 (0: absent), grown on demand
  std::vector<uint8_t> seen_flag_;     // token -> seen in prompt or output
};

// Samples one token from logits[vocab]. `scratch` is reused between calls to avoid allocations.
// The logits are not modified.
SampleResult sample(std::span<const float> logits, const SamplingParams& p, const TokenCounts& counts,
                    SamplerRng& rng, std::vector<float>& scratch);

// The processed distribution that sample() draws from (penalties, bias, temperature, filters), as
// probabilities over the whole vocabulary (zeros for filtered tokens). For tests and debugging.
std::vector<float> sampling_distribution(std::span<const float> logits, const SamplingParams& p,
                                         const TokenCounts& counts);

}  // namespace dm
