// deepmoe logits: not built yet.
#include "cli/commands.h"
#include "core/error.h"

namespace dm::cli {

int cmd_logits(int, char**) { fail("'logits' is not available in this build yet"); }

}  // namespace dm::cli
