// deepmoe synth: not built yet.
#include "cli/commands.h"
#include "core/error.h"

namespace dm::cli {

int cmd_synth(int, char**) { fail("'synth' is not available in this build yet"); }

}  // namespace dm::cli
