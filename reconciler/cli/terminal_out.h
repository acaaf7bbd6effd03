// Human output made safe for a terminal: std::cout and std::cerr filtered through one escaping
// function (schema/terminal_text.h), so no commit author, subject, refusal detail, key name or
// peer's message printed by any command can move the cursor, retitle the window or worse.
#pragma once

#include <iosfwd>
#include <mutex>
#include <streambuf>
#include <string>
#include <string_view>

namespace edgeplane::cli {

// A stream buffer that escapes what is written to it (terminalLines: '\n' kept) and passes it
// on to `out`. A UTF-8 sequence split across writes is held back until it is complete.
class TerminalSafeBuf : public std::streambuf {
 public:
  explicit TerminalSafeBuf(std::streambuf* out) : out_(out) {}
  ~TerminalSafeBuf() override;  // passes on (escaped) whatever is still held back

 protected:
  // Interface
  int_type overflow(int_type c) override;
  std::streamsize xsputn(const char* s, std::streamsize n) override;
  int sync() override;

 private:
  void put(std::string_view s);

  std::streambuf* out_;
  std::mutex mu_;     // the agent writes its log from more than one thread
  std::string held_;  // the start of a UTF-8 sequence whose rest has not been written yet
};

// Puts a TerminalSafeBuf in front of `stream` for the lifetime of this object.
class TerminalSafeStream {
 public:
  explicit TerminalSafeStream(std::ostream& stream);
  ~TerminalSafeStream();
  TerminalSafeStream(const TerminalSafeStream&) = delete;
  TerminalSafeStream& operator=(const TerminalSafeStream&) = delete;

 private:
  std::ostream& stream_;
  std::streambuf* original_;
  TerminalSafeBuf buf_;
};

}  // namespace edgeplane::cli
