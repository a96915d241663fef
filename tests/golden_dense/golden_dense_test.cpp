// The Llama-style family against transformers' logits (tests/data/golden/{qwen2,llama3,qwen3,qwen3moe}_tiny):
// F32 and BF16 checkpoints, prefill / decode / mixed, main and long sequences; per-layer hidden states; batch
// invariance (sequences batched together = each alone, bit for bit).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>

#include "dense_test_util.h"
#include "loader/json_config.h"
#include "loader/weights.h"
#include "model/llama.h"

using namespace dm;
using namespace dm::test;

namespace {

const char* const kModels[] = {"qwen2_tiny", "llama3_tiny", "qwen3_tiny", "qwen3moe_tiny"};

// fp32 compute against an fp32 reference: the reference's own modes agree to 2e-6 (golden.json), so 1e-4
// leaves room only for summation order. None of these goldens has tied embeddings.
constexpr float kTol = 1e-4f;

struct Case {
  std::string model, weights, seq, mode;  // weights: "f32" | "bf16"
};

std::string case_name(const testing::TestParamInfo<Case>& i) {
  return i.param.model + "_" + i.param.weights + "_" + i.param.seq + "_" + i.param.mode;
}

std::vector<Case> all_cases() {
  std::vector<Case> c;
  for (const char* m : kModels)
    for (const char* seq : {"main", "long"}) {
      for (const char* mode : {"prefill", "decode", "mixed"}) c.push_back({m, "f32", seq, mode});
      for (const char* mode : {"prefill", "decode"}) c.push_back({m, "bf16", seq, mode});
    }
  return c;
}

class DenseGolden : public testing::TestWithParam<Case> {};

TEST_P(DenseGolden, LogitsMatchTransformers) {
  const Case& c = GetParam();
  const std::string dir = golden_dir(c.model);
  LoadOptions exact;  // f32 activations everywhere (fp32 compute), no bf16 rounding of prompt batches
  exact.bf16_activations = false;
  auto model = load_model(dir + "/hf_" + c.weights, exact);
  // Prefill runs on two threads (the parallel paths); token-by-token decode single-threaded, to stay fast on a
  // loaded machine where every fork-join can wait for a core.
  ThreadPool pool(2);
  ThreadPool* p = c.mode == "prefill" ? &pool : nullptr;
  const int64_t prefill_len = golden_json(c.model)["mixed_prefill_len"].get<int64_t>();
  std::vector<float> got = run_sequence(*model, golden_tokens(c.model, c.seq), c.mode, prefill_len, p);
  const std::string compute = c.weights == "f32" ? "fp32" : "fp32_bf16w";
  std::vector<float> want = read_f32(dir + "/logits/" + c.seq + "_" + compute + "_" + c.mode + ".f32");
  ASSERT_EQ(got.size(), want.size());
  const float err = max_abs_diff(got, want);
  RecordProperty("max_abs_err", std::to_string(err));
  if (getenv("DM_TEST_VERBOSE")) printf("%s max abs err %.3g\n", case_name({c, 0}).c_str(), err);
  EXPECT_LE(err, kTol);
}

INSTANTIATE_TEST_SUITE_P(All, DenseGolden, testing::ValuesIn(all_cases()), case_name);

// As loaded by default, prompt batches over BF16 weights round their activations to bf16 where the CPU has bf16
// dot products without AMX (LoadOptions::bf16_activations): prefill logits stay within bf16 rounding of the
// fp32-compute golden, and the top token the same but for near ties. Elsewhere the path is exact, and so is this.
TEST(DenseGolden, Bf16ActivationsStayNearTransformers) {
  ThreadPool pool(2);
  for (const char* m : kModels)
    for (const char* seq : {"main", "long"}) {
      auto model = load_model(golden_dir(m) + "/hf_bf16");
      const std::vector<int32_t> toks = golden_tokens(m, seq);
      std::vector<float> got = run_sequence(*model, toks, "prefill", 0, &pool);
      std::vector<float> want = read_f32(golden_dir(m) + "/logits/" + seq + "_fp32_bf16w_prefill.f32");
      ASSERT_EQ(got.size(), want.size());
      const int64_t V = model->info().vocab_size;
      // The top token agrees, or (near ties) ours is within the bound of the golden's best in the golden's logits.
      int same_top = 0;
      for (size_t p = 0; p < toks.size(); ++p) {
        auto a = got.begin() + long(p) * V, b = want.begin() + long(p) * V;
        const long ia = std::max_element(a, a + V) - a, ib = std::max_element(b, b + V) - b;
        same_top += ia == ib;
        EXPECT_GE(b[ia], b[ib] - 0.05f) << m << " " << seq << " position " << p;
      }
      const float err = max_abs_diff(got, want);
      std::printf("%-14s %-4s bf16 activations: max|err| %.2e, top-1 %d/%zu\n", m, seq, err, same_top, toks.size());
      EXPECT_LE(err, 0.05) << m << " " << seq;
      EXPECT_GE(same_top, int(toks.size()) * 9 / 10) << m << " " << seq;
    }
}

TEST(DenseGolden, HiddenStatesPerLayer) {
  for (const char* m : kModels) {
    SCOPED_TRACE(m);
    auto model = load_model(golden_dir(m) + "/hf_f32");
    std::vector<int32_t> toks = golden_tokens(m, "main");
    KvCache kv(model->info().n_layers, model->info().kv_width, kBlockSize, 4);
    std::vector<int32_t> blocks = {3, 0};
    std::vector<float> logits(size_t(model->info().vocab_size));
    SeqInput in{toks, 0, blocks, Logits::Last};
    ForwardTrace trace;
    model->forward(std::span<const SeqInput>(&in, 1), kv, logits.data(), nullptr, &trace);
    ASSERT_EQ(trace.hidden.size(), size_t(model->info().n_layers + 1));
    EXPECT_LE(max_abs_diff(trace.hidden[0], read_f32(golden_dir(m) + "/hidden/main_fp32_embed.f32")), 1e-6);
    for (int l = 0; l < model->info().n_layers; ++l)
      EXPECT_LE(max_abs_diff(trace.hidden[size_t(l + 1)],
                             read_f32(golden_dir(m) + "/hidden/main_fp32_layer" + std::to_string(l) + "_out.f32")),
                kTol)
          << "layer " << l;
  }
}

TEST(DenseGolden, MoeTraceRecordsRouting) {
  auto model = load_model(golden_dir("qwen3moe_tiny") + "/hf_f32");
  std::vector<int32_t> toks = golden_tokens("qwen3moe_tiny", "main");
  KvCache kv(model->info().n_layers, model->info().kv_width, kBlockSize, 2);
  std::vector<int32_t> blocks = {0, 1};
  std::vector<float> logits(size_t(model->info().vocab_size));
  SeqInput in{toks, 0, blocks, Logits::Last};
  ForwardTrace trace;
  model->forward(std::span<const SeqInput>(&in, 1), kv, logits.data(), nullptr, &trace);
  ASSERT_EQ(trace.experts.size(), 3u);
  for (int l = 0; l < 3; ++l) {
    ASSERT_EQ(trace.experts[size_t(l)].size(), toks.size());
    for (size_t t = 0; t < toks.size(); ++t) {
      const auto& e = trace.experts[size_t(l)][t];
      const auto& w = trace.weights[size_t(l)][t];
      ASSERT_EQ(e.size(), 2u);
      EXPECT_NE(e[0], e[1]);
      EXPECT_GE(w[0], w[1]);                 // best first
      EXPECT_NEAR(w[0] + w[1], 1.0f, 1e-6);  // norm_topk_prob: true
    }
  }
}

// Decode of one sequence with a KV head for every thread runs each KV head's projections, RoPE, cache write and
// attention as one work item (2 KV heads on 2 threads); with more threads than KV heads the projections run
// first over all threads and a KV head's query heads are split (3 threads). Both give the bits of one thread.
TEST(DenseGolden, DecodeIsThreadInvariant) {
  for (const char* m : {"qwen2_tiny", "qwen3_tiny", "llama3_tiny"}) {
    auto model = load_model(golden_dir(m) + "/hf_f32");
    const std::vector<int32_t> tokens = golden_tokens(m, "long");
    ThreadPool pool2(2), pool3(3);
    const std::vector<float> one = run_sequence(*model, tokens, "decode", 0, nullptr);
    EXPECT_EQ(max_abs_diff(run_sequence(*model, tokens, "decode", 0, &pool2), one), 0.0f) << m << ", 2 threads";
    EXPECT_EQ(max_abs_diff(run_sequence(*model, tokens, "decode", 0, &pool3), one), 0.0f) << m << ", 3 threads";
  }
}

// Two sequences in one forward (prefill of both, then a decode step of both) give bit-identical logits to each
// run alone, with different block placements.
TEST(DenseGolden, BatchInvariance) {
  for (const char* m : {"qwen2_tiny", "qwen3moe_tiny"}) {
    SCOPED_TRACE(m);
    auto model = load_model(golden_dir(m) + "/hf_f32");
    const int64_t V = model->info().vocab_size;
    std::vector<int32_t> a = golden_tokens(m, "main");
    std::vector<int32_t> b = golden_tokens(m, "long");
    b.resize(37);
    ThreadPool pool(2);
    // Alone: prefill of all but the last token, then decode of the last one.
    auto alone = [&](const std::vector<int32_t>& s) {
      KvCache kv(model->info().n_layers, model->info().kv_width, kBlockSize, 8);
      std::vector<int32_t> blocks = {5, 2, 7};
      std::vector<float> out(size_t(int64_t(s.size()) * V));
      SeqInput p{std::span<const int32_t>(s.data(), s.size() - 1), 0, blocks, Logits::All};
      model->forward(std::span<const SeqInput>(&p, 1), kv, out.data(), &pool);
      SeqInput d{std::span<const int32_t>(s.data() + s.size() - 1, 1), int64_t(s.size() - 1), blocks, Logits::Last};
      model->forward(std::span<const SeqInput>(&d, 1), kv, out.data() + (s.size() - 1) * size_t(V), &pool);
      return out;
    };
    std::vector<float> ra = alone(a), rb = alone(b);

    KvCache kv(model->info().n_layers, model->info().kv_width, kBlockSize, 8);
    std::vector<int32_t> ba = {1, 4}, bb = {6, 0, 3};
    std::vector<float> out(size_t(int64_t(a.size() + b.size()) * V));
    SeqInput p[2] = {{std::span<const int32_t>(a.data(), a.size() - 1), 0, ba, Logits::All},
                     {std::span<const int32_t>(b.data(), b.size() - 1), 0, bb, Logits::All}};
    model->forward(p, kv, out.data(), &pool);
    std::vector<float> last(size_t(2 * V));
    SeqInput d[2] = {{std::span<const int32_t>(a.data() + a.size() - 1, 1), int64_t(a.size() - 1), ba, Logits::Last},
                     {std::span<const int32_t>(b.data() + b.size() - 1, 1), int64_t(b.size() - 1), bb, Logits::Last}};
    model->forward(d, kv, last.data(), &pool);

    const size_t na = (a.size() - 1) * size_t(V), nb = (b.size() - 1) * size_t(V);
    EXPECT_TRUE(std::equal(out.begin(), out.begin() + long(na), ra.begin()));
    EXPECT_TRUE(std::equal(out.begin() + long(na), out.begin() + long(na + nb), rb.begin()));
    EXPECT_TRUE(std::equal(last.begin(), last.begin() + V, ra.begin() + long(na)));
    EXPECT_TRUE(std::equal(last.begin() + V, last.end(), rb.begin() + long(nb)));
    // And batching agrees with the golden, so the comparison above is not between two wrong answers.
    std::vector<float> want = read_f32(golden_dir(m) + "/logits/main_fp32_prefill.f32");
    EXPECT_LE(max_abs_diff(ra, want), kTol);
  }
}

// Logits::None writes nothing and Logits::Last in a batch gives one row per sequence, in batch order.
TEST(DenseGolden, LogitsRowsFollowBatchOrder) {
  auto model = load_model(golden_dir("qwen3_tiny") + "/hf_f32");
  const int64_t V = model->info().vocab_size;
  std::vector<int32_t> a = golden_tokens("qwen3_tiny", "main");
  std::vector<float> want = read_f32(golden_dir("qwen3_tiny") + "/logits/main_fp32_prefill.f32");
  KvCache kv(model->info().n_layers, model->info().kv_width, kBlockSize, 6);
  std::vector<int32_t> b1 = {0, 1}, b2 = {2, 3}, b3 = {4, 5};
  std::vector<float> out(size_t(2 * V) + 1, -7.0f);
  SeqInput s[3] = {
      {a, 0, b1, Logits::Last}, {a, 0, b2, Logits::None}, {std::span<const int32_t>(a.data(), 5), 0, b3, Logits::Last}};
  model->forward(s, kv, out.data(), nullptr);
  std::vector<float> r0(out.begin(), out.begin() + V), r1(out.begin() + V, out.begin() + 2 * V);
  EXPECT_LE(max_abs_diff(r0, std::vector<float>(want.end() - V, want.end())), kTol);
  EXPECT_LE(max_abs_diff(r1, std::vector<float>(want.begin() + 4 * V, want.begin() + 5 * V)), kTol);
  EXPECT_EQ(out.back(), -7.0f);
}

}  // namespace
