// The options of a command (commands.h's Options) from its parsed arguments and the agent file:
// the source, the state directory, the durations; what does not make sense is said once here.
#pragma once

#include <optional>

#include "reconciler/cli/args.h"
#include "reconciler/cli/commands.h"

namespace edgeplane::cli {

// The options of a command other than validate, from the flags and the agent file; nullopt
// (after saying why, with `*status` the exit status: `usageError` for a flag that does not
// parse, 1 for a source that cannot be used) when they do not make sense. The agent calls it
// again on SIGHUP.
std::optional<Options> resolveOptions(const Args& args, int usageError, int* status);

}  // namespace edgeplane::cli
