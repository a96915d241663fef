// deepmoe run: one prompt, answered on stdout as it is generated (reasoning shown apart), then one line of
// statistics on stderr. The prompt goes through the model's chat template unless --raw.
#include <CLI/CLI.hpp>

#include <csignal>
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

int cmd_run(int argc, char** argv) {
  CLI::App app{"Generate an answer to one prompt, streamed to the terminal", "deepmoe run"};
  std::string model_dir = default_model_dir(), prompt, system;
  int64_t max_tokens = 0;
  std::optional<float> temperature, top_p, min_p, repetition_penalty;
  std::optional<int> top_k;
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;
  bool raw = false, quiet = false, no_color = false;
  int threads = 0;
  double kv_gb = 0;
  app.add_option("-m,--model", model_dir, "model directory (Hugging Face layout)");
  app.add_option("-p,--prompt", prompt, "the prompt")->required();
  app.add_option("-s,--system", system, "system message");
  app.add_option("-n,--max-tokens", max_tokens, "most tokens to generate (default: up to the context)")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 40));
  app.add_option("--temperature", temperature, "sampling temperature (0: greedy); default from generation_config.json");
  app.add_option("--top-p", top_p, "nucleus sampling mass");
  app.add_option("--top-k", top_k, "sample among the K most likely tokens (0: off)");
  app.add_option("--min-p", min_p, "drop tokens less likely than min_p times the most likely");
  app.add_option("--repetition-penalty", repetition_penalty, "penalty for tokens already seen (1: off)");
  app.add_option("--seed", seed, "random seed (same seed and prompt: same answer)");
  app.add_option("--stop", stop, "stop string (repeatable); not printed");
  app.add_flag("--raw", raw, "no chat template: the prompt is given to the model as it is");
  app.add_flag("-q,--quiet", quiet, "no loading progress and statistics");
  app.add_flag("--no-color", no_color, "mark reasoning with lines instead of dimming it");
  app.add_option("-t,--threads", threads, "worker threads (0: one per CPU this process may use)");
  app.add_option("--kv-cache-gb", kv_gb, "KV cache budget in GiB (default: what the answer needs)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  ModelBundle b = load_bundle(model_dir, quiet);
  const Tokenizer& tok = *b.tokenizer;
  std::vector<int32_t> ids;
  std::optional<chat::ParserConfig> parser;
  if (raw) {
    ids = tok.encode(prompt, /*add_special_tokens=*/true);
  } else {
    nlohmann::json messages = nlohmann::json::array();
    if (!system.empty()) messages.push_back({{"role", "system"}, {"content", system}});
    messages.push_back({{"role", "user"}, {"content", prompt}});
    const std::string text = render_chat_prompt(b, messages);
    parser = parser_config(b, text);
    ids = tok.encode(text, /*add_special_tokens=*/false);
  }

  AnswerOptions opt;
  opt.sampling = default_sampling(b.gen);
  if (temperature) opt.sampling.temperature = *temperature;
  if (top_p) opt.sampling.top_p = *top_p;
  if (top_k) opt.sampling.top_k = *top_k;
  if (min_p) opt.sampling.min_p = *min_p;
  if (repetition_penalty) opt.sampling.repetition_penalty = *repetition_penalty;
  if (seed) opt.sampling.seed = *seed;
  if (std::string why = validate(opt.sampling, b.model->info().vocab_size); !why.empty()) fail(why);
  opt.max_tokens = max_tokens;
  opt.stop = stop;
  opt.parser = parser;
  opt.color = !no_color && isatty(fileno(stdout));
  opt.interrupt = &g_interrupted;

  ThreadPool pool(threads);
  EngineConfig cfg;
  cfg.max_seqs = 1;
  cfg.eos_token_ids = b.eos;
  const int64_t ctx = b.model->info().max_context > 0 ? b.model->info().max_context : 4096;
  if (kv_gb > 0)
    cfg.kv_cache_gb = kv_gb;
  else
    cfg.kv_cache_tokens = std::min<int64_t>(ctx, max_tokens > 0 ? int64_t(ids.size()) + max_tokens : ctx);
  Engine engine(*b.model, &pool, cfg);
  std::signal(SIGINT, on_sigint);
  Answer a = stream_answer(engine, tok, std::move(ids), opt);
  std::signal(SIGINT, SIG_DFL);
  if (!quiet) std::fprintf(stderr, "%s\n", stats_line(a).c_str());
  return 0;
}

}  // namespace dm::cli
