// The HTTP layer against a scripted backend: routes, status codes, SSE format, admission, disconnects.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <thread>

#include "server/http_server.h"

using namespace dm;
using json = nlohmann::json;

namespace {

// Emits `n` content deltas "w0 ", "w1 ", ..., one every `delay_ms`; counts cancellations.
struct Script {
  int n = 3;
  int delay_ms = 0;
  std::atomic<int> cancelled{0}, finished{0}, started{0};
};

class FakeCompletion : public Completion {
 public:
  explicit FakeCompletion(Script& s) : s_(s) { ++s_.started; }
  bool next(Delta& out, std::chrono::milliseconds) override {
    if (cancelled_ || i_ >= s_.n) {
      if (!done_) {
        done_ = true;
        if (!cancelled_) ++s_.finished;
      }
      return false;
    }
    if (s_.delay_ms) std::this_thread::sleep_for(std::chrono::milliseconds(s_.delay_ms));
    if (i_ == 0) out.reasoning = "think ";
    out.content = "w" + std::to_string(i_++) + " ";
    return true;
  }
  void cancel() override {
    if (done_) return;
    if (!cancelled_) ++s_.cancelled;
    cancelled_ = true;
  }
  std::string finish_reason() const override { return cancelled_ ? "cancelled" : "length"; }
  Usage usage() const override { return {5, i_, 1, 2}; }

 private:
  Script& s_;
  int i_ = 0;
  bool cancelled_ = false, done_ = false;
};

class FakeBackend : public ModelBackend {
 public:
  explicit FakeBackend(Script& s) : s_(s) {}
  std::string id() const override { return "fake"; }
  int64_t context_length() const override { return 128; }
  std::variant<std::unique_ptr<Completion>, ApiError> start_chat(const ChatRequest&) override {
    return std::unique_ptr<Completion>(new FakeCompletion(s_));
  }
  std::variant<std::unique_ptr<Completion>, ApiError> start_completion(const CompletionRequest&) override {
    return ApiError{400, "no completions here", "prompt", ""};
  }

 private:
  Script& s_;
};

struct Running {
  Script script;
  std::unique_ptr<HttpServer> server;
  std::thread thread;
  int port = 0;
  explicit Running(ServerOptions o) {
    for (port = 18400 + int(::getpid() % 500); port < 19400; ++port) {
      o.port = port;
      server = std::make_unique<HttpServer>(o, std::vector<std::shared_ptr<ModelBackend>>{
                                                   std::make_shared<FakeBackend>(script)});
      std::atomic<int> state{0};
      thread = std::thread([&] { state = server->listen() ? 2 : 1; if (state == 0) state = 1; });
      // listen() blocks while serving: wait until the port answers or listen failed.
      httplib::Client probe("127.0.0.1", port);
      bool up = false;
      for (int i = 0; i < 200 && state == 0; ++i) {
        if (auto r = probe.Get("/health")) { up = true; break; }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      if (up) return;
      thread.join();
    }
    ADD_FAILURE() << "no free port";
  }
  ~Running() {
    server->stop();
    if (thread.joinable()) thread.join();
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(10, 0);
    return c;
  }
};

const char* kChat = R"({"model": "fake", "messages": [{"role": "user", "content": "hi"}]})";

}  // namespace

TEST(HttpServer, ChatNonStreamedAndErrors) {
  ServerOptions o;
  Running r(o);
  auto c = r.client();
  auto res = c.Post("/v1/chat/completions", kChat, "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  json j = json::parse(res->body);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["message"]["content"], "w0 w1 w2 ");
  EXPECT_EQ(j["choices"][0]["message"]["reasoning_content"], "think ");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["total_tokens"], 8);
  EXPECT_EQ(j["usage"]["prompt_cache_hit_tokens"], 2);
  EXPECT_EQ(j["usage"]["prompt_cache_miss_tokens"], 3);
  EXPECT_EQ(j["usage"]["completion_tokens_details"]["reasoning_tokens"], 1);

  auto check = [&](httplib::Result res, int status) {
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, status) << res->body;
    json e = json::parse(res->body, nullptr, false);
    ASSERT_FALSE(e.is_discarded()) << res->body;
    EXPECT_TRUE(e["error"]["message"].is_string()) << res->body;
  };
  check(c.Post("/v1/chat/completions", "{bad", "application/json"), 400);
  check(c.Post("/v1/chat/completions", R"({"model": "nope", "messages": [{"role": "user", "content": "x"}]})",
               "application/json"),
        404);
  check(c.Get("/v1/chat/completions"), 405);
  check(c.Get("/v2/whatever"), 404);
  check(c.Post("/v1/completions", R"({"prompt": "x"})", "application/json"), 400);
  check(c.Post("/v1/chat/completions", std::string(9 << 20, 'x'), "application/json"), 413);
  auto models = c.Get("/v1/models");
  ASSERT_TRUE(models);
  EXPECT_EQ(json::parse(models->body)["data"][0]["id"], "fake");
  auto metrics = c.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("deepmoe_http_requests_total"), std::string::npos);
}

TEST(HttpServer, StreamsServerSentEvents) {
  Running r(ServerOptions{});
  auto c = r.client();
  std::string body;
  auto res = c.Post("/v1/chat/completions",
                    R"({"messages": [{"role": "user", "content": "hi"}], "stream": true,
                        "stream_options": {"include_usage": true}})",
                    "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/event-stream");
  std::vector<json> events;
  size_t pos = 0;
  while ((pos = res->body.find("data: ", pos)) != std::string::npos) {
    size_t end = res->body.find("\n\n", pos);
    ASSERT_NE(end, std::string::npos);
    std::string data = res->body.substr(pos + 6, end - pos - 6);
    pos = end + 2;
    if (data == "[DONE]") {
      EXPECT_EQ(pos, res->body.size());
      break;
    }
    events.push_back(json::parse(data));
  }
  ASSERT_GE(events.size(), 5u);
  EXPECT_EQ(events[0]["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(events[1]["choices"][0]["delta"]["reasoning_content"], "think ");
  std::string content;
  for (auto& e : events)
    if (!e["choices"].empty() && e["choices"][0]["delta"].contains("content"))
      content += e["choices"][0]["delta"]["content"].get<std::string>();
  EXPECT_EQ(content, "w0 w1 w2 ");
  EXPECT_EQ(events[events.size() - 2]["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(events.back()["choices"].empty());
  EXPECT_EQ(events.back()["usage"]["completion_tokens"], 3);
}

TEST(HttpServer, AuthAndAdmission) {
  ServerOptions o;
  o.api_key = "sekret";
  o.max_concurrency = 1;
  o.max_queue = 0;
  Running r(o);
  r.script.n = 40;
  r.script.delay_ms = 25;
  auto c = r.client();
  auto res = c.Post("/v1/chat/completions", kChat, "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);
  httplib::Headers wrong = {{"Authorization", "Bearer sekreT"}};
  res = c.Post("/v1/chat/completions", wrong, kChat, "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);
  EXPECT_EQ(c.Get("/health")->status, 200);

  httplib::Headers ok = {{"Authorization", "Bearer sekret"}};
  std::thread slow([&] {
    auto c2 = r.client();
    auto res2 = c2.Post("/v1/chat/completions", ok, kChat, "application/json");
    ASSERT_TRUE(res2);
    EXPECT_EQ(res2->status, 200);
  });
  while (r.script.started == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  res = c.Post("/v1/chat/completions", ok, kChat, "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 429);
  EXPECT_EQ(res->get_header_value("Retry-After"), "1");
  slow.join();
}

TEST(HttpServer, ClientDisconnectCancelsStream) {
  Running r(ServerOptions{});
  r.script.n = 1000;
  r.script.delay_ms = 5;
  {
    httplib::Client c("127.0.0.1", r.port);
    int chunks = 0;
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/chat/completions";
    req.body = R"({"messages": [{"role": "user", "content": "hi"}], "stream": true})";
    req.set_header("Content-Type", "application/json");
    req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 5; };
    c.send(req);  // the receiver aborts after a few chunks: the connection closes mid-stream
  }
  for (int i = 0; i < 300 && r.script.cancelled == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(r.script.cancelled, 1);
  EXPECT_EQ(r.script.finished, 0);
  // The server still answers.
  r.script.n = 3;
  r.script.delay_ms = 0;
  auto res = r.client().Post("/v1/chat/completions", kChat, "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}
