// deepmoe detokenize: not built yet.
#include "cli/commands.h"
#include "core/error.h"

namespace dm::cli {

int cmd_detokenize(int, char**) { fail("'detokenize' is not available in this build yet"); }

}  // namespace dm::cli
