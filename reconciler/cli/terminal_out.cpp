// The escaping stream buffer for human output (see terminal_out.h).
#include "reconciler/cli/terminal_out.h"

#include <unistd.h>

#include <cstdlib>
#include <ostream>

#include "reconciler/core/plan.h"
#include "schema/terminal_text.h"

namespace edgeplane::cli {

bool colourWanted(bool terminal, const char* noColor, const char* term) {
  const bool noColorSet = noColor != nullptr && *noColor != '\0';
  const bool dumb = term != nullptr && std::string_view(term) == "dumb";
  return terminal && !noColorSet && !dumb;
}

bool colourWanted(int fd) {
  return colourWanted(::isatty(fd) != 0, std::getenv("NO_COLOR"), std::getenv("TERM"));
}

std::string paintErrors(std::string_view text, bool atLineStart) {
  constexpr std::string_view kError = "error:";
  std::string out;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t newline = text.find('\n', pos);
    const size_t end = newline == std::string_view::npos ? text.size() : newline + 1;
    const std::string_view line = text.substr(pos, end - pos);
    size_t at = std::string_view::npos;
    if (atLineStart) {
      const size_t located = line.find(": error: ");
      if (line.starts_with("error: ")) {
        at = 0;
      } else if (located != std::string_view::npos &&
                 line.substr(0, located).find(' ') == std::string_view::npos) {
        at = located + 2;
      }
    }
    if (at == std::string_view::npos) {
      out += line;
    } else {
      out += line.substr(0, at);
      out += sgr::kRed;
      out += kError;
      out += sgr::kReset;
      out += line.substr(at + kError.size());
    }
    atLineStart = true;
    pos = end;
  }
  return out;
}

TerminalSafeBuf::~TerminalSafeBuf() {
  if (!held_.empty()) {
    const std::string rest = terminalLines(held_);
    out_->sputn(rest.data(), static_cast<std::streamsize>(rest.size()));
  }
  out_->pubsync();
}

void TerminalSafeBuf::put(std::string_view s) {
  std::lock_guard lock(mu_);
  // Nothing held back (the usual case): `s` is escaped as it is, without a copy first.
  std::string_view text = s;
  if (!held_.empty()) {
    held_.append(s);
    text = held_;
  }
  const size_t keep = incompleteUtf8Tail(text);
  std::string out = terminalLines(text.substr(0, text.size() - keep));
  held_ = std::string(text.substr(text.size() - keep));  // a copy first: `text` may be held_
  if (out.empty()) {
    return;
  }
  if (colour_) {
    const bool ends = out.back() == '\n';
    out = paintErrors(out, atLineStart_);
    atLineStart_ = ends;
  }
  out_->sputn(out.data(), static_cast<std::streamsize>(out.size()));
}

void TerminalSafeBuf::passColour(std::string_view sequence) {
  if (!colour_ || sgrAt(sequence) != sequence.size() || sequence.empty()) {
    return;
  }
  std::lock_guard lock(mu_);
  if (!held_.empty()) {  // an incomplete character before a colour: it stays incomplete
    const std::string rest = terminalLines(held_);
    held_.clear();
    out_->sputn(rest.data(), static_cast<std::streamsize>(rest.size()));
  }
  out_->sputn(sequence.data(), static_cast<std::streamsize>(sequence.size()));
}

TerminalSafeBuf::int_type TerminalSafeBuf::overflow(int_type c) {
  if (!traits_type::eq_int_type(c, traits_type::eof())) {
    const char ch = traits_type::to_char_type(c);
    put(std::string_view(&ch, 1));
  }
  return traits_type::not_eof(c);
}

std::streamsize TerminalSafeBuf::xsputn(const char* s, std::streamsize n) {
  put(std::string_view(s, static_cast<size_t>(n)));
  return n;
}

int TerminalSafeBuf::sync() {
  std::lock_guard lock(mu_);
  return out_->pubsync();
}

TerminalSafeStream::TerminalSafeStream(std::ostream& stream, bool colour)
    : stream_(stream), original_(stream.rdbuf()), buf_(original_, colour) {
  stream_.rdbuf(&buf_);
}

TerminalSafeStream::~TerminalSafeStream() {
  stream_.flush();
  stream_.rdbuf(original_);
}

bool colourOn(const std::ostream& out) {
  const auto* buf = dynamic_cast<const TerminalSafeBuf*>(out.rdbuf());
  return buf != nullptr && buf->colour();
}

void writeStyled(std::ostream& out, std::string_view text) {
  auto* buf = dynamic_cast<TerminalSafeBuf*>(out.rdbuf());
  if (buf == nullptr || !buf->colour()) {
    out << text;
    return;
  }
  size_t pos = 0;
  for (size_t esc = text.find('\x1b'); esc != std::string_view::npos;
       esc = text.find('\x1b', esc + 1)) {
    const size_t n = sgrAt(text.substr(esc));
    if (n == 0) {
      continue;  // not a colour: escaped by the stream with the text around it
    }
    out << text.substr(pos, esc - pos);
    out.flush();
    buf->passColour(text.substr(esc, n));
    pos = esc + n;
    esc = pos - 1;
  }
  out << text.substr(pos);
}

void writePlan(std::ostream& out, const core::Plan& plan) {
  writeStyled(out, core::renderText(
                       plan, colourOn(out) ? core::TextStyle::Colour : core::TextStyle::Plain));
}

}  // namespace edgeplane::cli
