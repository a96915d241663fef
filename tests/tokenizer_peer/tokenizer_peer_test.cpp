// Peer test: @huggingface/transformers (run by node) and deepmoe encode the same generated corpus with every
// fixture tokenizer folder that has a tokenizer.json, with and without special tokens; every id must agree, and
// deepmoe's decode must give the text back (NFC-normalized where the tokenizer normalizes).
// Without node or tests/peer/node_modules the test fails under CI=true and is skipped otherwise.
#include <gtest/gtest.h>
#include <utf8proc.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "corpus.h"
#include "tokenizer/tokenizer.h"

namespace fs = std::filesystem;
using namespace dm;

namespace {

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string nfc(const std::string& s) {
  utf8proc_uint8_t* out = nullptr;
  auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), utf8proc_ssize_t(s.size()), &out,
                        utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  std::string r = n >= 0 ? std::string(reinterpret_cast<char*>(out), size_t(n)) : s;
  std::free(out);
  return r;
}

std::string show(const std::vector<int32_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size() && i < 40; ++i) s += (i ? " " : "") + std::to_string(v[i]);
  return s + (v.size() > 40 ? " ...]" : "]");
}

bool ci() {
  const char* v = std::getenv("CI");
  return v && std::string(v) == "true";
}

}  // namespace

TEST(TokenizerPeer, AgreesWithTransformersJs) {
  const fs::path root = fs::path(DM_TEST_DATA) / "fixtures" / "tokenizers";
  std::vector<std::string> dirs;
  for (const auto& e : fs::directory_iterator(root))
    if (fs::exists(e.path() / "tokenizer.json")) dirs.push_back(e.path().filename().string());
  std::sort(dirs.begin(), dirs.end());
  ASSERT_GE(dirs.size(), 5u);

  bool have_node = std::system("node --version > /dev/null 2>&1") == 0;
  bool have_modules = fs::exists(fs::path(DM_NODE_MODULES) / "@huggingface" / "transformers");
  if (!have_node || !have_modules) {
    std::string why = !have_node ? "node is not installed" : "tests/peer/node_modules lacks @huggingface/transformers "
                                                             "(run scripts/setup.sh)";
    if (ci()) FAIL() << why;
    GTEST_SKIP() << why;
  }

  std::vector<std::string> corpus = peer::make_corpus();
  ASSERT_GE(corpus.size(), 300u);
  const fs::path work = fs::path(DM_PEER_WORK_DIR);
  const fs::path corpus_path = work / "peer_corpus.json", out_path = work / "peer_ids.json";
  {
    std::ofstream out(corpus_path, std::ios::binary);
    out << nlohmann::json(corpus).dump();
  }
  fs::remove(out_path);
  std::string cmd = "node '" DM_PEER_SCRIPT "' '" DM_NODE_MODULES "' '" + root.string() + "' '" +
                    corpus_path.string() + "' '" + out_path.string() + "'";
  for (const auto& d : dirs) cmd += " '" + d + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "the peer script failed: " << cmd;
  nlohmann::json peer = nlohmann::json::parse(read_all(out_path));

  for (const auto& d : dirs) {
    SCOPED_TRACE(d);
    Tokenizer tok = Tokenizer::from_dir((root / d).string());
    ASSERT_TRUE(peer.contains(d));
    const auto& plain = peer[d]["plain"];
    const auto& special = peer[d]["special"];
    ASSERT_EQ(plain.size(), corpus.size());
    size_t mismatches = 0, n_ids = 0;
    for (size_t i = 0; i < corpus.size(); ++i) {
      const std::string& text = corpus[i];
      std::vector<int32_t> want = plain[i].get<std::vector<int32_t>>();
      std::vector<int32_t> got = tok.encode(text, false);
      std::vector<int32_t> want_s = special[i].get<std::vector<int32_t>>();
      std::vector<int32_t> got_s = tok.encode(text, true);
      n_ids += want.size();
      if (got != want || got_s != want_s) {
        if (++mismatches <= 5)
          ADD_FAILURE() << "#" << i << " " << nlohmann::json(text).dump() << "\n  deepmoe " << show(got)
                        << "\n  peer    " << show(want) << "\n  with special: deepmoe " << show(got_s) << " peer "
                        << show(want_s);
        continue;
      }
      std::string back = tok.decode(got, false);
      if (back != text && back != nfc(text))
        ADD_FAILURE() << "#" << i << " does not round-trip: " << nlohmann::json(text).dump() << " -> "
                      << nlohmann::json(back).dump();
    }
    EXPECT_GT(n_ids, 20000u) << "the peer gave suspiciously few ids";
    std::printf("%s: %zu strings, %zu ids compared\n", d.c_str(), corpus.size(), n_ids);
    EXPECT_EQ(mismatches, 0u) << "strings whose ids differ from the peer's, out of " << corpus.size();
  }
}
