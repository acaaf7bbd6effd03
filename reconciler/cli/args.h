// The `edgeplane` command line as words: which options each command takes, and the arguments
// parsed against that table (no meaning given to them yet: options.h does that).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace edgeplane::cli {

// Every option belongs to the commands listed for it, and a command refuses every other one
// (issue 13, finding 5: `agent --rotate-key NS` once rotated the key on every run). A new
// option is a row in kOptions (args.cpp) and its name in the rows of the commands that take
// it; its help is its entry under "Options:" in main.cpp's usage text, which `edgeplane CMD
// --help` shows for CMD.
struct CommandSpec {
  std::string_view name;  // apikey's actions are commands of their own here: "apikey new"
  std::vector<std::string_view> options;
};

const std::vector<CommandSpec>& commandTable();
const CommandSpec* findCommand(std::string_view name);
bool takes(const CommandSpec& command, std::string_view option);

// --flag VALUE options and positional words, nothing cleverer.
struct Args {
  std::string command;
  std::vector<std::string> words;  // after the command: apikey's action and ID
  std::map<std::string, std::string, std::less<>> options;                // the last value of each
  std::map<std::string, std::vector<std::string>, std::less<>> repeated;  // every value
  std::vector<std::string> errors;
  bool help = false;     // --help, -h, `help` (as the command, or as apikey's action)
  bool version = false;  // --version

  std::optional<std::string> get(std::string_view name) const {
    auto it = options.find(name);
    return it != options.end() ? std::optional<std::string>(it->second) : std::nullopt;
  }
  // The row of commandTable() that applies: "apikey new" for apikey's actions.
  std::string spec() const {
    return command == "apikey" && !words.empty() ? "apikey " + words.front() : command;
  }
};

// Options and positional words; an unknown option, a missing value or an option of another
// command is an entry in `errors`.
Args parseArgs(int argc, char** argv);

}  // namespace edgeplane::cli
