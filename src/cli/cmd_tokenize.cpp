// deepmoe tokenize: not built yet.
#include "cli/commands.h"
#include "core/error.h"

namespace dm::cli {

int cmd_tokenize(int, char**) { fail("'tokenize' is not available in this build yet"); }

}  // namespace dm::cli
