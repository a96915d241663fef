// deepmoe inspect: not built yet.
#include "cli/commands.h"
#include "core/error.h"

namespace dm::cli {

int cmd_inspect(int, char**) { fail("'inspect' is not available in this build yet"); }

}  // namespace dm::cli
