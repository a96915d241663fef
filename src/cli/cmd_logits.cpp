// deepmoe logits: the logits of every position of a token sequence, written as raw little-endian float32,
// row-major [n_tokens, vocab], so that any checkpoint can be compared with any reference (see DESIGN.md).
// Modes: prefill (one forward over all tokens), decode (one token at a time through the KV cache),
// mixed (prefill of --prefill N tokens, then decode).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "model/model.h"

namespace dm::cli {

namespace {

std::vector<int32_t> parse_tokens(const std::string& s, int64_t vocab) {
  std::vector<int32_t> out;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    std::string item = s.substr(i, j - i);
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size()) fail("--tokens: '", item, "' is not a token id");
    if (v < 0 || v >= vocab) fail("--tokens: token id ", v, " is outside the vocabulary [0, ", vocab, ")");
    out.push_back(int32_t(v));
    i = j + 1;
  }
  return out;
}

}  // namespace

int cmd_logits(int argc, char** argv) {
  CLI::App app{"Write the logits of every position as raw little-endian float32 [n_tokens, vocab]"};
  std::string model_dir = DM_SOURCE_DIR "/models/deepmoe-kjv-tiny", tokens_arg, out_path, mode = "prefill";
  int64_t n_prefill = 0;
  int threads = 0;
  LoadOptions load;
  app.add_option("--quant", load.quant, "quantize linear weights at load: q8_0, q4_0")
      ->check(CLI::IsMember({"q8_0", "q4_0"}));
  app.add_option("-m,--model", model_dir, "model directory (Hugging Face layout)");
  app.add_option("--tokens", tokens_arg, "comma-separated token ids, e.g. 0,320,350")->required();
  app.add_option("--mode", mode, "prefill | decode | mixed")->check(CLI::IsMember({"prefill", "decode", "mixed"}));
  app.add_option("--prefill", n_prefill, "mixed mode: number of tokens prefilled before decoding one at a time");
  app.add_option("-o,--out", out_path, "output file (raw float32)")->required();
  app.add_option("-t,--threads", threads, "worker threads (0: one per CPU this process may use)");
  // A checkpoint is checked against references computed in fp32: f32 activations unless asked for the fast path.
  load.bf16_activations = false;
  app.add_flag("--bf16-activations", load.bf16_activations,
               "BF16 / F16 weights: round prompt batches' activations to bf16 where that is faster, as run, serve "
               "and bench do");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  std::unique_ptr<Model> model = load_model(model_dir, load);
  const ModelInfo& info = model->info();
  std::vector<int32_t> tokens = parse_tokens(tokens_arg, info.vocab_size);
  const int64_t n = int64_t(tokens.size());
  if (mode == "prefill") n_prefill = n;
  if (mode == "decode") n_prefill = 0;
  if (mode == "mixed" && (n_prefill < 0 || n_prefill > n)) fail("--prefill ", n_prefill, " must be in [0, ", n, "]");

  const int block_size = 16;
  const int64_t n_blocks = (n + block_size - 1) / block_size;
  KvCache kv(info.n_layers, info.kv_width, block_size, n_blocks);
  std::vector<int32_t> blocks(static_cast<size_t>(n_blocks));
  for (int64_t b = 0; b < n_blocks; ++b) blocks[size_t(b)] = int32_t(b);
  ThreadPool pool(threads);

  std::vector<float> logits(static_cast<size_t>(n * info.vocab_size));
  auto run = [&](int64_t begin, int64_t end) {  // positions [begin, end) in one forward
    SeqInput s;
    s.tokens = std::span<const int32_t>(tokens.data() + begin, size_t(end - begin));
    s.n_past = begin;
    s.blocks = blocks;
    s.logits = Logits::All;
    model->forward(std::span<const SeqInput>(&s, 1), kv, logits.data() + begin * info.vocab_size, &pool);
  };
  if (n_prefill > 0) run(0, n_prefill);
  for (int64_t t = n_prefill; t < n; ++t) run(t, t + 1);

  FILE* f = std::fopen(out_path.c_str(), "wb");
  if (!f) fail(out_path, ": cannot create file");
  size_t wrote = std::fwrite(logits.data(), sizeof(float), logits.size(), f);
  if (std::fclose(f) != 0 || wrote != logits.size()) fail(out_path, ": write failed");
  std::fprintf(stderr, "wrote %lld x %lld float32 logits (%s) to %s\n", (long long)n, (long long)info.vocab_size,
               mode.c_str(), out_path.c_str());
  return 0;
}

}  // namespace dm::cli
