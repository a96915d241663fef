// deepmoe chat: not built yet.
#include "cli/commands.h"
#include "core/error.h"

namespace dm::cli {

int cmd_chat(int, char**) { fail("'chat' is not available in this build yet"); }

}  // namespace dm::cli
