// deepmoe run: not built yet.
#include "cli/commands.h"
#include "core/error.h"

namespace dm::cli {

int cmd_run(int, char**) { fail("'run' is not available in this build yet"); }

}  // namespace dm::cli
