// The subcommands of `deepmoe`. Each takes the arguments after its name and returns the exit code;
// a dm::Error escaping one is printed once by main() as "deepmoe: <message>" with exit code 1.
#pragma once

namespace dm::cli {

int cmd_logits(int argc, char** argv);
int cmd_inspect(int argc, char** argv);
int cmd_tokenize(int argc, char** argv);
int cmd_detokenize(int argc, char** argv);
int cmd_template(int argc, char** argv);
int cmd_run(int argc, char** argv);
int cmd_chat(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_synth(int argc, char** argv);
int cmd_serve(int argc, char** argv);
int cmd_convert(int argc, char** argv);
int cmd_perplexity(int argc, char** argv);

}  // namespace dm::cli
