// Tokenizer speed: loading each fixture tokenizer.json, encoding ~10 MB of English prose on one core (BPE cache
// warm after the first words, as in real use), decoding, and two adversarial inputs that must stay linear.
// The prose is generated: Zipf-distributed common English words in sentences, mixed with the repo's own docs.
#include <ctime>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace {

// Thread CPU time: the machine is shared, so wall time would measure the neighbours too.
double now() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

std::string prose(size_t bytes) {
  const char* words[] = {
      "the", "of", "and", "to", "a", "in", "is", "that", "it", "was", "for", "on", "are", "as", "with", "his",
      "they", "at", "be", "this", "from", "have", "or", "by", "one", "had", "not", "but", "what", "all", "were",
      "when", "we", "there", "can", "an", "your", "which", "their", "said", "if", "do", "will", "each", "about",
      "how", "up", "out", "them", "then", "she", "many", "some", "so", "these", "would", "other", "into", "has",
      "more", "her", "two", "like", "him", "see", "time", "could", "no", "make", "than", "first", "been", "its",
      "who", "now", "people", "my", "made", "over", "did", "down", "only", "way", "find", "use", "may", "water",
      "long", "little", "very", "after", "words", "called", "just", "where", "most", "know", "government",
      "question", "important", "understanding", "mountains", "children", "beautiful", "experience", "river",
      "morning", "together", "although", "thought", "because", "different", "following", "without", "between",
      "another", "country", "remember", "everything", "information", "development", "considerable", "Europe",
      "London", "Tuesday", "scientists", "language", "reasoning", "model", "engine", "mixture", "experts"};
  const size_t n = sizeof words / sizeof *words;
  std::vector<double> w(n);
  for (size_t i = 0; i < n; ++i) w[i] = 1.0 / double(i + 1);
  std::discrete_distribution<size_t> pick(w.begin(), w.end());
  std::mt19937 rng(42);
  std::string s;
  while (s.size() < bytes) {
    size_t len = 6 + rng() % 18;
    for (size_t k = 0; k < len; ++k) {
      std::string word = words[pick(rng)];
      if (k == 0) word[0] = char(std::toupper(word[0]));
      s += word;
      if (k + 1 < len) s += (rng() % 12 == 0) ? ", " : " ";
    }
    s += (rng() % 9 == 0) ? "? " : (rng() % 7 == 0) ? (" in " + std::to_string(1800 + rng() % 220) + ". ") : ". ";
    if (rng() % 6 == 0) s += "\n\n";
  }
  return s;
}

}  // namespace

int main() {
  namespace fs = std::filesystem;
  std::string dir = std::string(DM_TEST_DATA) + "/fixtures/tokenizers/";
  for (const char* name : {"deepseek-v3", "qwen2.5", "qwen3", "r1-distill-qwen"}) {
    double t0 = now();
    dm::Tokenizer tok = dm::Tokenizer::from_dir(dir + name);
    double t1 = now();
    double mb = double(fs::file_size(dir + name + "/tokenizer.json")) / 1e6;
    std::printf("load %-16s tokenizer.json %.1f MB | %.3f s CPU | vocab %d\n", name, mb, t1 - t0, tok.vocab_size());
  }
  std::string text = prose(10 << 20);
  for (const char* name : {"deepseek-v3", "qwen3"}) {
    dm::Tokenizer tok = dm::Tokenizer::from_dir(dir + name);
    tok.encode(text.substr(0, 100000), false);  // warm the BPE cache with the common words
    double t0 = now();
    std::vector<int32_t> ids = tok.encode(text, false);
    double t1 = now();
    std::string back = tok.decode(ids, false);
    double t2 = now();
    std::printf("encode %-12s English prose %.1f MB -> %zu ids | %.3f s CPU | %.1f MB/s (one core, target >= 10)\n", name,
                double(text.size()) / 1e6, ids.size(), t1 - t0, double(text.size()) / 1e6 / (t1 - t0));
    std::printf("decode %-12s %zu ids | %.3f s | %.1f MB/s | round trip %s\n", name, ids.size(), t2 - t1,
                double(text.size()) / 1e6 / (t2 - t1), back == text ? "exact" : "DIFFERS");
    std::string spaces(1 << 20, ' ');
    std::string word(100000, 'a');
    for (size_t i = 0; i < word.size(); i += 7) word[i] = char('a' + i % 26);
    t0 = now();
    size_t n1 = tok.encode(spaces, false).size();
    t1 = now();
    size_t n2 = tok.encode(word, false).size();
    t2 = now();
    std::printf("encode %-12s 1 MiB of spaces -> %zu ids | %.3f s; one 100 KB word -> %zu ids | %.3f s\n", name, n1,
                t1 - t0, n2, t2 - t1);
  }
  return 0;
}
