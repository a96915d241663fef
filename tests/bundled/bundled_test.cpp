// The bundled demo model (models/deepmoe-kjv-tiny) against the references tools/train_tiny.py computed in PyTorch
// from the same BF16 weights widened to fp32 (tests/data/bundled/reference.json, README.md there): prefill and
// decode logits (1e-4), tokenizer ids, the chat prompt, greedy generation through the engine, held-out perplexity.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "chat/chat_template.h"
#include "core/mapped_file.h"
#include "engine/engine.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace dm {
namespace {

const std::string kModel = DM_BUNDLED_MODEL;
const std::string kRefs = DM_TEST_DATA "/bundled";

const nlohmann::json& refs() {
  static const nlohmann::json j = nlohmann::json::parse(read_file(kRefs + "/reference.json"));
  return j;
}

// The references are fp32 compute: f32 activations everywhere. fast_model(): as `deepmoe` loads it, prompt
// batches rounding activations to bf16 where the CPU has bf16 dot products without AMX.
Model& model() {
  static std::unique_ptr<Model> m = [] {
    LoadOptions o;
    o.bf16_activations = false;
    return load_model(kModel, o);
  }();
  return *m;
}
Model& fast_model() {
  static std::unique_ptr<Model> m = load_model(kModel);
  return *m;
}

const Tokenizer& tokenizer() {
  static const Tokenizer t = Tokenizer::from_dir(kModel);
  return t;
}

// Logits of `tokens` through a fresh paged cache: all at once (n_prefill = n) or n_prefill then one by one.
std::vector<float> run_logits(const std::vector<int32_t>& tokens, size_t n_prefill, Model& m = model()) {
  const int64_t V = m.info().vocab_size;
  const int block_size = 16;
  KvCache kv(m.info().n_layers, m.info().kv_width, block_size, int64_t(tokens.size() + block_size - 1) / block_size);
  std::vector<int32_t> blocks(size_t(kv.n_blocks()));
  for (size_t b = 0; b < blocks.size(); ++b) blocks[b] = int32_t(blocks.size() - 1 - b);
  std::vector<float> logits(tokens.size() * size_t(V));
  auto run = [&](size_t begin, size_t end) {
    SeqInput s;
    s.tokens = std::span<const int32_t>(tokens.data() + begin, end - begin);
    s.n_past = int64_t(begin);
    s.blocks = blocks;
    s.logits = Logits::All;
    m.forward(std::span<const SeqInput>(&s, 1), kv, logits.data() + begin * size_t(V), nullptr);
  };
  run(0, n_prefill);
  for (size_t t = n_prefill; t < tokens.size(); ++t) run(t, t + 1);
  return logits;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, double(std::fabs(a[i] - b[i])));
  return d;
}

std::vector<float> reference_logits() {
  std::string b = read_file(kRefs + "/" + refs()["fixed"]["logits_file"].get<std::string>());
  std::vector<float> v(b.size() / 4);
  std::memcpy(v.data(), b.data(), v.size() * 4);
  return v;
}

// Greedy generation through the engine, as `deepmoe run` does it (EOS ends the request).
std::vector<int32_t> engine_greedy(const std::vector<int32_t>& prompt, int64_t max_tokens) {
  Engine e(model(), nullptr, EngineConfig{});
  std::vector<int32_t> out;
  Request r;
  r.prompt = prompt;
  r.sampling.temperature = 0;
  r.max_tokens = max_tokens;
  r.on_event = [&](const StreamEvent& ev) {
    if (ev.token >= 0) out.push_back(ev.token);  // includes a final EOS, as the reference does
    return true;
  };
  EXPECT_TRUE(e.submit(std::move(r)).ok());
  e.run_until_idle();
  return out;
}

TEST(Bundled, ModelIsTheDeepSeekV3Family) {
  const ModelInfo& info = model().info();
  EXPECT_EQ(info.model_type, "deepseek_v3");
  EXPECT_EQ(info.vocab_size, 4096);
  EXPECT_EQ(info.bos_token_id, 0);
  // note: training.json counts the optimizer's parameters; the router biases (3 MoE layers x 8 experts) are
  // buffers there but parameters in transformers' DeepseekV3 and in deepmoe's count.
  auto training = nlohmann::json::parse(read_file(kModel + "/training.json"));
  EXPECT_EQ(info.n_params, training["parameters"].get<int64_t>() + 3 * 8);
}

TEST(Bundled, PrefillLogitsMatchPyTorch) {
  auto tokens = refs()["fixed"]["tokens"].get<std::vector<int32_t>>();
  auto ref = reference_logits();
  ASSERT_EQ(ref.size(), tokens.size() * size_t(model().info().vocab_size));
  const double err = max_abs_diff(run_logits(tokens, tokens.size()), ref);
  std::printf("prefill logits: max abs error %.3g over %zu tokens\n", err, tokens.size());
  EXPECT_LE(err, 1e-4);
}

TEST(Bundled, DecodeLogitsMatchPyTorch) {
  auto tokens = refs()["fixed"]["tokens"].get<std::vector<int32_t>>();
  EXPECT_LE(max_abs_diff(run_logits(tokens, 1), reference_logits()), 1e-4);  // 1 prefill token, then decode
  EXPECT_LE(max_abs_diff(run_logits(tokens, 7), reference_logits()), 1e-4);  // mixed
}

TEST(Bundled, TokenizerIdsMatchTheTrainingScript) {
  auto fixed = refs()["fixed"];
  EXPECT_EQ(tokenizer().encode(fixed["text"].get<std::string>(), true), fixed["tokens"].get<std::vector<int32_t>>());
  for (const auto& s : refs()["tokenizer"]) {
    const std::string text = s["text"].get<std::string>();
    SCOPED_TRACE(text);
    auto ids = tokenizer().encode(text, false);
    EXPECT_EQ(ids, s["ids"].get<std::vector<int32_t>>());
    EXPECT_EQ(tokenizer().encode(text, true), s["ids_with_bos"].get<std::vector<int32_t>>());
    EXPECT_EQ(tokenizer().decode(ids, false), s["decoded"].get<std::string>());
  }
  auto held = tokenizer().encode(read_file(kRefs + "/heldout.txt"), false);
  EXPECT_EQ(int64_t(held.size()), refs()["perplexity"]["n_file_tokens"].get<int64_t>());
}

TEST(Bundled, GreedyOutputMatchesTheTrainingScript) {
  const auto& g = refs()["greedy"];
  auto prompt = tokenizer().encode(g["prompt"].get<std::string>(), true);
  ASSERT_EQ(prompt, g["prompt_tokens"].get<std::vector<int32_t>>());
  auto out = engine_greedy(prompt, g["max_new_tokens"].get<int64_t>());
  EXPECT_EQ(out, g["tokens"].get<std::vector<int32_t>>());
  EXPECT_EQ(tokenizer().decode(out, false), g["text"].get<std::string>());
}

TEST(Bundled, ChatPromptAndGreedyReplyMatchTheTrainingScript) {
  const auto& g = refs()["greedy_chat"];
  nlohmann::ordered_json req = {{"messages", nlohmann::ordered_json::parse(g["messages"].dump())},
                                {"add_generation_prompt", true}};
  const std::string prompt_text = chat::ChatTemplate::from_model_dir(kModel).render(chat::ChatRequest::from_json(req));
  EXPECT_EQ(prompt_text, g["prompt_text"].get<std::string>());
  auto prompt = tokenizer().encode(prompt_text, false);  // the template writes BOS itself
  ASSERT_EQ(prompt, g["prompt_tokens"].get<std::vector<int32_t>>());
  auto out = engine_greedy(prompt, g["max_new_tokens"].get<int64_t>());
  EXPECT_EQ(out, g["tokens"].get<std::vector<int32_t>>());
  EXPECT_EQ(tokenizer().decode(out, true), g["text"].get<std::string>());
}

// Mean negative log-likelihood of window w of heldout.txt and its reference, by the documented perplexity procedure
// (tests/data/bundled/README.md): windows of context-1 tokens, each run as [BOS] + window[:-1] from an empty
// cache, every window token scored.
std::pair<double, double> window_nll(size_t w, Model& m) {
  const auto& p = refs()["perplexity"];
  const size_t stride = p["stride"].get<size_t>();
  auto ids = tokenizer().encode(read_file(kRefs + "/heldout.txt"), false);
  std::vector<int32_t> window(ids.begin() + long(w * stride), ids.begin() + long((w + 1) * stride));
  std::vector<int32_t> input = {0};
  input.insert(input.end(), window.begin(), window.end() - 1);
  auto logits = run_logits(input, input.size(), m);
  const int64_t V = m.info().vocab_size;
  double nll = 0;
  for (size_t i = 0; i < window.size(); ++i) {
    const float* row = logits.data() + i * size_t(V);
    double mx = *std::max_element(row, row + V), sum = 0;
    for (int64_t v = 0; v < V; ++v) sum += std::exp(double(row[v]) - mx);
    nll -= double(row[window[i]]) - mx - std::log(sum);
  }
  return {nll / double(window.size()), p["window_nll"][w].get<double>() / double(window.size())};
}

// As `deepmoe` runs it (bf16 activations in prompt batches where that is the fast path), the held-out text's
// mean log-likelihood stays within 0.1% of the fp32 reference (0.002-0.014% here).
TEST(Bundled, HeldOutNllWithBf16ActivationsStaysNearReference) {
  for (size_t w = 0; w < 3; ++w) {
    const auto [nll, ref] = window_nll(w, fast_model());
    std::printf("window %zu, bf16 activations: mean nll %.6f, reference %.6f (%+.3f%%)\n", w, nll, ref,
                100 * (nll - ref) / ref);
    EXPECT_NEAR(nll, ref, 0.001 * ref) << "window " << w;
  }
}

// With f32 activations, the first windows score what the training script computed.
TEST(Bundled, HeldOutWindowNllMatchesTheTrainingScript) {
  ASSERT_GE(refs()["perplexity"]["window_nll"].size(), 3u);
  for (size_t w = 0; w < 3; ++w) {
    const auto [nll, ref] = window_nll(w, model());
    std::printf("window %zu: mean nll %.6f, reference %.6f\n", w, nll, ref);
    EXPECT_NEAR(nll, ref, 1e-4) << "window " << w;
  }
}

// `deepmoe perplexity` on the whole held-out file: within 1% of the training script's figure (issue target).
TEST(Bundled, PerplexityCommandMatchesTheTrainingScript) {
  const std::string cmd = std::string(DEEPMOE_BIN) + " perplexity --json --threads 2 --model " + kModel +
                          " --file " + kRefs + "/heldout.txt";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  ASSERT_EQ(pclose(p), 0) << cmd << "\n" << out;
  auto got = nlohmann::json::parse(out);
  const auto& ref = refs()["perplexity"];
  EXPECT_EQ(got["n_scored_tokens"].get<int64_t>(), ref["n_scored_tokens"].get<int64_t>());
  const double ppl = got["perplexity"].get<double>(), want = ref["perplexity"].get<double>();
  std::printf("deepmoe perplexity %.6f, reference %.6f\n", ppl, want);
  EXPECT_NEAR(ppl, want, 0.01 * want);
}

// `deepmoe run --raw` as a user types it, greedy: the text equals the training script's greedy continuation
// (the command ends its output with one newline).
TEST(Bundled, RunCommandGreedyTextMatchesTheTrainingScript) {
  const auto& g = refs()["greedy"];
  const std::string cmd = std::string(DEEPMOE_BIN) + " run --raw --temperature 0 --threads 2 --model " + kModel +
                          " --max-tokens " + std::to_string(g["max_new_tokens"].get<int>()) + " -p '" +
                          g["prompt"].get<std::string>() + "' 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  ASSERT_EQ(pclose(p), 0) << cmd << "\n" << out;
  EXPECT_EQ(out, g["text"].get<std::string>() + "\n");
}

}  // namespace
}  // namespace dm
