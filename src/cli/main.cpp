// deepmoe: run and serve DeepSeek-V3/R1-class MoE models. Dispatches to one function per subcommand.
#include <malloc.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <string_view>

#include "cli/commands.h"
#include "core/error.h"

namespace {

struct Command {
  const char* name;
  int (*fn)(int, char**);
  const char* help;
};

constexpr Command kCommands[] = {
    {"run", dm::cli::cmd_run, "generate an answer to one prompt, streamed to the terminal"},
    {"chat", dm::cli::cmd_chat, "interactive multi-turn chat"},
    {"serve", dm::cli::cmd_serve, "OpenAI/DeepSeek-compatible HTTP server"},
    {"bench", dm::cli::cmd_bench, "prefill / decode tokens per second against the hardware limits"},
    {"inspect", dm::cli::cmd_inspect, "architecture, parameters, dtypes, memory of a model"},
    {"logits", dm::cli::cmd_logits, "write per-position logits as raw float32"},
    {"perplexity", dm::cli::cmd_perplexity, "perplexity of a model on a text file"},
    {"tokenize", dm::cli::cmd_tokenize, "text on stdin -> JSON array of token ids"},
    {"detokenize", dm::cli::cmd_detokenize, "JSON array of token ids on stdin -> text"},
    {"template", dm::cli::cmd_template, "render the chat template for a request"},
    {"synth", dm::cli::cmd_synth, "write a random-weight model with the shapes of a config"},
    {"convert", dm::cli::cmd_convert, "write a model directory as a GGUF file"},
};

void usage(FILE* out) {
  std::fprintf(out, "usage: deepmoe <command> [options]   (deepmoe <command> --help for its options)\n\ncommands:\n");
  for (const Command& c : kCommands) std::fprintf(out, "  %-11s %s\n", c.name, c.help);
}

}  // namespace

int main(int argc, char** argv) {
  // A forward pass allocates activation buffers of up to tens of MB per layer (MoE prefill: tokens x experts x
  // hidden). By default glibc maps and unmaps each of those, and the kernel zeroes every fresh page: a third of
  // the time of a MoE prefill. Blocks up to 32 MiB (glibc's largest threshold) come from the heap instead, and
  // freed memory stays there for the next layer.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  std::string_view name = argv[1];
  for (const Command& c : kCommands) {
    if (name != c.name) continue;
    try {
      return c.fn(argc - 1, argv + 1);
    } catch (const dm::Error& e) {
      std::fprintf(stderr, "deepmoe %s: %s\n", c.name, e.what());
      return 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "deepmoe %s: error: %s\n", c.name, e.what());
      return 1;
    }
  }
  std::fprintf(stderr, "deepmoe: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return 2;
}
