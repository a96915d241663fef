// The OpenAI/DeepSeek-compatible HTTP server: routes, authentication, limits, SSE streaming, admission control,
// access log and graceful shutdown, over one or more ModelBackends (a request picks one with `model`).
// Thread safety: start() blocks serving until stop() is called from another thread or a signal handler.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "server/backend.h"

namespace httplib {
class Server;
struct Response;
}

namespace dm {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_key;               // empty: no authentication
  size_t max_body_bytes = 8 << 20;   // 413 past this
  int max_concurrency = 16;          // generations running at once (all models)
  int max_queue = 64;                // requests waiting for a slot; past this: 429 with Retry-After
  int http_threads = 96;             // must exceed max_concurrency + max_queue for waiting to be possible
  int read_timeout_s = 30;           // slow clients are cut off after this
  int stream_idle_ms = 15000;        // a stream writes an SSE comment when idle this long (detects gone clients)
  RequestLimits limits;
};

class HttpServer {
 public:
  HttpServer(ServerOptions opts, std::vector<std::shared_ptr<ModelBackend>> models);
  ~HttpServer();
  // Binds and serves; returns false (with a message in error()) if the address cannot be bound.
  bool listen();
  int bound_port() const { return port_; }
  // Stops accepting, cancels running generations after a grace period, and makes listen() return.
  void stop();
  const std::string& error() const { return error_; }

  // Counters for /metrics.
  struct Counters {
    std::atomic<int64_t> requests{0}, errors{0}, rejected{0}, prompt_tokens{0}, completion_tokens{0};
    std::atomic<int> running{0}, waiting{0};
  };
  const Counters& counters() const { return counters_; }

 private:
  class Slot;
  using StartFn = std::function<std::variant<std::unique_ptr<Completion>, ApiError>(ModelBackend&)>;
  void routes();
  // Picks the model, takes a generation slot (429 past the queue) and starts the generation; on failure the error
  // is written to `res` and the result is null.
  std::shared_ptr<Slot> admit(const std::string& model, httplib::Response& res, const char* what,
                              std::string& model_id, const StartFn& start);
  std::shared_ptr<ModelBackend> pick(const std::string& model, ApiError& err) const;
  bool acquire_slot();
  void release_slot();

  ServerOptions opts_;
  std::vector<std::shared_ptr<ModelBackend>> models_;
  std::unique_ptr<httplib::Server> http_;
  Counters counters_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> stopping_{false};
  int port_ = 0;
  std::string error_;
  std::mutex active_mu_;
  std::vector<Completion*> active_;  // for cancel on shutdown
  friend class StreamWriter;
};

// Constant-time comparison of API keys.
bool keys_equal(const std::string& a, const std::string& b);

}  // namespace dm
