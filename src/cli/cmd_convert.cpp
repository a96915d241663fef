// deepmoe convert: not built yet.
#include "cli/commands.h"
#include "core/error.h"

namespace dm::cli {

int cmd_convert(int, char**) { fail("'convert' is not available in this build yet"); }

}  // namespace dm::cli
