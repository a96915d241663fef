// Default model location and loading with progress (see model_loading.h).
#include "cli/model_loading.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "core/error.h"

namespace dm::cli {

namespace fs = std::filesystem;

std::string human_bytes(double b) {
  const char* unit[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (b >= 1000 && u < 4) b /= 1000, ++u;
  char s[32];
  std::snprintf(s, sizeof s, "%.1f %s", b, unit[u]);
  return s;
}

std::string default_model_dir() {
  const fs::path rel = fs::path("models") / "deepmoe-kjv-tiny";
  const fs::path src = fs::path(DM_SOURCE_DIR) / rel;
  if (fs::exists(src / "config.json")) return src.string();
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (fs::path dir : {exe.parent_path(), exe.parent_path().parent_path(),
                         exe.parent_path().parent_path() / "share" / "deepmoe"})
      if (fs::exists(dir / rel / "config.json")) return (dir / rel).string();
  }
  return src.string();
}

namespace {

// Physical memory in bytes (0 if unknown).
double physical_memory() {
  const long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && size > 0 ? double(pages) * double(size) : 0.0;
}

// Reads the files through once, reporting progress.
void prefetch(const std::vector<fs::path>& files, double total, bool tty) {
  std::vector<char> buf(size_t(16) << 20);
  double done = 0;
  int last_step = -1;
  const auto t0 = std::chrono::steady_clock::now();
  for (const fs::path& f : files) {
    const int fd = ::open(f.c_str(), O_RDONLY);
    if (fd < 0) continue;  // load_model reports it
    for (ssize_t n; (n = ::read(fd, buf.data(), buf.size())) > 0;) {
      done += double(n);
      const int pct = int(100.0 * done / total);
      if (tty && pct != last_step) {
        const int width = 30, fill = pct * width / 100;
        std::fprintf(stderr, "\rloading weights [%.*s%*s] %3d%% %s / %s", fill,
                     "##############################", width - fill, "", pct, human_bytes(done).c_str(),
                     human_bytes(total).c_str());
        last_step = pct;
      } else if (!tty && pct / 25 != last_step) {
        std::fprintf(stderr, "loading weights: %d%% (%s of %s)\n", pct, human_bytes(done).c_str(),
                     human_bytes(total).c_str());
        last_step = pct / 25;
      }
    }
    ::close(fd);
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (tty) std::fprintf(stderr, "\n");
  std::fprintf(stderr, "loading weights: read %s in %.1f s\n", human_bytes(total).c_str(), s);
}

}  // namespace

std::unique_ptr<Model> load_model_with_progress(const std::string& path, const LoadOptions& opts, bool quiet) {
  std::vector<fs::path> files;
  double total = 0;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    for (const auto& e : fs::directory_iterator(path, ec)) {
      if (e.path().extension() != ".safetensors" && e.path().extension() != ".gguf") continue;
      files.push_back(e.path());
      total += double(e.file_size(ec));
    }
  } else if (fs::is_regular_file(path, ec)) {
    files.push_back(path);
    total = double(fs::file_size(path, ec));
  }
  const double ram = physical_memory();
  const bool tty = isatty(fileno(stderr));
  if (!quiet && total > 256e6) {
    if (ram == 0 || total < 0.7 * ram)
      prefetch(files, total, tty);
    else
      std::fprintf(stderr, "loading weights: %s (more than 70%% of RAM: mapped, paged in on use)\n",
                   human_bytes(total).c_str());
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<Model> m = load_model(path, opts);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!quiet && (total > 256e6 || s > 1.0))
    std::fprintf(stderr, "loaded %s (%s) in %.1f s\n", m->info().model_type.c_str(), human_bytes(total).c_str(), s);
  return m;
}

}  // namespace dm::cli
