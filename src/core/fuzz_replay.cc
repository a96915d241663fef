// Stand-in driver for fuzz targets when libFuzzer is not used: runs LLVMFuzzerTestOneInput on every file of the
// directories or files given on the command line (a missing path is skipped), plus a few built-in edge inputs.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

static void run_one(const std::vector<char>& bytes) {
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  size_t n = 0;
  run_one({});
  run_one({'\0'});
  run_one(std::vector<char>(4096, '\xff'));
  for (int i = 1; i < argc; ++i) {
    std::error_code ec;
    std::vector<fs::path> files;
    if (fs::is_directory(argv[i], ec)) {
      for (auto& e : fs::recursive_directory_iterator(argv[i], ec))
        if (e.is_regular_file()) files.push_back(e.path());
    } else if (fs::is_regular_file(argv[i], ec)) {
      files.push_back(argv[i]);
    }
    for (auto& f : files) {
      std::ifstream in(f, std::ios::binary);
      std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      run_one(bytes);
      // Every prefix length class of each corpus file: truncation is the commonest corruption.
      for (size_t cut : {bytes.size() / 2, bytes.size() / 3, size_t(8), size_t(1)})
        if (cut < bytes.size()) run_one(std::vector<char>(bytes.begin(), bytes.begin() + long(cut)));
      ++n;
    }
  }
  std::printf("fuzz replay: %zu corpus files, all inputs handled\n", n);
  return 0;
}
