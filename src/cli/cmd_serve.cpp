// deepmoe serve: not built yet.
#include "cli/commands.h"
#include "core/error.h"

namespace dm::cli {

int cmd_serve(int, char**) { fail("'serve' is not available in this build yet"); }

}  // namespace dm::cli
