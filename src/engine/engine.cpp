// The step loop: submissions -> scheduling (decode first, chunked prefill, admission with prefix reuse,
// preemption by recomputation) -> one Model::forward -> sampling -> streaming -> retirement.
// Scheduling follows the continuous-batching design of Orca / vLLM; see engine.h for the contracts.
#include "engine/engine.h"

#include <algorithm>
#include <cmath>
#include <exception>

#include "core/error.h"
#include "core/log.h"

namespace dm {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Cancelled: return "cancelled";
    case FinishReason::Error: return "error";
    case FinishReason::None: break;
  }
  return "";
}

struct Engine::Sequence {
  uint64_t id = 0;
  Request req;
  std::vector<int32_t> tokens;  // prompt + generated
  int64_t n_prompt = 0;
  int64_t n_computed = 0;       // tokens whose KV is in the cache
  int64_t max_tokens = 0;       // effective completion limit
  std::vector<int32_t> blocks;  // block table
  std::vector<uint64_t> hashes; // chained hashes of blocks[0 .. hashes.size()), all full and published
  TokenCounts counts;
  SamplerRng rng{0};
  RequestUsage usage;
  bool admitted_before = false;
  bool planned = false;
  bool stop_requested = false;  // the callback returned false
  FinishReason finished = FinishReason::None;
  Clock::time_point t_submit, t_admit, t_first, t_last;

  int64_t remaining() const { return int64_t(tokens.size()) - n_computed; }
  Timing timing() const {
    auto secs = [](Clock::duration d) { return std::chrono::duration<double>(d).count(); };
    Timing t;
    if (admitted_before) t.queued_s = secs(t_admit - t_submit);
    if (usage.completion_tokens > 0) {
      t.prefill_s = secs(t_first - t_admit);
      t.decode_s = secs(t_last - t_first);
    }
    return t;
  }
};

namespace {
int64_t default_kv_tokens(const EngineConfig& cfg, size_t bytes_per_token, int64_t max_context) {
  if (cfg.kv_cache_tokens > 0) return cfg.kv_cache_tokens;
  const double gb = cfg.kv_cache_gb > 0 ? cfg.kv_cache_gb : 1.0;
  int64_t tokens = int64_t(gb * double(1ull << 30) / double(std::max<size_t>(bytes_per_token, 1)));
  if (cfg.kv_cache_gb <= 0) tokens = std::min(tokens, max_context * std::max(cfg.max_seqs, 1));
  return tokens;
}

EngineConfig checked(EngineConfig cfg, const ModelInfo& info) {
  if (cfg.block_size <= 0) fail("engine: block_size must be > 0, got ", cfg.block_size);
  if (cfg.max_seqs <= 0) fail("engine: max_seqs must be > 0, got ", cfg.max_seqs);
  if (cfg.max_batch_tokens <= 0) fail("engine: max_batch_tokens must be > 0, got ", cfg.max_batch_tokens);
  if (cfg.kv_cache_gb < 0 || !std::isfinite(cfg.kv_cache_gb)) fail("engine: --kv-cache-gb must be >= 0");
  if (info.n_layers <= 0 || info.kv_width <= 0 || info.vocab_size <= 0) fail("engine: model info is incomplete");
  // Every running sequence may need a decode token in the same step.
  cfg.max_seqs = std::min(cfg.max_seqs, cfg.max_batch_tokens);
  if (cfg.max_context <= 0) cfg.max_context = info.max_context > 0 ? info.max_context : 4096;
  return cfg;
}
}  // namespace

Engine::Engine(Model& model, ThreadPool* pool, EngineConfig cfg)
    : model_(model),
      pool_(pool),
      cfg_(checked(std::move(cfg), model.info())),
      max_context_(cfg_.max_context),
      kv_(model.info().n_layers, model.info().kv_width, cfg_.block_size,
          std::max<int64_t>(1, (default_kv_tokens(cfg_, size_t(model.info().n_layers) * size_t(model.info().kv_width) *
                                                            sizeof(float), max_context_) + cfg_.block_size - 1) /
                                   cfg_.block_size)),
      alloc_(kv_.n_blocks(), cfg_.block_size),
      started_(Clock::now()) {
  eos_ = model.info().eos_token_ids;
  eos_.insert(eos_.end(), cfg_.eos_token_ids.begin(), cfg_.eos_token_ids.end());
  std::sort(eos_.begin(), eos_.end());
  eos_.erase(std::unique(eos_.begin(), eos_.end()), eos_.end());
  m_.kv_blocks_total = alloc_.n_blocks();
  m_.block_size = cfg_.block_size;
}

Engine::~Engine() { stop(); }

SubmitResult Engine::submit(Request req) {
  SubmitResult res;
  auto reject = [&](RejectReason why, std::string msg) {
    res.reject = why;
    res.message = std::move(msg);
    std::lock_guard lk(mu_);
    m_.requests_rejected++;
    return res;
  };
  const int64_t vocab = model_.info().vocab_size;
  if (!req.on_event) return reject(RejectReason::InvalidRequest, "the request has no event callback");
  if (req.prompt.empty()) return reject(RejectReason::InvalidRequest, "the prompt is empty");
  for (int32_t t : req.prompt)
    if (t < 0 || t >= vocab)
      return reject(RejectReason::InvalidRequest, cat("prompt token ", t, " is outside the vocabulary (size ", vocab, ")"));
  for (int32_t t : req.stop_token_ids)
    if (t < 0 || t >= vocab) return reject(RejectReason::InvalidRequest, cat("stop token id ", t, " is outside the vocabulary"));
  if (std::string why = validate(req.sampling, vocab); !why.empty()) return reject(RejectReason::InvalidRequest, why);
  if (req.max_tokens < 0) return reject(RejectReason::InvalidRequest, "max_tokens must be > 0");
  const int64_t limit = max_sequence_tokens();
  const int64_t n_prompt = int64_t(req.prompt.size());
  auto limit_text = [&] {
    return cat(limit, " tokens (context length ", max_context_, ", KV cache ", capacity_tokens(), ")");
  };
  if (n_prompt >= limit)
    return reject(RejectReason::TooLong, cat("the prompt has ", n_prompt, " tokens, leaving no room to generate within the limit of ", limit_text()));
  if (req.max_tokens > 0 && n_prompt + req.max_tokens > limit)
    return reject(RejectReason::TooLong,
                  cat("prompt (", n_prompt, " tokens) + max_tokens (", req.max_tokens, ") exceeds the limit of ", limit_text()));

  auto s = std::make_unique<Sequence>();
  s->t_submit = Clock::now();
  s->n_prompt = n_prompt;
  s->max_tokens = req.max_tokens > 0 ? req.max_tokens : limit - n_prompt;
  s->tokens = req.prompt;
  s->counts.add_prompt(req.prompt);
  s->rng = SamplerRng(req.sampling.seed ? *req.sampling.seed : (uint64_t(std::random_device{}()) << 32 | std::random_device{}()));
  s->usage.prompt_tokens = n_prompt;
  s->req = std::move(req);
  s->req.prompt.clear();  // kept in `tokens`
  {
    std::lock_guard lk(mu_);
    if (stopping_) {
      m_.requests_rejected++;
      res.reject = RejectReason::ShuttingDown;
      res.message = "the engine is shutting down";
      return res;
    }
    if (int64_t(incoming_.size()) + m_.n_waiting >= cfg_.max_waiting) {
      m_.requests_rejected++;
      res.reject = RejectReason::QueueFull;
      res.message = cat("too many queued requests (", cfg_.max_waiting, "); retry later");
      return res;
    }
    s->id = res.id = next_id_++;
    m_.requests_submitted++;
    incoming_.push_back(std::move(s));
  }
  cv_.notify_one();
  return res;
}

void Engine::cancel(uint64_t id) {
  {
    std::lock_guard lk(mu_);
    cancels_.push_back(id);
  }
  cv_.notify_one();
}

void Engine::take_submissions() {
  std::vector<std::unique_ptr<Sequence>> in;
  std::vector<uint64_t> cancels;
  {
    std::lock_guard lk(mu_);
    in.swap(incoming_);
    cancels.swap(cancels_);
  }
  for (auto& s : in) waiting_.push_back(std::move(s));
  for (uint64_t id : cancels) {
    for (auto& s : running_)
      if (s->id == id && s->finished == FinishReason::None) finish(*s, FinishReason::Cancelled);
    for (auto& s : waiting_)
      if (s->id == id && s->finished == FinishReason::None) finish(*s, FinishReason::Cancelled);
  }
  retire_finished();
}

bool Engine::ensure_blocks(Sequence& s, int64_t n_tokens) {
  const size_t need = size_t((n_tokens + cfg_.block_size - 1) / cfg_.block_size);
  while (s.blocks.size() < need) {
    std::optional<int32_t> b = alloc_.allocate();
    if (!b) return false;
    s.blocks.push_back(*b);
  }
  return true;
}

void Engine::preempt_last(std::vector<Planned>& plan, int64_t& budget) {
  std::unique_ptr<Sequence> victim = std::move(running_.back());
  running_.pop_back();
  if (victim->planned) {
    auto it = std::find_if(plan.begin(), plan.end(), [&](const Planned& p) { return p.seq == victim.get(); });
    DM_CHECK(it != plan.end(), "planned sequence missing from the plan");
    budget += it->n;
    plan.erase(it);
    victim->planned = false;
  }
  for (int32_t b : victim->blocks) alloc_.release(b);
  victim->blocks.clear();
  victim->hashes.clear();
  victim->n_computed = 0;
  log_debug("engine: preempted request ", victim->id, " (", victim->tokens.size(), " tokens)");
  waiting_.push_front(std::move(victim));
  std::lock_guard lk(mu_);
  m_.preemptions++;
}

bool Engine::admit(Sequence& s) {
  const int bs = cfg_.block_size;
  std::vector<int32_t> matched;
  std::vector<uint64_t> hashes;
  if (cfg_.prefix_cache) {
    // Keep at least the last token to compute, so that the first step yields logits.
    const int64_t n_reusable = (int64_t(s.tokens.size()) - 1) / bs;
    uint64_t parent = kRootHash;
    for (int64_t j = 0; j < n_reusable; ++j) {
      std::span<const int32_t> blk(s.tokens.data() + j * bs, size_t(bs));
      int32_t b = alloc_.lookup(parent, blk);
      if (b < 0) break;
      matched.push_back(b);
      parent = block_hash(parent, blk);
      hashes.push_back(parent);
    }
  }
  const int64_t need = (int64_t(s.tokens.size()) + bs - 1) / bs - int64_t(matched.size());
  int64_t matched_idle = 0;  // cached blocks we are about to take out of the LRU
  for (int32_t b : matched) matched_idle += alloc_.ref_count(b) == 0;
  if (alloc_.n_available() - matched_idle < need) return false;
  for (int32_t b : matched) alloc_.retain(b);
  s.blocks = std::move(matched);
  s.hashes = std::move(hashes);
  s.n_computed = int64_t(s.blocks.size()) * bs;
  if (!s.admitted_before) {
    s.admitted_before = true;
    s.t_admit = Clock::now();
    s.usage.cached_prompt_tokens = s.n_computed;
    std::lock_guard lk(mu_);
    m_.prompt_tokens += uint64_t(s.n_prompt);
    m_.cached_prompt_tokens += uint64_t(s.n_computed);
  }
  return true;
}

void Engine::schedule(std::vector<Planned>& plan) {
  int64_t budget = cfg_.max_batch_tokens;
  bool preempted = false;
  // Pass 0: sequences decoding one token; pass 1: prefills (in chunks), both in admission order.
  for (int pass = 0; pass < 2; ++pass) {
    for (auto it = running_.begin(); it != running_.end() && budget > 0;) {
      Sequence& s = **it;
      const bool decode = s.remaining() == 1;
      if (s.planned || decode != (pass == 0) || s.remaining() <= 0) {
        ++it;
        continue;
      }
      const int64_t n = std::min(s.remaining(), budget);
      bool gone = false;
      while (!ensure_blocks(s, s.n_computed + n)) {
        gone = running_.back().get() == &s;
        preempt_last(plan, budget);
        preempted = true;
        if (gone) break;
      }
      if (gone) break;  // s was the last running sequence
      s.planned = true;
      plan.push_back({&s, n});
      budget -= n;
      ++it;
    }
  }
  // Admission, first come first served, unless memory just ran short.
  while (!preempted && !waiting_.empty() && int64_t(running_.size()) < cfg_.max_seqs && budget > 0) {
    Sequence& s = *waiting_.front();
    if (!admit(s)) break;
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
    const int64_t n = std::min(s.remaining(), budget);
    DM_CHECK(ensure_blocks(s, s.n_computed + n), "admitted sequence lacks blocks");
    s.planned = true;
    plan.push_back({&s, n});
    budget -= n;
  }
}

void Engine::publish_full_blocks(Sequence& s) {
  if (!cfg_.prefix_cache) return;
  const int bs = cfg_.block_size;
  while (int64_t(s.hashes.size() + 1) * bs <= s.n_computed) {
    const size_t j = s.hashes.size();
    const uint64_t parent = j == 0 ? kRootHash : s.hashes[j - 1];
    s.hashes.push_back(alloc_.publish(s.blocks[j], parent, std::span<const int32_t>(s.tokens.data() + j * bs, size_t(bs))));
  }
}

void Engine::emit(Sequence& s, StreamEvent& ev) {
  ev.id = s.id;
  ev.usage = s.usage;
  ev.timing = s.timing();
  bool keep = false;
  try {
    keep = s.req.on_event(ev);
  } catch (const std::exception& e) {
    log_warn("engine: callback of request ", s.id, " threw: ", e.what(), "; cancelling it");
    if (ev.finish == FinishReason::None) finish(s, FinishReason::Cancelled);
    return;
  }
  if (!keep && ev.finish == FinishReason::None) s.stop_requested = true;
}

void Engine::finish(Sequence& s, FinishReason why, const std::string& error) {
  if (s.finished != FinishReason::None) return;
  s.finished = why;
  for (int32_t b : s.blocks) alloc_.release(b);
  s.blocks.clear();
  s.hashes.clear();
  {
    std::lock_guard lk(mu_);
    m_.requests_finished++;
    if (why == FinishReason::Cancelled) m_.requests_cancelled++;
  }
  StreamEvent ev;
  ev.finish = why;
  ev.error = error;
  emit(s, ev);
}

void Engine::retire_finished() {
  running_.remove_if([](const std::unique_ptr<Sequence>& s) { return s->finished != FinishReason::None; });
  std::erase_if(waiting_, [](const std::unique_ptr<Sequence>& s) { return s->finished != FinishReason::None; });
  std::lock_guard lk(mu_);
  m_.n_waiting = int64_t(waiting_.size());
  m_.n_running = int64_t(running_.size());
  m_.kv_blocks_used = alloc_.n_used();
  m_.kv_blocks_cached = alloc_.n_cached();
}

bool Engine::step() {
  take_submissions();
  std::vector<Planned> plan;
  schedule(plan);
  if (plan.empty()) {
    retire_finished();
    return !waiting_.empty() || !running_.empty();
  }

  std::vector<SeqInput> batch;
  batch.reserve(plan.size());
  int64_t n_rows = 0, n_prefill = 0, n_decode = 0;
  for (const Planned& p : plan) {
    Sequence& s = *p.seq;
    SeqInput in;
    in.tokens = std::span<const int32_t>(s.tokens).subspan(size_t(s.n_computed), size_t(p.n));
    in.n_past = s.n_computed;
    in.blocks = s.blocks;
    in.logits = s.n_computed + p.n == int64_t(s.tokens.size()) ? Logits::Last : Logits::None;
    n_rows += in.logits == Logits::Last;
    (s.remaining() == 1 && s.usage.completion_tokens > 0 ? n_decode : n_prefill) += p.n;
    batch.push_back(in);
  }
  const int64_t vocab = model_.info().vocab_size;
  logits_.resize(size_t(std::max<int64_t>(n_rows, 1) * vocab));
  try {
    model_.forward(batch, kv_, logits_.data(), pool_);
  } catch (const std::exception& e) {
    log_warn("engine: forward failed: ", e.what());
    for (const Planned& p : plan) finish(*p.seq, FinishReason::Error, cat("model forward failed: ", e.what()));
    retire_finished();
    return !waiting_.empty() || !running_.empty();
  }

  const auto now = Clock::now();
  int64_t row = 0;
  for (size_t i = 0; i < plan.size(); ++i) {
    Sequence& s = *plan[i].seq;
    s.planned = false;
    s.n_computed += plan[i].n;
    publish_full_blocks(s);
    if (batch[i].logits != Logits::Last) continue;
    std::span<const float> lrow(logits_.data() + row++ * vocab, size_t(vocab));
    SampleResult r = sample(lrow, s.req.sampling, s.counts, s.rng, scratch_);
    s.tokens.push_back(r.token);
    s.counts.add_output(r.token);
    s.usage.completion_tokens++;
    if (s.usage.completion_tokens == 1) s.t_first = now;
    s.t_last = now;

    StreamEvent ev;
    ev.token = r.token;
    ev.logprob = r.logprob;
    ev.top_logprobs = std::move(r.top);
    const bool is_eos = !s.req.ignore_eos && std::binary_search(eos_.begin(), eos_.end(), r.token);
    const bool is_stop = std::find(s.req.stop_token_ids.begin(), s.req.stop_token_ids.end(), r.token) !=
                         s.req.stop_token_ids.end();
    if (is_eos || is_stop) {
      ev.stop_token = true;
      ev.finish = FinishReason::Stop;
    } else if (s.usage.completion_tokens >= s.max_tokens || int64_t(s.tokens.size()) >= max_sequence_tokens()) {
      ev.finish = FinishReason::Length;
    }
    if (ev.finish != FinishReason::None) {
      // Release before the final event, as the contract promises.
      s.finished = ev.finish;
      for (int32_t b : s.blocks) alloc_.release(b);
      s.blocks.clear();
      s.hashes.clear();
      std::lock_guard lk(mu_);
      m_.requests_finished++;
    }
    emit(s, ev);
  }
  for (const Planned& p : plan)
    if (p.seq->stop_requested) finish(*p.seq, FinishReason::Stop);

  {
    recent_.push_back({now, n_prefill, n_decode});
    while (!recent_.empty() && now - recent_.front().t > std::chrono::seconds(10)) recent_.pop_front();
    int64_t pf = 0, dc = 0;
    for (const StepRecord& r : recent_) {
      pf += r.prefill;
      dc += r.decode;
    }
    const double span = std::min(10.0, std::chrono::duration<double>(now - started_).count());
    std::lock_guard lk(mu_);
    m_.steps++;
    m_.prefill_tokens += uint64_t(n_prefill);
    m_.generated_tokens += uint64_t(n_rows);
    m_.prefill_tok_s = span > 0 ? double(pf) / span : 0;
    m_.decode_tok_s = span > 0 ? double(dc) / span : 0;
  }
  retire_finished();
  return !waiting_.empty() || !running_.empty();
}

EngineMetrics Engine::metrics() const {
  std::lock_guard lk(mu_);
  EngineMetrics m = m_;
  m.n_waiting += int64_t(incoming_.size());
  m.prefix_cache_hit_rate = m.prompt_tokens ? double(m.cached_prompt_tokens) / double(m.prompt_tokens) : 0.0;
  return m;
}

void Engine::loop() {
  bool has_work = false;
  for (;;) {
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return stopping_ || has_work || !incoming_.empty() || !cancels_.empty(); });
      if (stopping_) return;
    }
    has_work = step();
  }
}

void Engine::start() {
  DM_CHECK(!thread_.joinable(), "engine started twice");
  thread_ = std::thread([this] { loop(); });
}

void Engine::stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  take_submissions();
  for (auto& s : running_) finish(*s, FinishReason::Cancelled);
  for (auto& s : waiting_) finish(*s, FinishReason::Cancelled);
  retire_finished();
}

}  // namespace dm
