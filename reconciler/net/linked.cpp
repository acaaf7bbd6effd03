// module() for programs that link the net code in (the tests): the table, nothing to load.
#include "reconciler/net/module.h"

namespace edgeplane::net {

Result<const Module*> module() {
  return &linkedTable();
}

int moduleFile() {
  return -1;
}

void inheritModuleFile(int) {}

}  // namespace edgeplane::net
