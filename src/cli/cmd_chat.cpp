// deepmoe chat: interactive multi-turn chat on the terminal. The history goes through the chat template each
// turn (the engine's prefix cache reuses the KV of what was already said); reasoning is shown but not fed back,
// as DeepSeek recommends for R1. /reset clears the history, /exit (or end of input) leaves, Ctrl-C stops the
// current answer and returns to the prompt.
#include <CLI/CLI.hpp>

#include <csignal>
#include <iostream>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/generation.h"
#include "cli/model_loading.h"
#include "core/error.h"

namespace dm::cli {

namespace {
std::atomic<bool> g_interrupted{false};  // note: set by the SIGINT handler, read by the answer loop
void on_sigint(int) { g_interrupted = true; }
}  // namespace

int cmd_chat(int argc, char** argv) {
  CLI::App app{"Interactive multi-turn chat", "deepmoe chat"};
  std::string model_dir = default_model_dir(), system;
  int64_t max_tokens = 0;
  std::optional<float> temperature, top_p;
  std::optional<int> top_k;
  std::optional<uint64_t> seed;
  bool no_color = false, stats = false;
  int threads = 0;
  double kv_gb = 0;
  app.add_option("-m,--model", model_dir, "model directory (Hugging Face layout)");
  app.add_option("-s,--system", system, "system message");
  app.add_option("-n,--max-tokens", max_tokens, "most tokens per answer (default: up to the context)");
  app.add_option("--temperature", temperature, "sampling temperature (0: greedy)");
  app.add_option("--top-p", top_p, "nucleus sampling mass");
  app.add_option("--top-k", top_k, "sample among the K most likely tokens");
  app.add_option("--seed", seed, "random seed");
  app.add_flag("--no-color", no_color, "mark reasoning with lines instead of dimming it");
  app.add_flag("--stats", stats, "print speed statistics after each answer");
  app.add_option("-t,--threads", threads, "worker threads (0: one per CPU this process may use)");
  app.add_option("--kv-cache-gb", kv_gb, "KV cache budget in GiB (default: one full context)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  ModelBundle b = load_bundle(model_dir, false);
  const Tokenizer& tok = *b.tokenizer;
  AnswerOptions opt;
  opt.sampling = default_sampling(b.gen);
  if (temperature) opt.sampling.temperature = *temperature;
  if (top_p) opt.sampling.top_p = *top_p;
  if (top_k) opt.sampling.top_k = *top_k;
  if (seed) opt.sampling.seed = *seed;
  if (std::string why = validate(opt.sampling, b.model->info().vocab_size); !why.empty()) fail(why);
  opt.max_tokens = max_tokens;
  opt.color = !no_color && isatty(fileno(stdout));
  opt.interrupt = &g_interrupted;

  ThreadPool pool(threads);
  EngineConfig cfg;
  cfg.max_seqs = 1;
  cfg.eos_token_ids = b.eos;
  if (kv_gb > 0)
    cfg.kv_cache_gb = kv_gb;
  else
    cfg.kv_cache_tokens = b.model->info().max_context > 0 ? b.model->info().max_context : 4096;
  Engine engine(*b.model, &pool, cfg);

  // SIGINT without SA_RESTART: a Ctrl-C at the prompt interrupts the read instead of killing the process.
  struct sigaction sa = {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);

  const bool tty = isatty(fileno(stdin));
  nlohmann::json history = nlohmann::json::array();
  auto reset = [&] {
    history = nlohmann::json::array();
    if (!system.empty()) history.push_back({{"role", "system"}, {"content", system}});
  };
  reset();
  if (tty) std::fprintf(stderr, "deepmoe chat: %s. /reset clears the history, /exit leaves, Ctrl-C stops an answer.\n", b.dir.c_str());
  std::string line;
  while (true) {
    if (tty) std::fputs(opt.color ? "\x1b[1m> \x1b[0m" : "> ", stdout);
    std::fflush(stdout);
    g_interrupted = false;
    if (!std::getline(std::cin, line)) {
      if (g_interrupted && !std::cin.eof()) {
        std::cin.clear();
        std::fputs("\n(/exit to leave)\n", stdout);
        continue;
      }
      break;
    }
    if (line == "/exit" || line == "/quit") break;
    if (line == "/reset") {
      reset();
      std::fputs("(history cleared)\n", stdout);
      continue;
    }
    if (line.empty()) continue;
    history.push_back({{"role", "user"}, {"content", line}});
    const std::string text = render_chat_prompt(b, history);
    opt.parser = parser_config(b, text);
    std::vector<int32_t> ids = tok.encode(text, /*add_special_tokens=*/false);
    if (int64_t(ids.size()) >= engine.max_sequence_tokens()) {
      std::fprintf(stderr, "(the conversation is longer than the context: /reset to start again)\n");
      history.erase(history.end() - 1);
      continue;
    }
    Answer a;
    try {
      a = stream_answer(engine, tok, std::move(ids), opt);
    } catch (const Error& e) {
      std::fprintf(stderr, "(%s)\n", e.what());
      history.erase(history.end() - 1);
      continue;
    }
    if (g_interrupted) std::fputs("(stopped)\n", stdout);
    history.push_back({{"role", "assistant"}, {"content", a.content}});
    if (stats) std::fprintf(stderr, "%s\n", stats_line(a).c_str());
  }
  std::signal(SIGINT, SIG_DFL);
  return 0;
}

}  // namespace dm::cli
