// Token sampling: penalties, logit_bias, greedy or temperature / top_k / top_p / min_p, raw logprobs.
// Filter semantics follow Hugging Face transformers' logits warpers (TopK, TopP keeping the smallest set whose
// mass reaches top_p, MinP relative to the most likely token); penalties follow HF's repetition penalty (divide
// positive logits, multiply negative ones) and the OpenAI definition of presence and frequency penalties.
#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <numeric>

#include "core/error.h"
#include "loader/json_config.h"

namespace dm {

GenerationConfig load_generation_config(const std::string& path) {
  GenerationConfig g;
  if (!std::filesystem::exists(path)) return g;
  JsonConfig c = JsonConfig::load(path);
  if (c.has("do_sample")) g.do_sample = c.get_bool("do_sample", false);
  if (c.has("temperature")) g.temperature = float(c.get_double("temperature"));
  if (c.has("top_p")) g.top_p = float(c.get_double("top_p"));
  if (c.has("top_k")) g.top_k = int(c.get_int("top_k"));
  if (c.has("repetition_penalty")) g.repetition_penalty = float(c.get_double("repetition_penalty"));
  if (c.has("bos_token_id")) g.bos_token_id = int32_t(c.get_int("bos_token_id"));
  if (c.has("eos_token_id")) {
    const nlohmann::json& e = c.json()["eos_token_id"];
    if (e.is_number_integer()) {
      g.eos_token_ids.push_back(e.get<int32_t>());
    } else if (e.is_array()) {
      for (const auto& v : e) {
        if (!v.is_number_integer()) fail(path, ": field 'eos_token_id' must be an integer or a list of integers");
        g.eos_token_ids.push_back(v.get<int32_t>());
      }
    } else {
      fail(path, ": field 'eos_token_id' must be an integer or a list of integers");
    }
  }
  return g;
}

SamplingParams default_sampling(const GenerationConfig& gen) {
  SamplingParams p;
  if (gen.do_sample.has_value() && !*gen.do_sample) {
    p.temperature = 0.0f;
    return p;
  }
  if (gen.temperature) p.temperature = *gen.temperature;
  if (gen.top_p) p.top_p = *gen.top_p;
  if (gen.top_k) p.top_k = *gen.top_k;
  if (gen.repetition_penalty) p.repetition_penalty = *gen.repetition_penalty;
  return p;
}

std::string validate(const SamplingParams& p, int64_t vocab_size) {
  auto finite = [](float v) { return std::isfinite(v); };
  if (!finite(p.temperature) || p.temperature < 0 || p.temperature > 100)
    return "temperature must be between 0 and 100";
  if (p.top_k < 0) return "top_k must be >= 0";
  if (!finite(p.top_p) || p.top_p <= 0 || p.top_p > 1) return "top_p must be in (0, 1]";
  if (!finite(p.min_p) || p.min_p < 0 || p.min_p > 1) return "min_p must be in [0, 1]";
  if (!finite(p.repetition_penalty) || p.repetition_penalty <= 0 || p.repetition_penalty > 100)
    return "repetition_penalty must be in (0, 100]";
  if (!finite(p.presence_penalty) || std::fabs(p.presence_penalty) > 2)
    return "presence_penalty must be between -2 and 2";
  if (!finite(p.frequency_penalty) || std::fabs(p.frequency_penalty) > 2)
    return "frequency_penalty must be between -2 and 2";
  for (const auto& [tok, bias] : p.logit_bias) {
    if (tok < 0 || tok >= vocab_size) return cat("logit_bias token ", tok, " is outside the vocabulary");
    if (!finite(bias) || std::fabs(bias) > 100) return "logit_bias values must be between -100 and 100";
  }
  if (p.top_logprobs < 0 || p.top_logprobs > 20) return "top_logprobs must be between 0 and 20";
  return "";
}

void TokenCounts::see(int32_t token) {
  if (token < 0) return;
  if (size_t(token) >= seen_flag_.size()) seen_flag_.resize(size_t(token) + 1, 0);
  if (!seen_flag_[token]) {
    seen_flag_[token] = 1;
    seen_.push_back(token);
  }
}

void TokenCounts::add_prompt(std::span<const int32_t> tokens) {
  for (int32_t t : tokens) see(t);
}

void TokenCounts::add_output(int32_t token) {
  if (token < 0) return;
  see(token);
  if (size_t(token) >= output_index_.size()) output_index_.resize(size_t(token) + 1, 0);
  int32_t& idx = output_index_[token];
  if (idx == 0) {
    output_.push_back({token, 0});
    idx = int32_t(output_.size());
  }
  output_[idx - 1].second++;
}

void TokenCounts::clear() { *this = TokenCounts(); }

namespace {

// Penalties and bias applied to a copy of the logits.
void apply_penalties(std::span<const float> logits, const SamplingParams& p, const TokenCounts& counts,
                     std::vector<float>& out) {
  out.assign(logits.begin(), logits.end());
  const int64_t vocab = int64_t(out.size());
  if (p.repetition_penalty != 1.0f) {
    for (int32_t t : counts.seen()) {
      if (t >= vocab) continue;
      float& l = out[t];
      l = l > 0 ? l / p.repetition_penalty : l * p.repetition_penalty;
    }
  }
  if (p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f) {
    for (const auto& [t, n] : counts.output()) {
      if (t >= vocab) continue;
      out[t] -= p.presence_penalty + p.frequency_penalty * float(n);
    }
  }
  for (const auto& [t, bias] : p.logit_bias)
    if (t >= 0 && t < vocab) out[t] += bias;
}

int32_t argmax(std::span<const float> v) {
  int32_t best = 0;
  for (size_t i = 1; i < v.size(); ++i)
    if (v[i] > v[best]) best = int32_t(i);
  return best;
}

struct Candidate {
  float p;
  int32_t id;
};
bool more_likely(const Candidate& a, const Candidate& b) { return a.p > b.p || (a.p == b.p && a.id < b.id); }

// The filtered distribution as candidates with unnormalized probabilities (sorted most likely first when a
// filter needed the order). `x` holds the penalized logits; it is scaled by 1/temperature in place.
std::vector<Candidate> filtered_candidates(std::vector<float>& x, const SamplingParams& p) {
  const int64_t vocab = int64_t(x.size());
  const float inv_t = 1.0f / p.temperature;
  float mx = -std::numeric_limits<float>::infinity();
  for (float& l : x) {
    l *= inv_t;
    mx = std::max(mx, l);
  }
  std::vector<Candidate> c(static_cast<size_t>(vocab));
  for (int64_t i = 0; i < vocab; ++i) c[i] = {std::exp(x[i] - mx), int32_t(i)};
  bool sorted = false;
  if (p.top_k > 0 && p.top_k < vocab) {
    std::nth_element(c.begin(), c.begin() + p.top_k, c.end(), more_likely);
    c.resize(size_t(p.top_k));
    std::sort(c.begin(), c.end(), more_likely);
    sorted = true;
  }
  if (p.top_p < 1.0f) {
    double total = 0;
    for (const Candidate& k : c) total += k.p;
    const double target = double(p.top_p) * total;
    if (!sorted) {
      // Most of the mass usually sits in a few hundred tokens: sort those first, everything only if needed.
      size_t m = std::min<size_t>(c.size(), 256);
      std::nth_element(c.begin(), c.begin() + (m - 1), c.end(), more_likely);
      std::sort(c.begin(), c.begin() + m, more_likely);
      double head = 0;
      for (size_t i = 0; i < m; ++i) head += c[i].p;
      if (head < target) std::sort(c.begin(), c.end(), more_likely);
      sorted = true;
    }
    double cum = 0;
    size_t keep = 0;
    while (keep < c.size() && (keep == 0 || cum < target)) cum += c[keep++].p;
    c.resize(keep);
  }
  if (p.min_p > 0.0f) {
    float pmax = 0;
    for (const Candidate& k : c) pmax = std::max(pmax, k.p);
    const float threshold = p.min_p * pmax;
    std::erase_if(c, [&](const Candidate& k) { return k.p < threshold; });
  }
  return c;
}

}  // namespace

std::vector<float> sampling_distribution(std::span<const float> logits, const SamplingParams& p,
                                         const TokenCounts& counts) {
  std::vector<float> x;
  apply_penalties(logits, p, counts, x);
  std::vector<float> dist(x.size(), 0.0f);
  if (p.greedy()) {
    dist[argmax(x)] = 1.0f;
    return dist;
  }
  std::vector<Candidate> c = filtered_candidates(x, p);
  double total = 0;
  for (const Candidate& k : c) total += k.p;
  for (const Candidate& k : c) dist[k.id] = float(k.p / total);
  return dist;
}

SampleResult sample(std::span<const float> logits, const SamplingParams& p, const TokenCounts& counts,
                    SamplerRng& rng, std::vector<float>& scratch) {
  DM_CHECK(!logits.empty(), "sampling from an empty row");
  SampleResult r;
  apply_penalties(logits, p, counts, scratch);
  if (p.greedy()) {
    r.token = argmax(scratch);
  } else {
    std::vector<Candidate> c = filtered_candidates(scratch, p);
    double total = 0;
    for (const Candidate& k : c) total += k.p;
    const double u = rng.uniform() * total;
    double cum = 0;
    r.token = c.back().id;  // guards against rounding leaving u just above the last partial sum
    for (const Candidate& k : c) {
      cum += k.p;
      if (u < cum) {
        r.token = k.id;
        break;
      }
    }
  }
  if (p.logprobs || p.top_logprobs > 0) {
    float mx = -std::numeric_limits<float>::infinity();
    for (float l : logits) mx = std::max(mx, l);
    double sum = 0;
    for (float l : logits) sum += std::exp(double(l) - mx);
    const float lse = mx + float(std::log(sum));
    r.logprob = logits[r.token] - lse;
    const size_t n = std::min<size_t>(size_t(p.top_logprobs), logits.size());
    if (n > 0) {
      std::vector<int32_t> ids(logits.size());
      std::iota(ids.begin(), ids.end(), 0);
      auto better = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
      std::partial_sort(ids.begin(), ids.begin() + n, ids.end(), better);
      for (size_t i = 0; i < n; ++i) r.top.push_back({ids[i], logits[ids[i]] - lse});
    }
  }
  return r;
}

}  // namespace dm
