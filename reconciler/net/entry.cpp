// The net module's one exported symbol: its table (module.h), which loader.cpp looks up.
#include "reconciler/net/module.h"

extern "C" __attribute__((visibility("default"))) const edgeplane::net::Module*
edgeplane_net_module() {
  return &edgeplane::net::linkedTable();
}
