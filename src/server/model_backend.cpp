// LocalModel: request -> chat template -> token ids -> engine; engine events -> text deltas.
#include "server/model_backend.h"

#include <deque>
#include <filesystem>
#include <mutex>

#include "chat/output_parser.h"
#include "chat/stop_strings.h"
#include "core/error.h"
#include "core/log.h"
#include "core/mapped_file.h"

namespace dm {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

json token_entry(const Tokenizer& tok, int32_t id, float logprob) {
  std::string bytes = tok.token_bytes(id);
  json b = json::array();
  for (unsigned char c : bytes) b.push_back(int(c));
  return {{"token", bytes}, {"logprob", logprob}, {"bytes", b}};
}

// Everything one generation's callback touches; shared by the engine callback and the Completion, so it stays
// alive until both are done with it.
struct GenState {
  GenState(const Tokenizer& tok, std::vector<std::string> stops, std::optional<chat::ParserConfig> parser)
      : tok(tok), decoder(tok, /*skip_special_tokens=*/true), stop(std::move(stops)) {
    if (parser) this->parser.emplace(*parser);
  }
  const Tokenizer& tok;
  StreamDecoder decoder;
  StopStringMatcher stop;
  std::optional<chat::OutputParser> parser;  // chat only; completions return raw text
  bool logprobs = false;
  bool in_reasoning = false;

  std::mutex mu;
  std::condition_variable cv;
  std::deque<Delta> ready;
  bool finished = false;
  bool any_tool_call = false;
  std::string finish_reason;
  Usage usage;

  // Turns released text into a delta (engine thread).
  void add_text(Delta& d, const std::string& text, bool at_end) {
    if (!parser) {
      d.text += text;
      return;
    }
    chat::ParsedDelta p = parser->push(text);
    if (at_end) p.append(parser->finish());
    d.reasoning += p.reasoning;
    d.content += p.content;
    for (auto& tc : p.tool_calls) {
      any_tool_call = true;
      d.tool_calls.push_back({{"id", tc.id}, {"type", "function"},
                              {"function", {{"name", tc.name}, {"arguments", tc.arguments}}}});
    }
    if (!p.reasoning.empty()) in_reasoning = true;
    if (!p.content.empty() || !p.tool_calls.empty()) in_reasoning = false;
  }

  bool on_event(const StreamEvent& ev) {
    Delta d;
    bool keep_going = true;
    if (ev.token >= 0 && !ev.stop_token) {
      std::string visible = stop.push(decoder.push(ev.token));
      add_text(d, visible, false);
      if (in_reasoning) ++usage.reasoning_tokens;
      if (logprobs) {
        json e = token_entry(tok, ev.token, ev.logprob);
        json top = json::array();
        for (auto& t : ev.top_logprobs) top.push_back(token_entry(tok, t.token, t.logprob));
        e["top_logprobs"] = top;
        d.logprobs.push_back(e);
      }
      keep_going = !stop.stopped();
    }
    std::lock_guard<std::mutex> lock(mu);
    if (ev.finish != FinishReason::None) {
      if (!stop.stopped()) add_text(d, stop.push(decoder.flush()) + stop.flush(), true);
      else add_text(d, "", true);
      finish_reason = ev.finish == FinishReason::Stop && any_tool_call ? "tool_calls"
                      : ev.finish == FinishReason::Error            ? "error"
                                                                    : finish_reason_name(ev.finish);
      if (ev.finish == FinishReason::Error) log_warn("generation failed: ", ev.error);
      usage.prompt_tokens = ev.usage.prompt_tokens;
      usage.cached_prompt_tokens = ev.usage.cached_prompt_tokens;
      usage.completion_tokens = ev.usage.completion_tokens;
      finished = true;
    }
    if (!d.empty()) ready.push_back(std::move(d));
    cv.notify_all();
    return keep_going;
  }
};

class EngineCompletion : public Completion {
 public:
  EngineCompletion(Engine& engine, std::shared_ptr<GenState> st, std::string prompt)
      : engine_(engine), st_(std::move(st)), prompt_(std::move(prompt)) {}
  ~EngineCompletion() override { cancel(); }
  void set_id(uint64_t id) { id_ = id; }

  bool next(Delta& out, std::chrono::milliseconds timeout) override {
    std::unique_lock<std::mutex> lock(st_->mu);
    st_->cv.wait_for(lock, timeout, [&] { return !st_->ready.empty() || st_->finished; });
    if (st_->ready.empty()) return !st_->finished;
    while (!st_->ready.empty()) {
      append_delta(out, st_->ready.front());
      st_->ready.pop_front();
    }
    return true;
  }
  void cancel() override {
    bool done;
    {
      std::lock_guard<std::mutex> lock(st_->mu);
      done = st_->finished;
    }
    if (!done && id_) engine_.cancel(id_);
  }
  std::string finish_reason() const override {
    std::lock_guard<std::mutex> lock(st_->mu);
    return st_->finish_reason;
  }
  Usage usage() const override {
    std::lock_guard<std::mutex> lock(st_->mu);
    return st_->usage;
  }
  std::string prompt_text() const override { return prompt_; }

 private:
  static void append_delta(Delta& acc, const Delta& d) {
    acc.reasoning += d.reasoning;
    acc.content += d.content;
    acc.text += d.text;
    for (auto& t : d.tool_calls) acc.tool_calls.push_back(t);
    for (auto& l : d.logprobs) acc.logprobs.push_back(l);
  }
  Engine& engine_;
  std::shared_ptr<GenState> st_;
  std::string prompt_;
  uint64_t id_ = 0;
};

std::string folder_name(const std::string& path) {
  fs::path p = fs::path(path).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  std::string name = p.filename().string();
  if (name.size() > 5 && name.substr(name.size() - 5) == ".gguf") name.resize(name.size() - 5);
  return name;
}

}  // namespace

struct LocalModel::Prepared {
  std::vector<int32_t> prompt;
  std::string prompt_text;
  SamplingParams sampling;
  int64_t max_tokens = 0;
  std::vector<std::string> stop;
  std::optional<chat::ParserConfig> parser;
};

LocalModel::LocalModel(const LocalModelOptions& opts, std::unique_ptr<Model> model)
    : id_(opts.id.empty() ? folder_name(opts.path) : opts.id),
      model_(model ? std::move(model) : load_model(opts.path, opts.load)),
      pool_(std::make_unique<ThreadPool>(opts.n_threads)),
      tokenizer_(Tokenizer::from_dir(fs::is_directory(opts.path) ? opts.path : fs::path(opts.path).parent_path().string())) {
  EngineConfig ec = opts.engine;
  GenerationConfig gen;
  if (fs::is_directory(opts.path)) {
    gen = load_generation_config((fs::path(opts.path) / "generation_config.json").string());
    bool has_template = fs::exists(fs::path(opts.path) / "chat_template.jinja");
    if (!has_template && fs::exists(fs::path(opts.path) / "tokenizer_config.json")) {
      json tc = json::parse(read_file((fs::path(opts.path) / "tokenizer_config.json").string()), nullptr, false);
      has_template = tc.is_object() && tc.contains("chat_template");
    }
    if (has_template) template_.emplace(chat::ChatTemplate::from_model_dir(opts.path));
  }
  default_sampling_ = default_sampling(gen);
  for (int32_t e : gen.eos_token_ids) ec.eos_token_ids.push_back(e);
  if (auto e = tokenizer_.eos_id()) ec.eos_token_ids.push_back(*e);
  engine_ = std::make_unique<Engine>(*model_, pool_.get(), ec);
  engine_->start();
}

LocalModel::~LocalModel() {
  if (engine_) engine_->stop();
}

std::optional<ApiError> LocalModel::sampling_of(const SamplingRequest& s, int64_t n_prompt, SamplingParams& p,
                                                int64_t& max_tokens) const {
  const int64_t limit = engine_->max_sequence_tokens();
  if (n_prompt >= limit)
    return ApiError{400,
                    "the prompt is " + std::to_string(n_prompt) + " tokens; this model's context is " +
                        std::to_string(limit) + " tokens",
                    "messages", "context_length_exceeded"};
  max_tokens = s.max_tokens.value_or(limit - n_prompt);
  if (n_prompt + max_tokens > limit)
    return ApiError{400,
                    "prompt (" + std::to_string(n_prompt) + " tokens) + max_tokens (" + std::to_string(max_tokens) +
                        ") exceeds the context of " + std::to_string(limit) + " tokens",
                    "max_tokens", "context_length_exceeded"};
  bool user_sampling = s.temperature || s.top_p || s.top_k || s.min_p;
  p = user_sampling ? SamplingParams{} : default_sampling_;
  if (user_sampling && !s.temperature) p.temperature = default_sampling_.temperature;
  if (s.temperature) p.temperature = float(*s.temperature);
  if (s.top_p) p.top_p = float(*s.top_p);
  if (s.top_k) p.top_k = int(std::max<int64_t>(0, *s.top_k));
  if (s.min_p) p.min_p = float(*s.min_p);
  if (s.presence_penalty) p.presence_penalty = float(*s.presence_penalty);
  if (s.frequency_penalty) p.frequency_penalty = float(*s.frequency_penalty);
  if (s.repetition_penalty) p.repetition_penalty = float(*s.repetition_penalty);
  if (s.seed) p.seed = uint64_t(*s.seed);
  p.logit_bias = s.logit_bias;
  p.logprobs = s.logprobs;
  p.top_logprobs = s.top_logprobs;
  for (auto& [tok, b] : s.logit_bias)
    if (tok >= model_->info().vocab_size)
      return ApiError{400, "logit_bias names token " + std::to_string(tok) + ", past the vocabulary", "logit_bias",
                      "invalid_value"};
  if (std::string why = validate(p, model_->info().vocab_size); !why.empty())
    return ApiError{400, why, "", "invalid_value"};
  return std::nullopt;
}

std::variant<std::string, ApiError> LocalModel::render_chat(const ChatRequest& req) const {
  if (!template_) return ApiError{400, "model '" + id_ + "' has no chat template; use /v1/completions", "messages", ""};
  nlohmann::ordered_json r = {{"messages", req.messages}, {"add_generation_prompt", true}};
  if (!req.tools.is_null() && req.tool_choice != "none") {
    nlohmann::ordered_json tools = nlohmann::ordered_json::array();
    for (auto& t : req.tools)
      if (req.tool_choice != "function" || t["function"]["name"] == req.tool_choice_name) tools.push_back(t);
    r["tools"] = tools;
  }
  r["chat_template_kwargs"] = req.chat_template_kwargs;
  try {
    return template_->render(chat::ChatRequest::from_json(r));
  } catch (const std::exception& e) {
    return ApiError{400, std::string("the chat template rejected these messages: ") + e.what(), "messages", ""};
  }
}

std::variant<std::unique_ptr<Completion>, ApiError> LocalModel::start_chat(const ChatRequest& req) {
  auto rendered = render_chat(req);
  if (auto* e = std::get_if<ApiError>(&rendered)) return *e;
  Prepared p;
  p.prompt_text = std::get<std::string>(rendered);
  p.prompt = tokenizer_.encode(p.prompt_text, /*add_special_tokens=*/false);
  if (auto e = sampling_of(req.sampling, int64_t(p.prompt.size()), p.sampling, p.max_tokens)) return *e;
  p.stop = req.sampling.stop;
  chat::ParserConfig pc = chat::detect_parser_config(template_->source(!req.tools.is_null()), p.prompt_text);
  pc.tool_call_id_prefix = "call_" + std::to_string(reinterpret_cast<uintptr_t>(&p) & 0xffffff) + "_";
  p.parser = pc;
  return submit(std::move(p));
}

std::variant<std::unique_ptr<Completion>, ApiError> LocalModel::start_completion(const CompletionRequest& req) {
  Prepared p;
  if (req.prompt_is_tokens) {
    for (int32_t t : req.prompt_tokens)
      if (t >= model_->info().vocab_size)
        return ApiError{400, "prompt token " + std::to_string(t) + " is past the vocabulary", "prompt", ""};
    p.prompt = req.prompt_tokens;
    p.prompt_text = tokenizer_.decode(p.prompt, false);
  } else {
    p.prompt_text = req.prompt_text;
    p.prompt = tokenizer_.encode(p.prompt_text, /*add_special_tokens=*/true);
  }
  if (p.prompt.empty()) return ApiError{400, "the prompt is empty", "prompt", ""};
  if (auto e = sampling_of(req.sampling, int64_t(p.prompt.size()), p.sampling, p.max_tokens)) return *e;
  p.stop = req.sampling.stop;
  return submit(std::move(p));
}

std::variant<std::unique_ptr<Completion>, ApiError> LocalModel::submit(Prepared p) {
  auto st = std::make_shared<GenState>(tokenizer_, std::move(p.stop), p.parser);
  st->logprobs = p.sampling.logprobs;
  if (p.parser && p.parser->starts_in_reasoning) st->in_reasoning = true;
  auto c = std::make_unique<EngineCompletion>(*engine_, st, p.prompt_text);
  Request r;
  r.prompt = std::move(p.prompt);
  r.sampling = p.sampling;
  r.max_tokens = p.max_tokens;
  r.on_event = [st](const StreamEvent& ev) { return st->on_event(ev); };
  SubmitResult s = engine_->submit(std::move(r));
  switch (s.reject) {
    case RejectReason::None: break;
    case RejectReason::QueueFull: return ApiError{429, s.message, "", "rate_limit_exceeded"};
    case RejectReason::ShuttingDown: return ApiError{503, s.message, "", "unavailable"};
    default: return ApiError{400, s.message, "", "invalid_request_error"};
  }
  c->set_id(s.id);
  return std::unique_ptr<Completion>(std::move(c));
}

std::string LocalModel::metrics_text() const {
  EngineMetrics m = engine_->metrics();
  std::string t;
  auto line = [&](const char* name, const char* type, const char* help, double v) {
    t += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + name + "{model=\"" +
         id_ + "\"} " + std::to_string(v) + "\n";
  };
  line("deepmoe_engine_waiting", "gauge", "sequences waiting for admission", double(m.n_waiting));
  line("deepmoe_engine_running", "gauge", "sequences running", double(m.n_running));
  line("deepmoe_kv_blocks_total", "gauge", "KV cache blocks", double(m.kv_blocks_total));
  line("deepmoe_kv_blocks_used", "gauge", "KV cache blocks in use", double(m.kv_blocks_used));
  line("deepmoe_kv_cache_usage_ratio", "gauge", "share of KV cache blocks in use",
       m.kv_blocks_total ? double(m.kv_blocks_used) / double(m.kv_blocks_total) : 0.0);
  line("deepmoe_prefix_cache_hit_rate", "gauge", "prompt tokens served from the prefix cache / prompt tokens",
       m.prefix_cache_hit_rate);
  line("deepmoe_prompt_tokens_processed_total", "counter", "prompt tokens of admitted requests", double(m.prompt_tokens));
  line("deepmoe_generated_tokens_total", "counter", "tokens generated", double(m.generated_tokens));
  line("deepmoe_prefill_tokens_per_second", "gauge", "prefill tokens/s over the last seconds", m.prefill_tok_s);
  line("deepmoe_decode_tokens_per_second", "gauge", "decode tokens/s over the last seconds", m.decode_tok_s);
  line("deepmoe_preemptions_total", "counter", "sequences preempted for lack of KV blocks", double(m.preemptions));
  return t;
}

}  // namespace dm
