// edgeplane-proxy entry point. The data path arrives with the proxy issues; for now it
// reports its version and refuses to pretend to serve traffic.
#include <cstdio>
#include <cstring>

#include "edgeplane_version.h"

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--version") == 0) {
      std::printf("edgeplane-proxy %s\n", EDGEPLANE_VERSION);
      return 0;
    }
  }
  std::fprintf(stderr, "edgeplane-proxy %s: the data path is not implemented yet; use --version\n",
               EDGEPLANE_VERSION);
  return 1;
}
