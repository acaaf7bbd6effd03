// The proxy routing snapshot: built from the desired state, JSON codec (see snapshot.h).
#include "schema/snapshot.h"
