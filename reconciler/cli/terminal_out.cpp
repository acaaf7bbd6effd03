// The escaping stream buffer for human output (see terminal_out.h).
#include "reconciler/cli/terminal_out.h"

#include <ostream>

#include "schema/terminal_text.h"

namespace edgeplane::cli {

TerminalSafeBuf::~TerminalSafeBuf() {
  if (!held_.empty()) {
    const std::string rest = terminalLines(held_);
    out_->sputn(rest.data(), static_cast<std::streamsize>(rest.size()));
  }
  out_->pubsync();
}

void TerminalSafeBuf::put(std::string_view s) {
  std::lock_guard lock(mu_);
  held_.append(s);
  const size_t keep = incompleteUtf8Tail(held_);
  const std::string out = terminalLines(std::string_view(held_).substr(0, held_.size() - keep));
  held_.erase(0, held_.size() - keep);
  out_->sputn(out.data(), static_cast<std::streamsize>(out.size()));
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

TerminalSafeStream::TerminalSafeStream(std::ostream& stream)
    : stream_(stream), original_(stream.rdbuf()), buf_(original_) {
  stream_.rdbuf(&buf_);
}

TerminalSafeStream::~TerminalSafeStream() {
  stream_.flush();
  stream_.rdbuf(original_);
}

}  // namespace edgeplane::cli
