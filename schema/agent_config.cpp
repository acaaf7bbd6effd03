// The host-local agent file: loader and checks (see agent_config.h).
#include "schema/agent_config.h"
