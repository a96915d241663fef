// deepmoe serve: the OpenAI/DeepSeek-compatible HTTP server over one or more models (`--model DIR[:ALIAS]`,
// repeatable; a request picks one by `model`). SIGINT/SIGTERM stop it gracefully: no new connections, running
// streams get a short grace period and are then cancelled, exit code 0.
#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "cli/commands.h"
#include "cli/model_loading.h"
#include "core/error.h"
#include "core/log.h"
#include "core/mapped_file.h"
#include "server/http_server.h"
#include "server/model_backend.h"

namespace dm::cli {

namespace {

// "DIR:ALIAS" -> (DIR, ALIAS); a plain path (even with ':' inside, if it exists as given) keeps its folder name.
std::pair<std::string, std::string> split_alias(const std::string& spec) {
  namespace fs = std::filesystem;
  if (fs::exists(spec)) return {spec, ""};
  size_t colon = spec.rfind(':');
  if (colon == std::string::npos || colon == 0) return {spec, ""};
  return {spec.substr(0, colon), spec.substr(colon + 1)};
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  size_t b = s.find_first_not_of(' ');
  return b == std::string::npos ? "" : s.substr(b);
}

}  // namespace

int cmd_serve(int argc, char** argv) {
  CLI::App app{"OpenAI/DeepSeek-compatible HTTP server (chat web page at /)", "deepmoe serve"};
  std::vector<std::string> models;
  ServerOptions so;
  std::string key_file;
  int threads = 0, max_seqs = 0, ctx = 0;
  double kv_gb = 0;
  std::string quant;
  app.add_option("-m,--model", models, "model directory or .gguf file, optionally DIR:ALIAS (repeatable)");
  app.add_option("--host", so.host, "address to listen on")->capture_default_str();
  app.add_option("--port", so.port, "port")->capture_default_str()->check(CLI::Range(0, 65535));
  auto* key_opt = app.add_option("--api-key", so.api_key, "require 'Authorization: Bearer KEY'");
  app.add_option("--api-key-file", key_file, "read the API key from this file")->excludes(key_opt);
  app.add_option("--max-concurrency", so.max_concurrency, "generations running at once")
      ->capture_default_str()->check(CLI::Range(1, 4096));
  app.add_option("--max-queue", so.max_queue, "requests waiting beyond that; more get 429")
      ->capture_default_str()->check(CLI::Range(0, 100000));
  app.add_option("--kv-cache-gb", kv_gb, "KV cache budget per model in GiB (default 1, capped at full contexts)")
      ->check(CLI::Range(0.0, 1e6));
  app.add_option("--ctx-size", ctx, "maximum tokens per sequence (default: the model's context)")
      ->check(CLI::Range(0, 1 << 30));
  app.add_option("-t,--threads", threads, "worker threads per model (0: one per CPU this process may use)");
  app.add_option("--quant", quant, "quantize linear weights at load: q8_0, q4_0")
      ->check(CLI::IsMember({"q8_0", "q4_0"}));
  app.add_option("--max-body-bytes", so.max_body_bytes, "largest request body (413 past it)")->capture_default_str();
  app.add_option("--read-timeout", so.read_timeout_s, "seconds a client may take to send a request (or to read a reply)")
      ->capture_default_str()->check(CLI::Range(1, 3600));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (!key_file.empty()) {
    so.api_key = trim(read_file(key_file));
    if (so.api_key.empty()) fail(key_file, ": the API key file is empty");
  }
  if (models.empty()) models.push_back(default_model_dir());
  max_seqs = so.max_concurrency;

  // Signals are taken by one thread with sigwait; every thread made after this inherits the mask.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGUSR1);  // wakes the signal thread when listening failed
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  std::vector<std::shared_ptr<ModelBackend>> backends;
  std::vector<std::string> ids;
  for (const std::string& spec : models) {
    auto [path, alias] = split_alias(spec);
    LocalModelOptions mo;
    mo.path = path;
    mo.id = alias;
    mo.n_threads = threads;
    mo.engine.max_seqs = std::max(1, max_seqs);
    mo.engine.kv_cache_gb = kv_gb;
    mo.engine.max_context = ctx;
    mo.load.quant = quant;
    std::unique_ptr<Model> model = load_model_with_progress(path, mo.load);
    auto m = std::make_shared<LocalModel>(mo, std::move(model));
    for (auto& id : ids)
      if (id == m->id()) fail("two models have the id '", id, "': give one an alias with --model DIR:ALIAS");
    ids.push_back(m->id());
    const ModelInfo& info = m->model().info();
    EngineMetrics em = m->engine().metrics();
    std::fprintf(stderr, "model %s: %s, %.2f B params (%.2f B active), %s weights, KV cache %s for %lld tokens, context %lld\n",
                 m->id().c_str(), info.architecture.c_str(), info.n_params / 1e9, info.n_active_params / 1e9,
                 human_bytes(double(info.weight_bytes)).c_str(),
                 human_bytes(double(em.kv_blocks_total) * em.block_size * info.n_layers * info.kv_width * 4).c_str(),
                 (long long)(em.kv_blocks_total * em.block_size), (long long)m->context_length());
    backends.push_back(std::move(m));
  }

  HttpServer server(so, backends);
  std::thread signals([&] {
    int sig = 0;
    sigwait(&sigs, &sig);
    if (sig == SIGUSR1) return;  // shutdown without a signal (below)
    log_info("signal ", sig, ": shutting down");
    server.stop();
  });
  std::fprintf(stderr, "deepmoe serve: listening on http://%s:%d (OpenAI API at /v1, web page at /)%s\n",
               so.host.c_str(), so.port, so.api_key.empty() ? "" : ", API key required");
  bool ok = server.listen();
  if (!ok && !server.error().empty()) {
    pthread_kill(signals.native_handle(), SIGUSR1);
    signals.join();
    fail(server.error());
  }
  if (signals.joinable()) signals.join();
  std::fprintf(stderr, "deepmoe serve: stopped\n");
  return 0;
}

}  // namespace dm::cli
