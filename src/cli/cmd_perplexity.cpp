// deepmoe perplexity: exp(mean negative log-likelihood) of a model on a text file, with non-overlapping windows.
// Procedure (the one tools/train_tiny.py uses for the bundled model, tests/data/bundled/README.md): tokenize the
// whole file without special tokens; cut the ids into windows of context-1 tokens; run each as a fresh sequence
// [BOS, w_0 .. w_(n-2)] and score every w_i from the logits at position i. Without a BOS token a window holds
// `context` tokens run as they are, and its first token is not scored.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "server/gguf_tokenizer.h"
#include "cli/model_loading.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "core/thread_pool.h"
#include "model/model.h"

namespace dm::cli {

namespace {

// -log softmax(row)[target], in double.
double token_nll(const float* row, int64_t vocab, int32_t target) {
  const double mx = *std::max_element(row, row + vocab);
  double sum = 0;
  for (int64_t v = 0; v < vocab; ++v) sum += std::exp(double(row[v]) - mx);
  return -(double(row[target]) - mx - std::log(sum));
}

}  // namespace

int cmd_perplexity(int argc, char** argv) {
  CLI::App app{"Perplexity of a model on a text file (non-overlapping windows, each starting with BOS)"};
  std::string model_dir = default_model_dir(), file;
  int64_t context = 256;
  int threads = 0;
  bool json = false;
  app.add_option("-m,--model", model_dir, "model directory (Hugging Face layout) or .gguf file");
  app.add_option("-f,--file", file, "UTF-8 text file")->required();
  app.add_option("-c,--context,--ctx", context, "window length in tokens, BOS included (default 256)");
  app.add_option("-t,--threads", threads, "worker threads (0: one per CPU this process may use)");
  app.add_flag("--json", json, "print one JSON object instead of a sentence");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  Tokenizer tok = load_tokenizer(model_dir);
  std::unique_ptr<Model> model = load_model_with_progress(model_dir, {}, json);
  const ModelInfo& info = model->info();
  if (context < 2) fail("--context ", context, ": must be at least 2");
  if (context > info.max_context) fail("--context ", context, ": larger than the model's context ", info.max_context);

  const std::vector<int32_t> ids = tok.encode(read_file(file), false);
  std::optional<int32_t> bos = tok.bos_id();
  if (!bos && info.bos_token_id >= 0) bos = info.bos_token_id;
  const int64_t n_ids = int64_t(ids.size());
  const int64_t stride = bos ? context - 1 : context;  // text tokens per window
  if (n_ids < (bos ? 1 : 2)) fail(file, ": too few tokens (", n_ids, ") to score");

  const int block_size = 16;
  const int64_t n_blocks = (context + block_size - 1) / block_size;
  KvCache kv(info.n_layers, info.kv_width, block_size, n_blocks);
  std::vector<int32_t> blocks(static_cast<size_t>(n_blocks));
  for (int64_t b = 0; b < n_blocks; ++b) blocks[size_t(b)] = int32_t(b);
  ThreadPool pool(threads);
  std::vector<float> logits(size_t(context * info.vocab_size));  // [context, vocab]

  double nll = 0;
  int64_t n_scored = 0, n_windows = 0;
  std::vector<int32_t> input;
  for (int64_t start = 0; start < n_ids; start += stride) {
    const int64_t len = std::min(stride, n_ids - start);  // window tokens w_0 .. w_(len-1)
    input.clear();
    if (bos) input.push_back(*bos);
    input.insert(input.end(), ids.begin() + start, ids.begin() + start + (bos ? len - 1 : len));
    if (input.size() < 2 && !bos) break;  // a lone trailing token has nothing to be predicted from
    SeqInput s;
    s.tokens = input;
    s.n_past = 0;  // a fresh sequence: earlier windows' slots are overwritten
    s.blocks = blocks;
    s.logits = Logits::All;
    model->forward(std::span<const SeqInput>(&s, 1), kv, logits.data(), &pool);
    // Row i predicts input[i+1]; with BOS, input[i+1] = w_i for i < len-1 and the last row predicts w_(len-1).
    for (int64_t i = bos ? 0 : 1; i < len; ++i) {
      const int32_t target = ids[size_t(start + i)];
      const float* row = logits.data() + size_t((bos ? i : i - 1) * info.vocab_size);
      nll += token_nll(row, info.vocab_size, target);
      ++n_scored;
    }
    ++n_windows;
  }
  const double mean = nll / double(n_scored), ppl = std::exp(mean);
  if (json) {
    std::printf("{\"perplexity\": %.6f, \"mean_nll\": %.8f, \"n_scored_tokens\": %lld, \"n_windows\": %lld, "
                "\"context\": %lld}\n", ppl, mean, (long long)n_scored, (long long)n_windows, (long long)context);
  } else {
    std::printf("perplexity: %.4f (mean NLL %.6f nats/token) over %lld tokens in %lld windows of context %lld\n", ppl,
                mean, (long long)n_scored, (long long)n_windows, (long long)context);
  }
  return 0;
}

}  // namespace dm::cli
