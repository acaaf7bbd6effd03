// A progress line on a terminal (see progress.h).
#include "reconciler/cli/progress.h"

#include <sys/ioctl.h>

#include "schema/terminal_text.h"

namespace edgeplane::cli {
namespace {

// The text cut to at most `max` columns, one column per UTF-8 code point (what a progress line
// holds: names, a URL, numbers). Never cuts inside a sequence.
std::string cutToColumns(std::string_view text, size_t max, size_t& width) {
  width = 0;
  size_t end = 0;
  while (end < text.size()) {
    size_t next = end + 1;
    while (next < text.size() && (static_cast<unsigned char>(text[next]) & 0xC0) == 0x80) {
      ++next;
    }
    if (width == max) {
      break;
    }
    ++width;
    end = next;
  }
  return std::string(text.substr(0, end));
}

size_t terminalColumns(int fd) {
  winsize ws{};
  if (::ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1) {
    return ws.ws_col;
  }
  return 80;
}

}  // namespace

std::string progressRedraw(std::string_view text, size_t& shownColumns, size_t columns) {
  size_t width = 0;
  std::string line = cutToColumns(terminalText(text), columns > 1 ? columns - 1 : 0, width);
  std::string out = "\r" + line;
  if (shownColumns > width) {
    out += std::string(shownColumns - width, ' ');
    out += "\r" + line;
  }
  shownColumns = width;
  return out;
}

std::string progressClear(size_t& shownColumns) {
  if (shownColumns == 0) {
    return "";
  }
  std::string out = "\r" + std::string(shownColumns, ' ') + "\r";
  shownColumns = 0;
  return out;
}

std::string fetchProgressText(std::string_view url, std::chrono::milliseconds elapsed) {
  return "fetching " + std::string(url) + " (" + std::to_string(elapsed.count() / 1000) + "s)";
}

std::function<void(std::chrono::milliseconds)> fetchProgress(Progress& progress, std::string url) {
  return [&progress, url = std::move(url)](std::chrono::milliseconds elapsed) {
    progress.update(fetchProgressText(url, elapsed));
  };
}

std::string applyProgressText(size_t step, std::string_view what) {
  return "applying: step " + std::to_string(step) + ": " + std::string(what);
}

Progress::Progress(int fd, std::chrono::milliseconds delay)
    : fd_(fd), terminal_(::isatty(fd) == 1), showFrom_(std::chrono::steady_clock::now() + delay) {}

Progress::~Progress() {
  clear();
}

void Progress::update(std::string_view text) {
  if (!terminal_ || std::chrono::steady_clock::now() < showFrom_) {
    return;
  }
  write(progressRedraw(text, shown_, terminalColumns(fd_)));
}

void Progress::clear() {
  if (terminal_) {
    write(progressClear(shown_));
  }
}

void Progress::write(const std::string& bytes) const {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
    if (n <= 0) {
      return;  // a progress line is not worth an error
    }
    done += static_cast<size_t>(n);
  }
}

}  // namespace edgeplane::cli
