// deepmoe perplexity: not built yet.
#include "cli/commands.h"
#include "core/error.h"

namespace dm::cli {

int cmd_perplexity(int, char**) { fail("'perplexity' is not available in this build yet"); }

}  // namespace dm::cli
