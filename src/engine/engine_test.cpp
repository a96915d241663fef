// Engine logic against a fake model whose logits hash every KV slot it reads: greedy and sampled output equal a
// cache-free oracle, chunked prefill, decodes flowing during a long prefill, batch invariance, waiting and
// preemption when out of blocks, rejection, cancellation freeing blocks, prefix hits, threads, model errors.
#include "engine/engine.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <numeric>
#include <thread>

#include "engine/fake_model.h"

namespace dm {
namespace {

struct Collector {
  std::vector<int32_t> tokens;
  std::vector<StreamEvent> events;
  FinishReason finish = FinishReason::None;
  RequestUsage usage;
  int finals = 0;
  int stop_after = -1;  // return false after this many tokens
  std::mutex mu;
  std::condition_variable cv;

  StreamCallback cb() {
    return [this](const StreamEvent& e) {
      std::lock_guard lk(mu);
      events.push_back(e);
      if (e.token >= 0) tokens.push_back(e.token);
      if (e.finish != FinishReason::None) {
        finish = e.finish;
        usage = e.usage;
        finals++;
        cv.notify_all();
      }
      return stop_after < 0 || int(tokens.size()) < stop_after;
    };
  }
  void wait() {
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return finals > 0; });
  }
};

std::vector<int32_t> prompt_of(int n, int salt, int64_t vocab = 64) {
  std::vector<int32_t> p(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) p[size_t(i)] = int32_t((i * 7 + salt * 13 + 3) % vocab);
  return p;
}

// The oracle: the same sampling over FakeModel::reference_logits, one token at a time, no KV cache.
std::vector<int32_t> reference(const FakeModel& m, std::vector<int32_t> tokens, int n, const SamplingParams& p) {
  SamplerRng rng(p.seed.value_or(0));
  TokenCounts counts;
  counts.add_prompt(tokens);
  std::vector<float> scratch;
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    std::vector<float> l = m.reference_logits(tokens);
    int32_t t = sample(l, p, counts, rng, scratch).token;
    counts.add_output(t);
    tokens.push_back(t);
    out.push_back(t);
  }
  return out;
}

SamplingParams greedy() {
  SamplingParams p;
  p.temperature = 0;
  return p;
}
SamplingParams seeded(uint64_t seed) {
  SamplingParams p;
  p.temperature = 0.9f;
  p.top_k = 20;
  p.seed = seed;
  return p;
}

Request request(std::vector<int32_t> prompt, int max_tokens, SamplingParams sp, Collector& c) {
  Request r;
  r.prompt = std::move(prompt);
  r.max_tokens = max_tokens;
  r.sampling = sp;
  r.on_event = c.cb();
  return r;
}

EngineConfig small_config(int block_size = 4, int64_t kv_tokens = 1024) {
  EngineConfig cfg;
  cfg.block_size = block_size;
  cfg.kv_cache_tokens = kv_tokens;
  cfg.max_batch_tokens = 64;
  return cfg;
}

TEST(Engine, GreedyMatchesOracle) {
  FakeModel m;
  Engine e(m, nullptr, small_config());
  Collector c;
  auto prompt = prompt_of(21, 1);
  ASSERT_TRUE(e.submit(request(prompt, 12, greedy(), c)).ok());
  e.run_until_idle();
  EXPECT_EQ(c.tokens, reference(m, prompt, 12, greedy()));
  EXPECT_EQ(c.finish, FinishReason::Length);
  EXPECT_EQ(c.finals, 1);
  EXPECT_EQ(c.usage.prompt_tokens, 21);
  EXPECT_EQ(c.usage.completion_tokens, 12);
  EXPECT_EQ(m.mismatches, 0);
  EXPECT_EQ(e.blocks().n_used(), 0);
}

TEST(Engine, SeededSamplingMatchesOracleAndRepeats) {
  FakeModel m;
  auto prompt = prompt_of(9, 2);
  auto run = [&](uint64_t seed) {
    Engine e(m, nullptr, small_config());
    Collector c;
    EXPECT_TRUE(e.submit(request(prompt, 16, seeded(seed), c)).ok());
    e.run_until_idle();
    return c.tokens;
  };
  std::vector<int32_t> a = run(5);
  EXPECT_EQ(a, reference(m, prompt, 16, seeded(5)));
  EXPECT_EQ(a, run(5));
  EXPECT_NE(a, run(6));
}

TEST(Engine, ChunkedPrefill) {
  FakeModel m;
  EngineConfig cfg = small_config();
  cfg.max_batch_tokens = 16;
  Engine e(m, nullptr, cfg);
  Collector c;
  auto prompt = prompt_of(50, 3);
  ASSERT_TRUE(e.submit(request(prompt, 3, greedy(), c)).ok());
  e.run_until_idle();
  ASSERT_GE(m.calls.size(), 4u);
  EXPECT_EQ(m.calls[0].n_tokens, 16);
  EXPECT_EQ(m.calls[1].n_tokens, 16);
  EXPECT_EQ(m.calls[2].n_tokens, 16);
  EXPECT_EQ(m.calls[3].n_tokens, 2);
  EXPECT_EQ(c.tokens, reference(m, prompt, 3, greedy()));
}

TEST(Engine, DecodesKeepFlowingDuringALongPrefill) {
  FakeModel m;
  EngineConfig cfg = small_config();
  cfg.max_batch_tokens = 16;
  Engine e(m, nullptr, cfg);
  Collector a, b;
  auto pa = prompt_of(5, 4), pb = prompt_of(100, 5);
  ASSERT_TRUE(e.submit(request(pa, 30, greedy(), a)).ok());
  for (int i = 0; i < 3; ++i) e.step();
  const size_t first = m.calls.size();
  ASSERT_TRUE(e.submit(request(pb, 4, greedy(), b)).ok());
  for (int i = 0; i < 6; ++i) e.step();  // 100 prompt tokens at 15 per step take 7 steps
  for (size_t i = first; i < m.calls.size(); ++i) {
    EXPECT_EQ(m.calls[i].n_seqs, 2) << "call " << i;
    EXPECT_EQ(m.calls[i].n_tokens, 16) << "call " << i;
  }
  e.run_until_idle();
  EXPECT_EQ(a.tokens, reference(m, pa, 30, greedy()));
  EXPECT_EQ(b.tokens, reference(m, pb, 4, greedy()));
}

TEST(Engine, BatchInvariance) {
  FakeModel m;
  std::vector<std::vector<int32_t>> prompts = {prompt_of(7, 1), prompt_of(30, 2), prompt_of(3, 3), prompt_of(18, 4)};
  std::vector<std::vector<int32_t>> alone;
  for (size_t i = 0; i < prompts.size(); ++i) {
    Engine e(m, nullptr, small_config());
    Collector c;
    ASSERT_TRUE(e.submit(request(prompts[i], 20, seeded(100 + i), c)).ok());
    e.run_until_idle();
    alone.push_back(c.tokens);
  }
  {  // all four in the same steps
    Engine e(m, nullptr, small_config());
    std::vector<Collector> cs(prompts.size());
    for (size_t i = 0; i < prompts.size(); ++i) ASSERT_TRUE(e.submit(request(prompts[i], 20, seeded(100 + i), cs[i])).ok());
    e.step();
    EXPECT_EQ(m.calls.back().n_seqs, 4);
    e.run_until_idle();
    for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(cs[i].tokens, alone[i]) << "request " << i;
  }
  {  // one joins mid-way: nobody changes
    Engine e(m, nullptr, small_config());
    std::vector<Collector> cs(2);
    ASSERT_TRUE(e.submit(request(prompts[0], 20, seeded(100), cs[0])).ok());
    for (int i = 0; i < 6; ++i) e.step();
    ASSERT_TRUE(e.submit(request(prompts[1], 20, seeded(101), cs[1])).ok());
    e.run_until_idle();
    EXPECT_EQ(cs[0].tokens, alone[0]);
    EXPECT_EQ(cs[1].tokens, alone[1]);
  }
  EXPECT_EQ(m.mismatches, 0);
}

TEST(Engine, WaitsWhenOutOfBlocks) {
  FakeModel m;
  Engine e(m, nullptr, small_config(16, 64));  // 4 blocks
  Collector a, b;
  auto pa = prompt_of(40, 1), pb = prompt_of(40, 2);
  ASSERT_TRUE(e.submit(request(pa, 20, greedy(), a)).ok());
  ASSERT_TRUE(e.submit(request(pb, 20, greedy(), b)).ok());
  e.step();
  EXPECT_EQ(e.metrics().n_running, 1);
  EXPECT_EQ(e.metrics().n_waiting, 1);
  e.run_until_idle();
  EXPECT_EQ(a.tokens, reference(m, pa, 20, greedy()));
  EXPECT_EQ(b.tokens, reference(m, pb, 20, greedy()));
  EXPECT_EQ(e.metrics().preemptions, 0u);
}

TEST(Engine, PreemptsLatestAndRecomputes) {
  FakeModel m;
  EngineConfig cfg = small_config(8, 32);  // 4 blocks of 8
  Engine e(m, nullptr, cfg);
  Collector a, b;
  auto pa = prompt_of(6, 1), pb = prompt_of(6, 2);
  ASSERT_TRUE(e.submit(request(pa, 20, seeded(1), a)).ok());
  ASSERT_TRUE(e.submit(request(pb, 20, greedy(), b)).ok());
  e.step();
  EXPECT_EQ(e.metrics().n_running, 2);
  e.run_until_idle();
  EXPECT_GT(e.metrics().preemptions, 0u);
  EXPECT_EQ(a.tokens, reference(m, pa, 20, seeded(1)));
  EXPECT_EQ(b.tokens, reference(m, pb, 20, greedy()));
  EXPECT_EQ(a.finals + b.finals, 2);
  EXPECT_EQ(e.blocks().n_used(), 0);
  EXPECT_EQ(m.mismatches, 0);
}

TEST(Engine, RejectsWhatCanNeverFit) {
  FakeModel m(64, 100);
  EngineConfig cfg = small_config(16, 64);
  cfg.max_waiting = 2;
  Engine e(m, nullptr, cfg);
  Collector c;
  SubmitResult r = e.submit(request(prompt_of(40, 1), 30, greedy(), c));
  EXPECT_EQ(r.reject, RejectReason::TooLong);
  EXPECT_NE(r.message.find("max_tokens"), std::string::npos) << r.message;
  EXPECT_EQ(e.submit(request(prompt_of(64, 1), 0, greedy(), c)).reject, RejectReason::TooLong);
  EXPECT_EQ(e.submit(request({}, 4, greedy(), c)).reject, RejectReason::InvalidRequest);
  EXPECT_EQ(e.submit(request({1, 64}, 4, greedy(), c)).reject, RejectReason::InvalidRequest);
  EXPECT_EQ(e.submit(request({1, -1}, 4, greedy(), c)).reject, RejectReason::InvalidRequest);
  SamplingParams bad;
  bad.top_p = 2;
  r = e.submit(request({1}, 4, bad, c));
  EXPECT_EQ(r.reject, RejectReason::InvalidRequest);
  EXPECT_NE(r.message.find("top_p"), std::string::npos);
  Request no_cb;
  no_cb.prompt = {1};
  EXPECT_EQ(e.submit(no_cb).reject, RejectReason::InvalidRequest);
  EXPECT_TRUE(e.submit(request({1}, 4, greedy(), c)).ok());
  EXPECT_TRUE(e.submit(request({2}, 4, greedy(), c)).ok());
  EXPECT_EQ(e.submit(request({3}, 4, greedy(), c)).reject, RejectReason::QueueFull);
  EXPECT_EQ(e.metrics().requests_rejected, 8u);
  EXPECT_EQ(c.finals, 0);  // rejected requests get no events
  e.stop();                // the two queued ones are cancelled (before `c` goes away)
  EXPECT_EQ(c.finals, 2);
}

TEST(Engine, StopsAtTheContextLimit) {
  FakeModel m(64, 30);
  Engine e(m, nullptr, small_config());
  Collector c;
  ASSERT_TRUE(e.submit(request(prompt_of(20, 1), 0, greedy(), c)).ok());
  e.run_until_idle();
  EXPECT_EQ(c.tokens.size(), 10u);
  EXPECT_EQ(c.finish, FinishReason::Length);
}

TEST(Engine, CancellationFreesBlocks) {
  for (bool prefix : {false, true}) {
    FakeModel m;
    EngineConfig cfg = small_config();
    cfg.prefix_cache = prefix;
    cfg.max_seqs = 1;  // the second request waits
    Engine e(m, nullptr, cfg);
    const int64_t start = e.blocks().n_available();
    Collector a, b;
    SubmitResult ra = e.submit(request(prompt_of(30, 1), 50, greedy(), a));
    SubmitResult rb = e.submit(request(prompt_of(30, 2), 50, greedy(), b));
    for (int i = 0; i < 5; ++i) e.step();
    EXPECT_GT(e.blocks().n_used(), 0);
    e.cancel(ra.id);
    e.cancel(rb.id);
    e.cancel(12345);  // unknown: ignored
    e.step();
    EXPECT_EQ(a.finish, FinishReason::Cancelled);
    EXPECT_EQ(b.finish, FinishReason::Cancelled);
    EXPECT_EQ(a.finals, 1);
    EXPECT_EQ(b.finals, 1);
    EXPECT_EQ(b.tokens.size(), 0u);
    EXPECT_EQ(e.blocks().n_used(), 0) << "prefix " << prefix;
    EXPECT_EQ(e.blocks().n_available(), start) << "prefix " << prefix;
    EXPECT_FALSE(e.step());
    EXPECT_EQ(e.metrics().requests_cancelled, 2u);
  }
}

TEST(Engine, CallbackCanStop) {
  FakeModel m;
  Engine e(m, nullptr, small_config());
  Collector c;
  c.stop_after = 3;
  ASSERT_TRUE(e.submit(request(prompt_of(5, 1), 20, greedy(), c)).ok());
  e.run_until_idle();
  EXPECT_EQ(c.tokens.size(), 3u);
  EXPECT_EQ(c.events.size(), 4u);
  EXPECT_EQ(c.finish, FinishReason::Stop);
  EXPECT_EQ(c.usage.completion_tokens, 3);
  EXPECT_EQ(e.blocks().n_used(), 0);
}

TEST(Engine, EosAndStopTokenIds) {
  FakeModel m(64, 512, {7});
  Engine e(m, nullptr, small_config());
  SamplingParams force7 = greedy();
  force7.logit_bias = {{7, 100.0f}};
  Collector a, b, c;
  ASSERT_TRUE(e.submit(request({1, 2, 3}, 5, force7, a)).ok());
  Request r = request({1, 2, 3}, 5, force7, b);
  r.ignore_eos = true;
  ASSERT_TRUE(e.submit(std::move(r)).ok());
  SamplingParams force9 = greedy();
  force9.logit_bias = {{9, 100.0f}};
  r = request({1, 2, 3}, 5, force9, c);
  r.stop_token_ids = {9};
  ASSERT_TRUE(e.submit(std::move(r)).ok());
  e.run_until_idle();
  EXPECT_EQ(a.tokens, std::vector<int32_t>{7});
  EXPECT_EQ(a.finish, FinishReason::Stop);
  EXPECT_TRUE(a.events.back().stop_token);
  EXPECT_EQ(a.usage.completion_tokens, 1);
  EXPECT_EQ(b.tokens, std::vector<int32_t>(5, 7));
  EXPECT_EQ(b.finish, FinishReason::Length);
  EXPECT_EQ(c.tokens, std::vector<int32_t>{9});
  EXPECT_EQ(c.finish, FinishReason::Stop);
}

TEST(Engine, PrefixHitGivesIdenticalLogits) {
  FakeModel m;
  Engine e(m, nullptr, small_config(16, 1024));
  SamplingParams p = greedy();
  p.logprobs = true;
  p.top_logprobs = 5;
  auto prompt = prompt_of(40, 6);
  Collector cold, warm;
  ASSERT_TRUE(e.submit(request(prompt, 6, p, cold)).ok());
  e.run_until_idle();
  const size_t before = m.calls.size();
  ASSERT_TRUE(e.submit(request(prompt, 6, p, warm)).ok());
  e.run_until_idle();
  EXPECT_EQ(cold.usage.cached_prompt_tokens, 0);
  EXPECT_EQ(warm.usage.cached_prompt_tokens, 32);  // two full blocks; the last token is always computed
  EXPECT_EQ(m.calls[before].n_tokens, 8);
  EXPECT_EQ(warm.tokens, cold.tokens);
  ASSERT_EQ(warm.events.size(), cold.events.size());
  for (size_t i = 0; i < cold.events.size(); ++i) {
    EXPECT_EQ(warm.events[i].logprob, cold.events[i].logprob);
    ASSERT_EQ(warm.events[i].top_logprobs.size(), cold.events[i].top_logprobs.size());
    for (size_t k = 0; k < cold.events[i].top_logprobs.size(); ++k) {
      EXPECT_EQ(warm.events[i].top_logprobs[k].token, cold.events[i].top_logprobs[k].token);
      EXPECT_EQ(warm.events[i].top_logprobs[k].logprob, cold.events[i].top_logprobs[k].logprob);
    }
  }
  EXPECT_DOUBLE_EQ(e.metrics().prefix_cache_hit_rate, 32.0 / 80.0);
  // A prompt of exactly two blocks reuses one: its last token must be computed for the first logits.
  Collector exact;
  ASSERT_TRUE(e.submit(request(std::vector<int32_t>(prompt.begin(), prompt.begin() + 32), 2, p, exact)).ok());
  e.run_until_idle();
  EXPECT_EQ(exact.usage.cached_prompt_tokens, 16);
  EXPECT_EQ(exact.tokens, reference(m, std::vector<int32_t>(prompt.begin(), prompt.begin() + 32), 2, p));
  EXPECT_EQ(m.mismatches, 0);
}

TEST(Engine, PrefixSharedByRunningSequencesAndReusedAcrossTurns) {
  FakeModel m;
  Engine e(m, nullptr, small_config(8, 1024));
  auto system = prompt_of(24, 7);
  auto with = [&](std::vector<int32_t> tail) {
    std::vector<int32_t> p = system;
    p.insert(p.end(), tail.begin(), tail.end());
    return p;
  };
  Collector warmup, a, b;
  ASSERT_TRUE(e.submit(request(with({1, 2, 3}), 1, greedy(), warmup)).ok());
  e.run_until_idle();
  ASSERT_TRUE(e.submit(request(with({4, 5}), 10, greedy(), a)).ok());
  ASSERT_TRUE(e.submit(request(with({6}), 10, greedy(), b)).ok());
  e.step();
  // Both hold the 3 shared blocks: 3 shared + 1 private each.
  EXPECT_EQ(e.blocks().n_used(), 5);
  e.run_until_idle();
  EXPECT_EQ(a.usage.cached_prompt_tokens, 24);
  EXPECT_EQ(b.usage.cached_prompt_tokens, 24);
  EXPECT_EQ(a.tokens, reference(m, with({4, 5}), 10, greedy()));
  EXPECT_EQ(b.tokens, reference(m, with({6}), 10, greedy()));
  // Next turn: prompt = previous prompt + answer + new text; the answer's blocks were cached too.
  std::vector<int32_t> turn2 = with({4, 5});
  turn2.insert(turn2.end(), a.tokens.begin(), a.tokens.end());
  turn2.insert(turn2.end(), {9, 9, 9});
  Collector c;
  ASSERT_TRUE(e.submit(request(turn2, 4, greedy(), c)).ok());
  e.run_until_idle();
  EXPECT_EQ(c.usage.cached_prompt_tokens, (26 + 10 - 1) / 8 * 8);
  EXPECT_EQ(c.tokens, reference(m, turn2, 4, greedy()));
  EXPECT_EQ(m.mismatches, 0);
}

TEST(Engine, ThreadedSubmissionAndCancellation) {
  FakeModel m;
  EngineConfig cfg = small_config(4, 4096);
  cfg.max_seqs = 8;
  Engine e(m, nullptr, cfg);
  e.start();
  constexpr int kThreads = 4, kPerThread = 6;
  std::vector<Collector> cs(kThreads * kPerThread);
  std::vector<std::vector<int32_t>> prompts(cs.size());
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const size_t k = size_t(t * kPerThread + i);
        prompts[k] = prompt_of(3 + int(k) * 5 % 40, int(k));
        EXPECT_TRUE(e.submit(request(prompts[k], 8 + int(k % 5), seeded(k), cs[k])).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  Collector endless;
  Request slow = request(prompt_of(10, 99), 0, greedy(), endless);
  slow.on_event = [inner = endless.cb()](const StreamEvent& ev) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // 500 tokens take a second: cancel comes first
    return inner(ev);
  };
  SubmitResult r = e.submit(std::move(slow));
  for (auto& c : cs) c.wait();
  e.cancel(r.id);
  endless.wait();
  EXPECT_EQ(endless.finish, FinishReason::Cancelled);
  for (size_t k = 0; k < cs.size(); ++k)
    EXPECT_EQ(cs[k].tokens, reference(m, prompts[k], 8 + int(k % 5), seeded(k))) << "request " << k;
  e.stop();
  EngineMetrics mt = e.metrics();
  EXPECT_EQ(mt.requests_finished, cs.size() + 1);
  EXPECT_EQ(mt.kv_blocks_used, 0);
  EXPECT_EQ(mt.n_running + mt.n_waiting, 0);
  EXPECT_EQ(m.mismatches, 0);
}

TEST(Engine, StopCancelsUnfinished) {
  FakeModel m;
  Engine e(m, nullptr, small_config());
  Collector a;
  ASSERT_TRUE(e.submit(request(prompt_of(10, 1), 100, greedy(), a)).ok());
  e.step();
  e.stop();
  EXPECT_EQ(a.finish, FinishReason::Cancelled);
  EXPECT_EQ(a.finals, 1);
  Collector b;
  EXPECT_EQ(e.submit(request({1}, 1, greedy(), b)).reject, RejectReason::ShuttingDown);
}

TEST(Engine, ModelErrorFinishesTheBatchAndTheEngineGoesOn) {
  FakeModel m;
  m.throw_at_call = 1;
  Engine e(m, nullptr, small_config());
  Collector a, b;
  ASSERT_TRUE(e.submit(request(prompt_of(10, 1), 5, greedy(), a)).ok());
  e.run_until_idle();
  EXPECT_EQ(a.finish, FinishReason::Error);
  EXPECT_NE(a.events.back().error.find("forced failure"), std::string::npos);
  EXPECT_EQ(e.blocks().n_used(), 0);
  ASSERT_TRUE(e.submit(request(prompt_of(10, 2), 5, greedy(), b)).ok());
  e.run_until_idle();
  EXPECT_EQ(b.finish, FinishReason::Length);
  EXPECT_EQ(b.tokens, reference(m, prompt_of(10, 2), 5, greedy()));
}

TEST(Engine, MetricsCountTokens) {
  FakeModel m;
  Engine e(m, nullptr, small_config());
  Collector a;
  ASSERT_TRUE(e.submit(request(prompt_of(10, 1), 5, greedy(), a)).ok());
  e.run_until_idle();
  EngineMetrics mt = e.metrics();
  EXPECT_EQ(mt.requests_submitted, 1u);
  EXPECT_EQ(mt.prompt_tokens, 10u);
  EXPECT_EQ(mt.prefill_tokens, 10u);
  EXPECT_EQ(mt.generated_tokens, 5u);
  EXPECT_EQ(mt.kv_blocks_total, 256);
  EXPECT_GT(mt.decode_tok_s, 0);
}

}  // namespace
}  // namespace dm
