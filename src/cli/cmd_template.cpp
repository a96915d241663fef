// deepmoe template: not built yet.
#include "cli/commands.h"
#include "core/error.h"

namespace dm::cli {

int cmd_template(int, char**) { fail("'template' is not available in this build yet"); }

}  // namespace dm::cli
