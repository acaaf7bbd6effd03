// Human output made safe for a terminal: std::cout and std::cerr filtered through one escaping
// function (schema/terminal_text.h), so no commit author, subject, refusal detail, key name or
// peer's message printed by any command can move the cursor, retitle the window or worse; and
// coloured where a terminal wants it (the plan's symbols, "error:"), by this code alone.
#pragma once

#include <iosfwd>
#include <mutex>
#include <streambuf>
#include <string>
#include <string_view>

namespace edgeplane::core {
struct Plan;
}  // namespace edgeplane::core

namespace edgeplane::cli {

// Whether human output to a stream uses colour (issue 14), as git and Terraform decide: only on
// a terminal, and never when NO_COLOR is set to a non-empty value (no-color.org) or TERM is
// "dumb". `noColor` and `term` are the variables' values (nullptr: unset).
bool colourWanted(bool terminal, const char* noColor, const char* term);
// The same for file descriptor `fd` (isatty) and this process's environment.
bool colourWanted(int fd);

// `text` (already escaped) with each "error:" that begins a line, or follows the location a
// diagnostic begins with (`file:line:col: error: …`, a location without spaces), in red.
// `atLineStart`: whether `text` begins a line.
std::string paintErrors(std::string_view text, bool atLineStart);

// A stream buffer that escapes what is written to it (terminalLines: '\n' kept) and passes it
// on to `out`. A UTF-8 sequence split across writes is held back until it is complete. With
// `colour`, "error:" is painted (paintErrors) and writeStyled can pass the colours of
// schema/terminal_text.h through; no byte written to the stream can make one.
class TerminalSafeBuf : public std::streambuf {
 public:
  explicit TerminalSafeBuf(std::streambuf* out, bool colour = false) : out_(out), colour_(colour) {}
  ~TerminalSafeBuf() override;  // passes on (escaped) whatever is still held back

  bool colour() const { return colour_; }
  // Writes `sequence`, one of the colours of schema/terminal_text.h (anything else is ignored),
  // as it is: only writeStyled calls it.
  void passColour(std::string_view sequence);

 protected:
  // Interface
  int_type overflow(int_type c) override;
  std::streamsize xsputn(const char* s, std::streamsize n) override;
  int sync() override;

 private:
  void put(std::string_view s);

  std::streambuf* out_;
  const bool colour_;
  std::mutex mu_;     // the agent writes its log from more than one thread
  std::string held_;  // the start of a UTF-8 sequence whose rest has not been written yet
  bool atLineStart_ = true;
};

// Puts a TerminalSafeBuf in front of `stream` for the lifetime of this object.
class TerminalSafeStream {
 public:
  explicit TerminalSafeStream(std::ostream& stream, bool colour = false);
  ~TerminalSafeStream();
  TerminalSafeStream(const TerminalSafeStream&) = delete;
  TerminalSafeStream& operator=(const TerminalSafeStream&) = delete;

 private:
  std::ostream& stream_;
  std::streambuf* original_;
  TerminalSafeBuf buf_;
};

// Whether `out` is a TerminalSafeStream's stream with colour on.
bool colourOn(const std::ostream& out);

// Writes `text`, which may hold the colours of schema/terminal_text.h around escaped text (as
// core::renderText makes it with TextStyle::Colour), to `out`: on a stream with colour on the
// colours pass to the terminal, everything else goes through the stream's escaping as usual.
void writeStyled(std::ostream& out, std::string_view text);

// A plan as text on `out`, coloured when `out` has colour on.
void writePlan(std::ostream& out, const core::Plan& plan);

}  // namespace edgeplane::cli
