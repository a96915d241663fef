// Finding and loading a model from the command line: the default model directory (the bundled demo model in the
// source tree or next to the executable), and loading with visible progress: the weight files are read through
// once (a progress bar on a terminal, plain lines otherwise) so that the first token doesn't pay for page faults,
// when they fit in memory; then load_model() maps and checks them.
#pragma once
#include <memory>
#include <string>

#include "model/model.h"

namespace dm::cli {

// <source dir>/models/deepmoe-kjv-tiny if it exists, else models/deepmoe-kjv-tiny next to (or one level above)
// the executable; the source-tree path when none exists (the loader then names it in its error).
std::string default_model_dir();

// Loads with progress on stderr (quiet: no output). Throws dm::Error like load_model().
std::unique_ptr<Model> load_model_with_progress(const std::string& path, const LoadOptions& opts, bool quiet = false);

// "1.2 GB", "350.0 MB", ...
std::string human_bytes(double bytes);

}  // namespace dm::cli
