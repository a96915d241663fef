// The generation engine: one step loop serving many sequences over one model (continuous batching).
// Each step drains submissions and cancellations, schedules (decodes first, then prefill chunks, then newly
// admitted requests, within max_batch_tokens), runs ONE Model::forward over all scheduled sequences, samples,
// streams events and retires finished sequences. KV memory comes in blocks from a fixed budget; full blocks are
// shared through the prefix cache; when blocks run out the latest-admitted sequence is preempted (its blocks
// released, recomputed later, usually from the prefix cache) so the earlier ones keep going.
// The engine sees token ids only: stop strings and other text rules live in the caller's callback.
//
// Threading contract:
// - submit(), cancel(), metrics(), capacity queries: thread-safe, callable from any thread (HTTP handlers).
// - Callbacks run on the thread that runs step() (the engine thread after start()); keep them short. They may
//   call submit() and cancel(). Every accepted request gets exactly one final event (finish != None), after
//   which its callback is never called again; its KV blocks are released before that final event.
// - Either call start() (background thread) or drive step() yourself from one thread, not both.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/thread_pool.h"
#include "engine/block_allocator.h"
#include "engine/sampler.h"
#include "model/kv_cache.h"
#include "model/model.h"

namespace dm {

enum class FinishReason {
  None,       // not finished
  Stop,       // EOS or a stop token id, or the callback asked to stop (e.g. a stop string matched)
  Length,     // max_tokens reached, or the context / KV capacity limit
  Cancelled,  // cancel() or engine shutdown
  Error,      // the model failed (see StreamEvent::error)
};
const char* finish_reason_name(FinishReason r);  // "stop", "length", "cancelled", "error", ""

struct RequestUsage {
  int64_t prompt_tokens = 0;
  int64_t cached_prompt_tokens = 0;  // prompt tokens whose KV came from the prefix cache (DeepSeek's cache hits)
  int64_t completion_tokens = 0;     // includes a final EOS / stop token
};

struct Timing {
  double queued_s = 0;   // submission -> first admission
  double prefill_s = 0;  // first admission -> first token
  double decode_s = 0;   // first token -> last token
};

struct StreamEvent {
  uint64_t id = 0;
  int32_t token = -1;              // a newly generated token, or -1 (final event without a token)
  bool stop_token = false;         // `token` is the EOS / stop id that finished the request: don't show it
  float logprob = 0;               // with SamplingParams::logprobs
  std::vector<TokenLogprob> top_logprobs;
  FinishReason finish = FinishReason::None;  // != None: the last event of this request
  std::string error;                         // with FinishReason::Error
  RequestUsage usage;                               // so far; final with the last event
  Timing timing;
};
// Return false to stop the request (it finishes with FinishReason::Stop and gets one more, final, event).
using StreamCallback = std::function<bool(const StreamEvent&)>;

struct Request {
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  int64_t max_tokens = 0;  // 0: until the context / KV capacity limit
  std::vector<int32_t> stop_token_ids;  // besides the EOS ids
  bool ignore_eos = false;
  StreamCallback on_event;  // required
};

enum class RejectReason { None, InvalidRequest, TooLong, QueueFull, ShuttingDown };

struct SubmitResult {
  uint64_t id = 0;
  RejectReason reject = RejectReason::None;
  std::string message;  // why, naming the field, for a 400 / 429 / 503
  bool ok() const { return reject == RejectReason::None; }
};

struct EngineConfig {
  int block_size = 16;          // tokens per KV block
  int64_t kv_cache_tokens = 0;  // KV budget in tokens (rounded up to whole blocks) ...
  double kv_cache_gb = 0;       // ... or in GiB; both 0: 1 GiB, capped at max_seqs full contexts
  int max_seqs = 16;            // sequences running at once
  int max_batch_tokens = 512;   // tokens per forward: prefill chunk size plus decodes
  int max_waiting = 256;        // queued requests beyond which submit() answers QueueFull
  bool prefix_cache = true;
  std::vector<int32_t> eos_token_ids;  // stop ids besides model.info().eos_token_ids (generation_config, tokenizer)
  int64_t max_context = 0;             // 0: model.info().max_context
};

// A snapshot for /metrics. Counters are cumulative since start; rates cover the last ~10 s of wall time.
struct EngineMetrics {
  int64_t n_waiting = 0, n_running = 0;
  int64_t kv_blocks_total = 0, kv_blocks_used = 0, kv_blocks_cached = 0;
  int block_size = 0;
  uint64_t requests_submitted = 0, requests_rejected = 0, requests_finished = 0, requests_cancelled = 0;
  uint64_t preemptions = 0, steps = 0;
  uint64_t prompt_tokens = 0, cached_prompt_tokens = 0;  // of admitted requests (first admission)
  uint64_t prefill_tokens = 0;                          // tokens run through prefill (incl. recomputation)
  uint64_t generated_tokens = 0;
  double prefix_cache_hit_rate = 0;  // cached_prompt_tokens / prompt_tokens
  double prefill_tok_s = 0, decode_tok_s = 0;
};

class Engine {
 public:
  // `model` and `pool` must outlive the engine; the engine allocates the KvCache.
  Engine(Model& model, ThreadPool* pool, EngineConfig cfg);
  ~Engine();  // stop()
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  SubmitResult submit(Request req);  // thread-safe
  void cancel(uint64_t id);          // thread-safe; unknown or finished ids are ignored

  void start();  // runs step() on a background thread until stop()
  void stop();   // joins the thread; unfinished requests get FinishReason::Cancelled (on the caller's thread)
  bool step();   // one iteration (when not started); returns whether work remains
  void run_until_idle() { while (step()) {} }

  EngineMetrics metrics() const;  // thread-safe
  int64_t max_context() const { return max_context_; }
  int64_t capacity_tokens() const { return alloc_.n_blocks() * alloc_.block_size(); }
  // Most tokens (prompt + completion) one request may have: min(context, KV capacity).
  int64_t max_sequence_tokens() const { return std::min(max_context_, capacity_tokens()); }
  const EngineConfig& config() const { return cfg_; }
  const BlockAllocator& blocks() const { return alloc_; }  // step thread only (tests)

 private:
  using Clock = std::chrono::steady_clock;
  struct Sequence;
  struct Planned {
    Sequence* seq;
    int64_t n;
  };

  void take_submissions();
  void schedule(std::vector<Planned>& plan);
  bool ensure_blocks(Sequence& s, int64_t n_tokens);
  void preempt_last(std::vector<Planned>& plan, int64_t& budget);
  bool admit(Sequence& s);
  void publish_full_blocks(Sequence& s);
  void emit(Sequence& s, StreamEvent& ev);
  void finish(Sequence& s, FinishReason why, const std::string& error = "");
  void retire_finished();
  void loop();

  Model& model_;
  ThreadPool* pool_;
  EngineConfig cfg_;
  int64_t max_context_;
  std::vector<int32_t> eos_;
  KvCache kv_;
  BlockAllocator alloc_;

  // Step-thread state.
  std::deque<std::unique_ptr<Sequence>> waiting_;
  std::list<std::unique_ptr<Sequence>> running_;  // admission order
  std::vector<float> logits_, scratch_;
  uint64_t admit_counter_ = 0;
  struct StepRecord {
    Clock::time_point t;
    int64_t prefill, decode;
  };
  std::deque<StepRecord> recent_;

  // Shared with submitting threads.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Sequence>> incoming_;
  std::vector<uint64_t> cancels_;
  uint64_t next_id_ = 1;
  bool stopping_ = false;
  std::thread thread_;
  EngineMetrics m_;  // guarded by mu_
  Clock::time_point started_;
};

}  // namespace dm
