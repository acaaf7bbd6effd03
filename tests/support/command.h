// Test helpers for running the real tools (git, ssh-keygen, nft, …) and reading files.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace edgeplane::testing {

struct CommandResult {
  int status = -1;     // the exit status; -1 if it could not run or was killed
  std::string output;  // stdout and stderr together (runCommandStdout: stdout alone)
};

// Runs a shell command and captures its stdout alone; stderr goes to the test's own (the log).
// For output a parser reads, such as `ip -j`.
inline CommandResult runCommandStdout(const std::string& command) {
  CommandResult result;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    return result;
  }
  std::array<char, 4096> buf{};
  size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) {
    result.output.append(buf.data(), n);
  }
  const int raw = ::pclose(pipe);
  result.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return result;
}

// Runs a shell command and captures stdout and stderr together.
inline CommandResult runCommand(const std::string& command) {
  return runCommandStdout(command + " 2>&1");
}

inline std::string readFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

struct SplitResult {
  int status = -1;  // the exit status; -1 if it could not run or was killed
  std::string out;  // stdout alone: what a script parses
  std::string err;
};

// Runs a shell command with stdout and stderr captured apart, in files under `scratch`.
inline SplitResult runCommandSplit(const std::string& command,
                                   const std::filesystem::path& scratch) {
  const std::filesystem::path out = scratch / "stdout.txt";
  const std::filesystem::path err = scratch / "stderr.txt";
  const int raw =
      std::system(("{ " + command + "; } >" + out.string() + " 2>" + err.string()).c_str());
  return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, readFile(out), readFile(err)};
}

}  // namespace edgeplane::testing
