// deepmoe bench: not built yet.
#include "cli/commands.h"
#include "core/error.h"

namespace dm::cli {

int cmd_bench(int, char**) { fail("'bench' is not available in this build yet"); }

}  // namespace dm::cli
