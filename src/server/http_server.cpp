// HTTP routes of `deepmoe serve` on cpp-httplib. Generations are admitted through a slot counter (max_concurrency
// running, max_queue waiting, 429 past that); streams are written as OpenAI's server-sent events and cancelled
// as soon as a write to the client fails.
#include "server/http_server.h"

#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <utility>

#include "core/log.h"
#include "server/openai_response.h"
#include "server/web_page.h"

namespace dm {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

bool keys_equal(const std::string& a, const std::string& b) {
  // Length is not secret; the bytes are compared without an early exit.
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

namespace {

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void send_error(httplib::Response& res, const ApiError& e) { send_json(res, e.status, e.body()); }

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Chat logprob entries {token, logprob, bytes, top_logprobs} -> the completions API's parallel arrays.
json completion_logprobs(const json& entries, size_t text_offset0) {
  json tokens = json::array(), lps = json::array(), tops = json::array(), offs = json::array();
  size_t off = text_offset0;
  for (auto& e : entries) {
    tokens.push_back(e["token"]);
    lps.push_back(e["logprob"]);
    json top = json::object();
    for (auto& t : e["top_logprobs"]) top[t["token"].get<std::string>()] = t["logprob"];
    tops.push_back(top);
    offs.push_back(off);
    off += e["token"].get<std::string>().size();
  }
  return {{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offs}};
}

}  // namespace

HttpServer::HttpServer(ServerOptions opts, std::vector<std::shared_ptr<ModelBackend>> models)
    : opts_(std::move(opts)), models_(std::move(models)), http_(std::make_unique<httplib::Server>()) {
  routes();
}

HttpServer::~HttpServer() = default;

std::shared_ptr<ModelBackend> HttpServer::pick(const std::string& model, ApiError& err) const {
  if (model.empty()) {
    if (models_.size() == 1) return models_[0];
    err = {400, "'model' is required when several models are served", "model", "invalid_request_error"};
    return nullptr;
  }
  for (auto& m : models_)
    if (m->id() == model) return m;
  err = {404, "The model '" + model + "' does not exist", "model", "model_not_found"};
  return nullptr;
}

bool HttpServer::acquire_slot() {
  std::unique_lock<std::mutex> lock(mu_);
  if (counters_.running < opts_.max_concurrency) {
    ++counters_.running;
    return true;
  }
  if (counters_.waiting >= opts_.max_queue) return false;
  ++counters_.waiting;
  cv_.wait(lock, [&] { return stopping_ || counters_.running < opts_.max_concurrency; });
  --counters_.waiting;
  if (stopping_) return false;
  ++counters_.running;
  return true;
}

void HttpServer::release_slot() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    --counters_.running;
  }
  cv_.notify_one();
}

bool HttpServer::listen() {
  if (!http_->bind_to_port(opts_.host.c_str(), opts_.port)) {
    error_ = "cannot listen on " + opts_.host + ":" + std::to_string(opts_.port) + " (address in use?)";
    return false;
  }
  port_ = opts_.port;
  return http_->listen_after_bind();
}

void HttpServer::stop() {
  if (stopping_.exchange(true)) return;
  cv_.notify_all();
  http_->stop();  // no new connections
  // Give running generations a moment to finish, then cancel the rest.
  for (int i = 0; i < 50 && counters_.running > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::lock_guard<std::mutex> lock(active_mu_);
  for (Completion* c : active_) c->cancel();
}

// Holds one admitted generation; releases its slot and logs the request when destroyed.
class HttpServer::Slot {
 public:
  Slot(HttpServer& s, std::unique_ptr<Completion> c, std::string what)
      : s_(s), c_(std::move(c)), what_(std::move(what)), start_(Clock::now()) {
    std::lock_guard<std::mutex> lock(s_.active_mu_);
    s_.active_.push_back(c_.get());
  }
  ~Slot() {
    std::string finish = c_->finish_reason();
    c_->cancel();  // a no-op when finished; frees the sequence when the client went away mid-way
    {
      std::lock_guard<std::mutex> lock(s_.active_mu_);
      s_.active_.erase(std::find(s_.active_.begin(), s_.active_.end(), c_.get()));
    }
    Usage u = c_->usage();
    s_.counters_.prompt_tokens += u.prompt_tokens;
    s_.counters_.completion_tokens += u.completion_tokens;
    double secs = std::chrono::duration<double>(Clock::now() - start_).count();
    log_info(what_, " 200 tokens=", u.prompt_tokens, "+", u.completion_tokens, " finish=", finish,
             " ", int64_t(secs * 1000), "ms");
    s_.release_slot();
  }
  Completion& c() { return *c_; }

 private:
  HttpServer& s_;
  std::unique_ptr<Completion> c_;
  std::string what_;
  Clock::time_point start_;
};

// Everything a generation produces, for a non-streamed reply.
static Delta drain(Completion& c) {
  Delta all, d;
  while (c.next(d, std::chrono::milliseconds(1000))) {
    append_delta(all, d);
    d = Delta{};
  }
  return all;
}

std::shared_ptr<HttpServer::Slot> HttpServer::admit(const std::string& model, httplib::Response& res, const char* what,
                                                    std::string& model_id, const StartFn& start) {
  ApiError err;
  auto backend = pick(model, err);
  if (!backend) {
    send_error(res, err);
    return nullptr;
  }
  if (!acquire_slot()) {
    ++counters_.rejected;
    res.set_header("Retry-After", "1");
    send_error(res, {429, "too many requests are waiting; retry shortly", "", "rate_limit_exceeded"});
    return nullptr;
  }
  auto started = start(*backend);
  if (auto* e = std::get_if<ApiError>(&started)) {
    release_slot();
    send_error(res, *e);
    return nullptr;
  }
  model_id = backend->id();
  return std::make_shared<Slot>(*this, std::move(std::get<std::unique_ptr<Completion>>(started)), what);
}

void HttpServer::routes() {
  auto& s = *http_;
  s.set_payload_max_length(opts_.max_body_bytes);
  s.set_read_timeout(opts_.read_timeout_s, 0);
  s.set_write_timeout(opts_.read_timeout_s, 0);
  s.set_keep_alive_max_count(1000);
  int n_threads = std::max(opts_.http_threads, opts_.max_concurrency + opts_.max_queue + 4);
  s.new_task_queue = [n_threads] { return new httplib::ThreadPool(size_t(n_threads)); };

  s.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    ++counters_.requests;
    if (stopping_) {
      send_error(res, {503, "the server is shutting down", "", "unavailable"});
      return httplib::Server::HandlerResponse::Handled;
    }
    bool open = req.path == "/health" || req.path == "/" ;
    if (!opts_.api_key.empty() && !open) {
      std::string auth = req.get_header_value("Authorization");
      const std::string bearer = "Bearer ";
      std::string key = auth.rfind(bearer, 0) == 0 ? auth.substr(bearer.size()) : "";
      if (!keys_equal(key, opts_.api_key)) {
        res.set_header("WWW-Authenticate", "Bearer");
        send_error(res, {401, auth.empty() ? "missing API key: send 'Authorization: Bearer <key>'"
                                           : "incorrect API key provided",
                         "", "invalid_api_key"});
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });

  s.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    ++counters_.errors;
    if (!res.body.empty()) return;
    switch (res.status) {
      case 404: send_error(res, {404, "unknown path " + req.path, "", "not_found"}); break;
      case 413:
        send_error(res, {413, "request body exceeds " + std::to_string(opts_.max_body_bytes) + " bytes", "",
                         "payload_too_large"});
        break;
      default: send_error(res, {res.status, "request failed (HTTP " + std::to_string(res.status) + ")", "", ""});
    }
  });

  // Access log: generations log themselves with token counts when they end (Slot); everything else here.
  s.set_logger([](const httplib::Request& req, const httplib::Response& res) {
    bool generation = res.status == 200 && (req.path == "/v1/chat/completions" || req.path == "/v1/completions");
    if (!generation) log_info(req.method, " ", req.path, " ", res.status);
  });

  s.set_exception_handler([this](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    log_warn("internal error on ", req.method, " ", req.path, ": ", what);
    send_error(res, {500, "internal error: " + what, "", "internal_error"});
  });

  s.Get("/", [](const httplib::Request&, httplib::Response& res) { res.set_content(kWebPage, "text/html"); });

  s.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    bool ready = std::all_of(models_.begin(), models_.end(), [](auto& m) { return m->ready(); });
    send_json(res, ready ? 200 : 503, {{"status", ready ? "ok" : "loading"}});
  });

  s.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    json data = json::array();
    for (auto& m : models_)
      data.push_back({{"id", m->id()}, {"object", "model"}, {"created", 0}, {"owned_by", "deepmoe"},
                      {"context_length", m->context_length()}});
    send_json(res, 200, {{"object", "list"}, {"data", data}});
  });

  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    std::string t;
    auto line = [&](const char* name, const char* type, const char* help, int64_t v) {
      t += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + name + " " +
           std::to_string(v) + "\n";
    };
    line("deepmoe_http_requests_total", "counter", "HTTP requests received", counters_.requests);
    line("deepmoe_http_errors_total", "counter", "HTTP requests answered with an error", counters_.errors);
    line("deepmoe_requests_rejected_total", "counter", "generations refused with 429", counters_.rejected);
    line("deepmoe_requests_running", "gauge", "generations running", counters_.running);
    line("deepmoe_requests_waiting", "gauge", "generations waiting for a slot (queue length)", counters_.waiting);
    line("deepmoe_prompt_tokens_total", "counter", "prompt tokens of finished requests", counters_.prompt_tokens);
    line("deepmoe_completion_tokens_total", "counter", "generated tokens of finished requests",
         counters_.completion_tokens);
    for (auto& m : models_) t += m->metrics_text();
    res.set_content(t, "text/plain; version=0.0.4");
  });

  // Known paths answer 405 to other methods (httplib alone would say 404).
  for (const char* path : {"/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics"}) {
    auto not_allowed = [this](const httplib::Request& req, httplib::Response& res) {
      send_error(res, {405, "method " + req.method + " is not allowed on " + req.path, "", "method_not_allowed"});
    };
    std::string p = path;
    bool post = p == "/v1/chat/completions" || p == "/v1/completions";
    if (post) s.Get(path, not_allowed);
    else s.Post(path, not_allowed);
    s.Put(path, not_allowed);
    s.Delete(path, not_allowed);
    s.Patch(path, not_allowed);
  }

  s.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    auto parsed = parse_chat_request(req.body, opts_.limits);
    if (auto* e = std::get_if<ApiError>(&parsed)) return send_error(res, *e);
    ChatRequest& r = std::get<ChatRequest>(parsed);
    std::string model_id;
    auto slot = admit(r.model, res, "POST /v1/chat/completions", model_id,
                      [&](ModelBackend& m) { return m.start_chat(r); });
    if (!slot) return;
    ResponseMeta meta{new_completion_id("chatcmpl-"), model_id, unix_now()};
    const bool logprobs = r.sampling.logprobs;
    if (!r.stream) {
      Delta all = drain(slot->c());
      return send_json(res, 200, chat_response(meta, all, slot->c().finish_reason(), slot->c().usage(), logprobs));
    }
    const bool include_usage = r.include_usage;
    const int idle_ms = opts_.stream_idle_ms;
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [slot, meta, logprobs, include_usage, idle_ms](size_t, httplib::DataSink& sink) {
          auto write = [&](const std::string& s) { return sink.write(s.data(), s.size()); };
          if (!write(sse(chat_chunk(meta, {{"role", "assistant"}, {"content", ""}}, nullptr)))) return false;
          Delta d;
          int tool_index = 0;
          auto idle_since = Clock::now();
          while (slot->c().next(d, std::chrono::milliseconds(100))) {
            if (d.empty()) {
              if (Clock::now() - idle_since > std::chrono::milliseconds(idle_ms)) {
                if (!write(": keep-alive\n\n")) return false;
                idle_since = Clock::now();
              }
              continue;
            }
            idle_since = Clock::now();
            // The delta's logprobs go with its first chunk only (a delta may hold reasoning and content).
            json lp = logprobs && !d.logprobs.empty() ? json{{"content", d.logprobs}} : json(nullptr);
            auto take_lp = [&lp] { return std::exchange(lp, json(nullptr)); };
            if (!d.reasoning.empty() &&
                !write(sse(chat_chunk(meta, {{"reasoning_content", d.reasoning}}, nullptr, take_lp()))))
              return false;
            if (!d.content.empty() && !write(sse(chat_chunk(meta, {{"content", d.content}}, nullptr, take_lp()))))
              return false;
            if (!lp.is_null() && !write(sse(chat_chunk(meta, json::object(), nullptr, take_lp())))) return false;
            for (auto& tc : d.tool_calls) {
              json t = tc;
              t["index"] = tool_index++;
              if (!write(sse(chat_chunk(meta, {{"tool_calls", {t}}}, nullptr)))) return false;
            }
            d = Delta{};
          }
          if (!write(sse(chat_chunk(meta, json::object(), slot->c().finish_reason())))) return false;
          if (include_usage && !write(sse(usage_chunk(meta, "chat.completion.chunk", slot->c().usage()))))
            return false;
          if (!write("data: [DONE]\n\n")) return false;
          sink.done();
          return true;
        },
        [slot](bool) { slot->c().cancel(); });
  });

  s.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    auto parsed = parse_completion_request(req.body, opts_.limits);
    if (auto* e = std::get_if<ApiError>(&parsed)) return send_error(res, *e);
    CompletionRequest& r = std::get<CompletionRequest>(parsed);
    std::string model_id;
    auto slot = admit(r.model, res, "POST /v1/completions", model_id,
                      [&](ModelBackend& m) { return m.start_completion(r); });
    if (!slot) return;
    ResponseMeta meta{new_completion_id("cmpl-"), model_id, unix_now()};
    const bool logprobs = r.sampling.logprobs;
    const std::string echo = r.echo ? slot->c().prompt_text() : "";
    if (!r.stream) {
      Delta all = drain(slot->c());
      json lp = logprobs ? completion_logprobs(all.logprobs, echo.size()) : json(nullptr);
      return send_json(res, 200,
                       completion_response(meta, echo + all.text, lp, slot->c().finish_reason(), slot->c().usage()));
    }
    const bool include_usage = r.include_usage;
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [slot, meta, logprobs, include_usage, echo](size_t, httplib::DataSink& sink) {
          auto write = [&](const std::string& s) { return sink.write(s.data(), s.size()); };
          size_t offset = 0;
          if (!echo.empty()) {
            if (!write(sse(completion_chunk(meta, echo, nullptr, nullptr)))) return false;
            offset = echo.size();
          }
          Delta d;
          while (slot->c().next(d, std::chrono::milliseconds(100))) {
            if (d.text.empty() && d.logprobs.empty()) continue;
            json lp = logprobs ? completion_logprobs(d.logprobs, offset) : json(nullptr);
            offset += d.text.size();
            if (!write(sse(completion_chunk(meta, d.text, lp, nullptr)))) return false;
            d = Delta{};
          }
          if (!write(sse(completion_chunk(meta, "", nullptr, slot->c().finish_reason())))) return false;
          if (include_usage && !write(sse(usage_chunk(meta, "text_completion", slot->c().usage())))) return false;
          if (!write("data: [DONE]\n\n")) return false;
          sink.done();
          return true;
        },
        [slot](bool) { slot->c().cancel(); });
  });
}

}  // namespace dm
