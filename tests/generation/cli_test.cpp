// The deepmoe command as a user runs it: synth a small DeepSeek-V3-shaped model (the v3-base config shrunk with
// --set) with the DeepSeek-R1 tokenizer, then run (chat template, seeds, stop strings split across tokens),
// bench --json, perplexity, an fp8 model and a sharded one.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "engine/engine.h"
#include "loader/weights.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

extern char** environ;

namespace dm {
namespace {

namespace fs = std::filesystem;
const std::string kData = DM_TEST_DATA;

struct Result {
  int rc = -1;
  std::string out, err;
};

// Runs deepmoe with `args` (no shell) and `input` on stdin, capturing stdout and stderr through files.
Result deepmoe(const std::vector<std::string>& args, const std::string& input = "") {
  static int counter = 0;
  const fs::path tmp = fs::temp_directory_path() / ("dm_gen_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
  const std::string out = tmp.string() + ".out", err = tmp.string() + ".err", in = tmp.string() + ".in";
  std::ofstream(in) << input;
  std::vector<std::string> all = {DEEPMOE_BIN};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, in.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid;
  Result r;
  if (posix_spawn(&pid, DEEPMOE_BIN, &fa, nullptr, argv.data(), environ) == 0) {
    int status = 0;
    waitpid(pid, &status, 0);
    r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  }
  posix_spawn_file_actions_destroy(&fa);
  r.out = read_file(out);
  r.err = read_file(err);
  fs::remove(out);
  fs::remove(err);
  fs::remove(in);
  return r;
}

std::vector<std::string> shrink() {
  return {"--set", "num_hidden_layers=2", "--set", "hidden_size=64", "--set", "intermediate_size=128",
          "--set", "moe_intermediate_size=32", "--set", "n_routed_experts=8", "--set", "num_experts_per_tok=2",
          "--set", "n_group=2", "--set", "topk_group=1", "--set", "num_attention_heads=2",
          "--set", "num_key_value_heads=2", "--set", "q_lora_rank=32", "--set", "kv_lora_rank=32",
          "--set", "qk_nope_head_dim=16", "--set", "qk_rope_head_dim=8", "--set", "v_head_dim=16",
          "--set", "first_k_dense_replace=1", "--set", "max_position_embeddings=4096"};
}

class Cli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = (fs::temp_directory_path() / ("dm_gen_model_" + std::to_string(getpid()))).string();
    std::vector<std::string> args = {"synth", "--config", kData + "/fixtures/configs/deepseek-v3-base", "--out", dir_,
                                     "--tokenizer", kData + "/fixtures/tokenizers/deepseek-r1", "--seed", "7", "-t", "2"};
    for (const std::string& s : shrink()) args.push_back(s);
    Result r = deepmoe(args);
    ASSERT_EQ(r.rc, 0) << r.err;
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static std::string dir_;
};
std::string Cli::dir_;

TEST_F(Cli, SynthWritesTheShapesOfTheConfig) {
  nlohmann::json cfg = nlohmann::json::parse(read_file(dir_ + "/config.json"));
  EXPECT_EQ(cfg["num_hidden_layers"], 2);
  EXPECT_FALSE(cfg.contains("quantization_config"));  // bf16: the source's fp8 config is gone
  std::vector<TensorSpec> specs = model_tensor_specs(dir_ + "/config.json");
  WeightStore w = WeightStore::open_safetensors(dir_);
  for (const TensorSpec& s : specs) EXPECT_NE(w.find(s.name), nullptr) << s.name;
  EXPECT_TRUE(fs::exists(dir_ + "/tokenizer.json"));
  EXPECT_TRUE(fs::exists(dir_ + "/generation_config.json"));
}

TEST_F(Cli, RunStreamsAnAnswerWithStats) {
  Result r = deepmoe({"run", "-m", dir_, "-p", "Why is the sky blue?", "-n", "6", "--seed", "1", "-t", "2"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("generated 6 tokens"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("prefill"), std::string::npos);
  EXPECT_FALSE(r.out.empty());
  // Same seed, same answer; another seed, another one.
  Result again = deepmoe({"run", "-m", dir_, "-p", "Why is the sky blue?", "-n", "6", "--seed", "1", "-t", "2"});
  EXPECT_EQ(again.out, r.out);
  Result other = deepmoe({"run", "-m", dir_, "-p", "Why is the sky blue?", "-n", "6", "--seed", "2", "-t", "2"});
  EXPECT_NE(other.out, r.out);
}

TEST_F(Cli, RunRejectsWhatDoesNotFit) {
  Result r = deepmoe({"run", "-m", dir_, "-p", "hi", "-n", "5000", "-t", "2"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("exceeds"), std::string::npos) << r.err;
  r = deepmoe({"run", "-m", dir_ + "/nonexistent", "-p", "hi"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("nonexistent"), std::string::npos) << r.err;
}

TEST_F(Cli, StopStringSplitAcrossTokens) {
  // Generate greedily in-process, find two consecutive non-empty pieces, and stop on their concatenation.
  Tokenizer tok = Tokenizer::from_dir(dir_);
  std::unique_ptr<Model> model = load_model(dir_);
  const std::string prompt = "In the beginning";
  std::vector<int32_t> ids = tok.encode(prompt, true);
  EngineConfig cfg;
  cfg.kv_cache_tokens = 256;
  ThreadPool pool(2);
  Engine engine(*model, &pool, cfg);
  std::vector<std::string> pieces;
  StreamDecoder dec(tok, true);
  Request req;
  req.prompt = ids;
  req.max_tokens = 16;
  req.sampling.temperature = 0;
  req.ignore_eos = true;
  req.on_event = [&](const StreamEvent& e) {
    if (e.token >= 0) pieces.push_back(dec.push(e.token));
    return true;
  };
  ASSERT_TRUE(engine.submit(std::move(req)).ok());
  engine.run_until_idle();
  std::string full;
  for (const std::string& p : pieces) full += p;
  std::string stop;
  for (size_t k = 2; k + 1 < pieces.size() && stop.empty(); ++k)
    if (pieces[k].size() >= 2 && pieces[k + 1].size() >= 2 && full.find('\n') == std::string::npos)
      stop = pieces[k].substr(pieces[k].size() - 2) + pieces[k + 1].substr(0, 2);  // straddles the boundary
  ASSERT_FALSE(stop.empty()) << full;
  const std::string want = full.substr(0, full.find(stop));
  Result r = deepmoe({"run", "-m", dir_, "--raw", "-p", prompt, "-n", "16", "--temperature", "0", "--stop", stop,
                      "-t", "2", "--no-color", "-q"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, want + "\n") << "stop '" << stop << "' in '" << full << "'";
  // Without the stop string the whole text comes out.
  r = deepmoe({"run", "-m", dir_, "--raw", "-p", prompt, "-n", "16", "--temperature", "0", "-t", "2", "--no-color", "-q"});
  EXPECT_EQ(r.out, full + "\n");
}

TEST_F(Cli, ChatKeepsHistoryReusesItsKvAndResets) {
  Result r = deepmoe({"chat", "-m", dir_, "-n", "5", "--seed", "4", "-t", "2", "--stats", "--no-color"},
                     "Hello there, this first message is long enough to fill a whole block of the cache\nAnd then?\n"
                     "/reset\nAgain\n/exit\n");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("(history cleared)"), std::string::npos) << r.out;
  std::vector<std::string> stats;
  for (size_t at = 0; (at = r.err.find("prompt ", at)) != std::string::npos; at += 7) stats.push_back(r.err.substr(at, r.err.find('\n', at) - at));
  ASSERT_EQ(stats.size(), 3u) << r.err;
  EXPECT_EQ(stats[0].find("cached"), std::string::npos) << stats[0];
  EXPECT_NE(stats[1].find("cached"), std::string::npos) << stats[1];  // the first turn's KV was reused
}

TEST_F(Cli, BenchJson) {
  Result r = deepmoe({"bench", "-m", dir_, "-p", "16", "-n", "4", "-r", "2", "-t", "2", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  for (const char* k : {"prefill_tok_s", "decode_tok_s"}) {
    EXPECT_GT(j[k]["median"].get<double>(), 0) << k;
    EXPECT_LE(j[k]["min"].get<double>(), j[k]["median"].get<double>()) << k;
    EXPECT_GE(j[k]["max"].get<double>(), j[k]["median"].get<double>()) << k;
  }
  EXPECT_GT(j["read_bandwidth_gb_s"].get<double>(), 0);
  // the run's limit lies within the probes taken around the runs
  EXPECT_LE(j["read_bandwidth_gb_s_min"].get<double>(), j["read_bandwidth_gb_s"].get<double>());
  EXPECT_GE(j["read_bandwidth_gb_s_max"].get<double>(), j["read_bandwidth_gb_s"].get<double>());
  EXPECT_GT(j["weight_bytes_per_token"].get<double>(), 0);
  EXPECT_TRUE(j["pinned"].is_boolean());
  // each repetition with the probes around it; the medians are over these
  ASSERT_EQ(j["runs"].size(), size_t(j["repetitions"].get<int>()));
  std::vector<double> tg;
  for (const auto& run : j["runs"]) {
    tg.push_back(run["decode_tok_s"].get<double>());
    EXPECT_GT(run["prefill_tok_s"].get<double>(), 0);
    EXPECT_GE(run["probe_before_gb_s"].get<double>(), j["read_bandwidth_gb_s_min"].get<double>());
    EXPECT_LE(run["probe_after_gb_s"].get<double>(), j["read_bandwidth_gb_s_max"].get<double>());
    EXPECT_GT(run["decode_bandwidth_share"].get<double>(), 0);
  }
  EXPECT_GE(*std::max_element(tg.begin(), tg.end()), j["decode_tok_s"]["median"].get<double>());
  EXPECT_LE(*std::min_element(tg.begin(), tg.end()), j["decode_tok_s"]["median"].get<double>());
}

TEST_F(Cli, BenchAtDepth) {
  Result r = deepmoe({"bench", "-m", dir_, "-p", "8", "-n", "4", "-d", "40", "-r", "1", "-t", "2"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("pp8 @ d40 "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tg4 @ d40 "), std::string::npos) << r.out;
  r = deepmoe({"bench", "-m", dir_, "-p", "8", "-n", "4", "-d", "1000000", "-r", "1"});
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("exceeds the model's context"), std::string::npos) << r.err;
}

TEST_F(Cli, Perplexity) {
  const std::string text = (fs::temp_directory_path() / ("dm_ppl_" + std::to_string(getpid()) + ".txt")).string();
  {
    std::ofstream f(text);
    for (int i = 0; i < 20; ++i) f << "In the beginning God created the heaven and the earth.\n";
  }
  Result r = deepmoe({"perplexity", "-m", dir_, "-f", text, "--ctx", "64", "-t", "2"});
  fs::remove(text);
  ASSERT_EQ(r.rc, 0) << r.err;
  const size_t at = r.out.find("perplexity: ");
  ASSERT_NE(at, std::string::npos) << r.out;
  const double ppl = std::stod(r.out.substr(at + 12));
  EXPECT_TRUE(std::isfinite(ppl) && ppl > 1) << r.out;
}

TEST(CliSynth, Fp8AndShards) {
  const std::string dir = (fs::temp_directory_path() / ("dm_gen_fp8_" + std::to_string(getpid()))).string();
  std::vector<std::string> args = {"synth", "--config", kData + "/fixtures/configs/deepseek-v3-base", "--out", dir,
                                   "--tokenizer", kData + "/fixtures/tokenizers/deepseek-r1", "--dtype", "fp8",
                                   "--shard-gb", "0.01", "-t", "2"};
  for (const std::string& s : shrink()) args.push_back(s);
  args.push_back("--set");
  args.push_back("hidden_size=160");  // not a multiple of 128: partial scale blocks
  Result r = deepmoe(args);
  ASSERT_EQ(r.rc, 0) << r.err;
  nlohmann::json cfg = nlohmann::json::parse(read_file(dir + "/config.json"));
  EXPECT_EQ(cfg["quantization_config"]["quant_method"], "fp8");
  ASSERT_TRUE(fs::exists(dir + "/model.safetensors.index.json"));
  WeightStore w = WeightStore::open_safetensors(dir);
  const StoredTensor* q = w.find("model.layers.1.mlp.experts.0.up_proj.weight");
  const StoredTensor* s = w.find("model.layers.1.mlp.experts.0.up_proj.weight_scale_inv");
  ASSERT_NE(q, nullptr);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(q->view.dtype, DType::F8_E4M3);
  EXPECT_EQ(s->view.shape, (std::vector<int64_t>{1, 2}));  // [ceil(32/128), ceil(160/128)]
  EXPECT_EQ(w.find("lm_head.weight")->view.dtype, DType::BF16);
  Result run = deepmoe({"run", "-m", dir, "-p", "Hello", "-n", "4", "--seed", "3", "-t", "2"});
  EXPECT_EQ(run.rc, 0) << run.err;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace dm
