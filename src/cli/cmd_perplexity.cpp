// deepmoe perplexity: exp(mean negative log-likelihood) of a text file under a model. The text is tokenized
// once and cut into windows of --ctx tokens; each window starts fresh (BOS first when the model has one) and
// every next-token prediction inside it is scored, computed in chunks through the KV cache.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/model_loading.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "core/thread_pool.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace dm::cli {

int cmd_perplexity(int argc, char** argv) {
  CLI::App app{"Perplexity of a model on a text file", "deepmoe perplexity"};
  std::string model_dir = default_model_dir(), file;
  int64_t ctx = 512, chunk = 128, max_windows = 0;
  int threads = 0;
  app.add_option("-m,--model", model_dir, "model directory (Hugging Face layout)");
  app.add_option("-f,--file", file, "UTF-8 text file")->required();
  app.add_option("-c,--ctx", ctx, "tokens per window")->check(CLI::Range(int64_t(2), int64_t(1) << 20));
  app.add_option("--chunk", chunk, "tokens per forward call")->check(CLI::Range(int64_t(1), int64_t(1) << 16));
  app.add_option("--max-windows", max_windows, "score at most this many windows (0: all)");
  app.add_option("-t,--threads", threads, "worker threads (0: all hardware threads)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  Tokenizer tok = Tokenizer::from_dir(model_dir);
  std::unique_ptr<Model> model = load_model_with_progress(model_dir, {});
  const ModelInfo& info = model->info();
  if (info.max_context > 0 && ctx > info.max_context) fail("--ctx ", ctx, " exceeds the model's context of ", info.max_context);
  const std::vector<int32_t> ids = tok.encode(read_file(file), /*add_special_tokens=*/false);
  std::optional<int32_t> bos = info.bos_token_id >= 0 ? std::optional<int32_t>(info.bos_token_id) : tok.bos_id();
  const int64_t text_per_window = bos ? ctx - 1 : ctx;
  if (int64_t(ids.size()) < 2) fail(file, ": needs at least 2 tokens of text, has ", ids.size());

  ThreadPool pool(threads);
  const int bs = 16;
  KvCache kv(info.n_layers, info.kv_width, bs, (ctx + bs - 1) / bs);
  std::vector<int32_t> table(size_t(kv.n_blocks()));
  std::iota(table.begin(), table.end(), 0);
  std::vector<float> logits;
  double nll = 0;
  int64_t n_scored = 0, n_windows = 0;
  const bool tty = isatty(fileno(stderr));
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t start = 0; start + 1 < ids.size(); start += size_t(text_per_window)) {
    if (max_windows > 0 && n_windows >= max_windows) break;
    std::vector<int32_t> w;
    if (bos) w.push_back(*bos);
    const size_t end = std::min(ids.size(), start + size_t(text_per_window));
    w.insert(w.end(), ids.begin() + long(start), ids.begin() + long(end));
    if (w.size() < 2) break;
    for (int64_t c0 = 0; c0 < int64_t(w.size()) - 1; c0 += chunk) {
      const int64_t c1 = std::min<int64_t>(int64_t(w.size()) - 1, c0 + chunk);  // predict w[c0+1 .. c1]
      SeqInput in{std::span<const int32_t>(w).subspan(size_t(c0), size_t(c1 - c0)), c0, table, Logits::All};
      logits.resize(size_t(c1 - c0) * size_t(info.vocab_size));
      model->forward(std::span<const SeqInput>(&in, 1), kv, logits.data(), &pool);
      for (int64_t i = 0; i < c1 - c0; ++i) {
        const float* row = logits.data() + size_t(i) * size_t(info.vocab_size);
        float mx = row[0];
        for (int64_t v = 1; v < info.vocab_size; ++v) mx = std::max(mx, row[v]);
        double sum = 0;
        for (int64_t v = 0; v < info.vocab_size; ++v) sum += std::exp(double(row[v]) - mx);
        nll -= double(row[w[size_t(c0 + i + 1)]]) - mx - std::log(sum);
        n_scored++;
      }
    }
    n_windows++;
    if (tty) std::fprintf(stderr, "\rwindow %lld: perplexity so far %.4f", (long long)n_windows, std::exp(nll / double(n_scored)));
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (tty) std::fprintf(stderr, "\n");
  std::printf("perplexity: %.4f (mean NLL %.4f nats over %lld tokens, %lld windows of %lld, %.1f tok/s)\n",
              std::exp(nll / double(n_scored)), nll / double(n_scored), (long long)n_scored, (long long)n_windows,
              (long long)ctx, double(n_scored) / s);
  return 0;
}

}  // namespace dm::cli
