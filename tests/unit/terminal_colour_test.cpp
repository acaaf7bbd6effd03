// Colour in human output (issue 14): the plan renderer with and without colour, when colour is
// wanted (a terminal, NO_COLOR, TERM=dumb), "error:" painted, the escaping kept around colours,
// and the real binary on a pseudo-terminal, with NO_COLOR, through a pipe and with --json.
#include <gtest/gtest.h>
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "reconciler/cli/terminal_out.h"
#include "reconciler/core/plan.h"
#include "schema/terminal_text.h"
#include "tests/support/command.h"
#include "tests/support/temp_dir.h"

namespace edgeplane {
namespace {

namespace fs = std::filesystem;

const std::string kGreen(sgr::kGreen);
const std::string kYellow(sgr::kYellow);
const std::string kRed(sgr::kRed);
const std::string kReset(sgr::kReset);
// What a config could carry to drive a terminal: a colour of ours, a clear screen, a title.
const std::string kEvil = "\x1b[31mred\x1b[2J\x1b]0;owned\x07";

std::string withoutColours(std::string s) {
  for (const std::string& seq : {kGreen, kYellow, kRed, kReset}) {
    for (size_t at = s.find(seq); at != std::string::npos; at = s.find(seq, at)) {
      s.erase(at, seq.size());
    }
  }
  return s;
}

// Every ESC in `s` starts one of the colours edgeplane writes.
bool onlyOurEscapes(std::string_view s) {
  for (size_t at = s.find('\x1b'); at != std::string_view::npos; at = s.find('\x1b', at + 1)) {
    if (sgrAt(s.substr(at)) == 0) {
      return false;
    }
  }
  return true;
}

core::Plan samplePlan() {
  core::Plan p;
  p.host = "edge-1";
  core::Op create;
  create.action = core::Action::Create;
  create.kind = core::Kind::Namespace;
  create.name = "tenant-a";
  create.changes = {{"listen_port", "", "51820"}};
  core::Op update;
  update.action = core::Action::Update;
  update.kind = core::Kind::Forward;
  update.name = "web" + kEvil;  // a name from the config, escapes and all
  update.changes = {{"public_port", "8080", "8081" + kEvil}};
  update.drift = "changed by hand";
  core::Op remove;
  remove.action = core::Action::Delete;
  remove.kind = core::Kind::Peer;
  remove.name = "tenant-a vm-12";
  core::Op failing;
  failing.action = core::Action::Create;
  failing.kind = core::Kind::Certificate;
  failing.name = "app";
  failing.error = "cannot read\nthe key" + kEvil;
  p.ops = {create, update, remove, failing};
  p.foreign = {"namespace other" + kEvil};
  p.notes = {"api_key k is blocked" + kEvil};
  return p;
}

TEST(PlanColour, PlainTextIsUnchangedAndHasNoColour) {
  const std::string plain = core::renderText(samplePlan());
  EXPECT_EQ(plain, core::renderText(samplePlan(), core::TextStyle::Plain));
  EXPECT_NE(plain.find("  + namespace tenant-a\n"), std::string::npos) << plain;
  EXPECT_NE(plain.find("  ~ forward web" + kEvil), std::string::npos) << plain;
  EXPECT_NE(plain.find("  - peer tenant-a vm-12\n"), std::string::npos) << plain;
  EXPECT_NE(plain.find("  ! certificate app: cannot read\nthe key"), std::string::npos) << plain;
  // The raw config text stays for the stream to escape; no colour of ours is added.
  EXPECT_EQ(plain.find(kGreen), std::string::npos);
  EXPECT_EQ(plain.find(kYellow), std::string::npos);
}

TEST(PlanColour, SymbolsAreColouredAndConfigTextEscaped) {
  const std::string plain = core::renderText(samplePlan());
  const std::string colour = core::renderText(samplePlan(), core::TextStyle::Colour);
  EXPECT_NE(colour.find("  " + kGreen + "+" + kReset + " namespace tenant-a\n"), std::string::npos)
      << colour;
  EXPECT_NE(colour.find("  " + kYellow + "~" + kReset + " forward web"), std::string::npos)
      << colour;
  EXPECT_NE(colour.find("  " + kRed + "-" + kReset + " peer tenant-a vm-12\n"), std::string::npos)
      << colour;
  EXPECT_NE(colour.find("  " + kRed + "!" + kReset + " certificate app"), std::string::npos)
      << colour;
  // Take the colours away and it is the plain text as the stream escapes it (newlines kept):
  // the config's own escapes, its copy of our red included, never reach the terminal.
  EXPECT_EQ(withoutColours(colour), terminalLines(plain));
  EXPECT_TRUE(onlyOurEscapes(colour)) << colour;
  EXPECT_NE(colour.find("web\\x1b[31mred\\x1b[2J\\x1b]0;owned\\x07"), std::string::npos) << colour;
  // Exactly four colours, one per op, each reset.
  size_t colours = 0;
  for (size_t at = colour.find('\x1b'); at != std::string::npos; at = colour.find('\x1b', at + 1)) {
    ++colours;
  }
  EXPECT_EQ(colours, 8u) << colour;
}

TEST(PlanColour, AnEmptyPlanHasNothingToColour) {
  core::Plan p;
  p.host = "edge-1";
  EXPECT_EQ(core::renderText(p, core::TextStyle::Colour), core::renderText(p));
}

TEST(ColourWanted, OnlyOnATerminalWithoutNoColorOrADumbTerminal) {
  EXPECT_TRUE(cli::colourWanted(true, nullptr, nullptr));
  EXPECT_TRUE(cli::colourWanted(true, nullptr, "xterm-256color"));
  EXPECT_FALSE(cli::colourWanted(false, nullptr, "xterm-256color"));  // a pipe, a file
  // no-color.org: any non-empty value turns colour off; an empty one does not.
  EXPECT_FALSE(cli::colourWanted(true, "1", "xterm"));
  EXPECT_FALSE(cli::colourWanted(true, "0", "xterm"));
  EXPECT_FALSE(cli::colourWanted(true, "false", "xterm"));
  EXPECT_TRUE(cli::colourWanted(true, "", "xterm"));
  EXPECT_FALSE(cli::colourWanted(true, nullptr, "dumb"));
}

TEST(ColourWanted, ErrorIsPaintedWhereALineSaysIt) {
  const std::string red = kRed + "error:" + kReset;
  EXPECT_EQ(cli::paintErrors("a.toml:3:1: error: unknown key 'x'\n", true),
            "a.toml:3:1: " + red + " unknown key 'x'\n");
  EXPECT_EQ(cli::paintErrors("error: create wireguard t: busy\nerror: x\n", true),
            red + " create wireguard t: busy\n" + red + " x\n");
  // Not the start of a line, a location with spaces, or the word inside a message.
  EXPECT_EQ(cli::paintErrors("error: x", false), "error: x");
  EXPECT_EQ(cli::paintErrors("edgeplane plan: 2 error(s) in x\n", true),
            "edgeplane plan: 2 error(s) in x\n");
  EXPECT_EQ(cli::paintErrors("run 7 failed: error: x\n", true), "run 7 failed: error: x\n");
  EXPECT_EQ(cli::paintErrors("note\nf:1:2: error: y", true), "note\nf:1:2: " + red + " y");
}

TEST(ColourStream, ColoursPassOnlyThroughWriteStyledAndEverythingElseIsEscaped) {
  std::ostringstream sink;
  {
    cli::TerminalSafeBuf buf(sink.rdbuf(), true);
    std::ostream out(&buf);
    EXPECT_TRUE(cli::colourOn(out));
    out << "name " << kEvil << "\n";  // plain writes: our red too is escaped
    cli::writeStyled(out, kGreen + "+" + kReset + " ok " + "\x1b[2J" + "\n");
    out << "f:1:2: error: bad " << kEvil << "\n";
  }
  EXPECT_EQ(sink.str(), "name " + terminalText(kEvil) + "\n" + kGreen + "+" + kReset +
                            " ok \\x1b[2J\n" + "f:1:2: " + kRed + "error:" + kReset + " bad " +
                            terminalText(kEvil) + "\n");

  std::ostringstream plainSink;
  {
    cli::TerminalSafeBuf buf(plainSink.rdbuf());
    std::ostream out(&buf);
    EXPECT_FALSE(cli::colourOn(out));
    cli::writeStyled(out, kGreen + "+" + kReset + "\n");
    out << "f:1:2: error: bad\n";
    core::Plan p = samplePlan();
    cli::writePlan(out, p);
  }
  EXPECT_EQ(plainSink.str().find('\x1b'), std::string::npos) << plainSink.str();
  EXPECT_NE(plainSink.str().find("\\x1b[32m+\\x1b[0m\nf:1:2: error: bad\n"), std::string::npos);
  EXPECT_NE(plainSink.str().find("  ~ forward web\\x1b[31m"), std::string::npos);
}

// ---- the real binary ----

// `command` run by sh on a new pseudo-terminal: what the terminal received (stdout and stderr;
// the terminal turns "\n" into "\r\n").
std::string onTerminal(const std::string& command) {
  int master = -1;
  const pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
  if (pid < 0) {
    ADD_FAILURE() << "forkpty: " << std::strerror(errno);
    return "";
  }
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(master, buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;  // EIO once the child side is closed
    }
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(master);
  return out;
}

class ColourBinary : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(bad_);
    std::ofstream(bad_ / "bad.toml") << "[fleet]\nname = \"f\"\nfrobnicate = 1\n";
  }
  // Colour on unless the test says otherwise: a colour terminal, NO_COLOR unset.
  std::string run(const std::string& env, const std::string& args) const {
    return "env -u NO_COLOR TERM=xterm-256color " + env + " " + EDGEPLANE_BINARY + " " + args;
  }

  testing::TempDir dir_;
  const fs::path bad_ = dir_.path() / "bad";
  const std::string demo_ = std::string(EDGEPLANE_SOURCE_DIR) + "/examples/demo";
  const std::string green_ = kGreen + "+" + kReset + " ";
};

TEST_F(ColourBinary, APlanOnATerminalIsColoured) {
  const std::string plan = onTerminal(run("", "plan --offline --config " + demo_));
  EXPECT_NE(plan.find("  " + green_ + "namespace tenant-a"), std::string::npos) << plan;
  EXPECT_TRUE(onlyOurEscapes(plan)) << plan;
  // NO_COLOR set to anything non-empty: no colour; set but empty: colour (no-color.org).
  EXPECT_EQ(onTerminal(run("NO_COLOR=1", "plan --offline --config " + demo_)).find('\x1b'),
            std::string::npos);
  EXPECT_NE(onTerminal(run("NO_COLOR=", "plan --offline --config " + demo_)).find(green_),
            std::string::npos);
  EXPECT_EQ(onTerminal(run("TERM=dumb", "plan --offline --config " + demo_)).find('\x1b'),
            std::string::npos);
  // --json: never, on stdout or stderr.
  EXPECT_EQ(onTerminal(run("", "plan --offline --json --config " + demo_)).find('\x1b'),
            std::string::npos);
}

TEST_F(ColourBinary, APipeGetsNoColour) {
  const auto piped = testing::runCommand(run("", "plan --offline --config " + demo_));
  EXPECT_EQ(piped.status, 0) << piped.output;
  EXPECT_NE(piped.output.find("  + namespace tenant-a"), std::string::npos) << piped.output;
  EXPECT_EQ(piped.output.find('\x1b'), std::string::npos) << piped.output;
  // stdout to a pipe, stderr on the terminal: the plan has no colour (the summary on stderr
  // could; the plan is what scripts read).
  const std::string split = onTerminal(run("", "plan --offline --config " + demo_ + " | cat"));
  EXPECT_NE(split.find("  + namespace tenant-a"), std::string::npos) << split;
  EXPECT_EQ(split.find(green_), std::string::npos) << split;
}

TEST_F(ColourBinary, ErrorIsRedOnATerminalOnly) {
  const std::string red = kRed + "error:" + kReset;
  const std::string shown = onTerminal(run("", "validate --config " + bad_.string()));
  EXPECT_NE(shown.find("bad.toml:3:1: " + red + " unknown key 'frobnicate'"), std::string::npos)
      << shown;
  EXPECT_TRUE(onlyOurEscapes(shown)) << shown;
  EXPECT_EQ(onTerminal(run("NO_COLOR=yes", "validate --config " + bad_.string())).find('\x1b'),
            std::string::npos);
  const auto piped = testing::runCommand(run("", "validate --config " + bad_.string()));
  EXPECT_NE(piped.output.find("bad.toml:3:1: error: unknown key"), std::string::npos)
      << piped.output;
  EXPECT_EQ(piped.output.find('\x1b'), std::string::npos) << piped.output;
}

}  // namespace
}  // namespace edgeplane
