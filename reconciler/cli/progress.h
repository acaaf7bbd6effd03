// Progress for a fetch or a long apply: one line on stderr, only when stderr is a terminal,
// updated in place with \r and cleared at the end, so logs, pipes and tests see nothing of it.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace edgeplane::cli {

// What replaces a progress line `shownColumns` wide with `text` (made terminal-safe, cut to
// `columns` - 1 so that the line never wraps): "\r", the text, and spaces over whatever is left
// of the old line. `shownColumns` becomes the new line's width. Pure.
std::string progressRedraw(std::string_view text, size_t& shownColumns, size_t columns);
// What clears a progress line `shownColumns` wide, the cursor back at its start; "" when no
// line is shown. `shownColumns` becomes 0. Pure.
std::string progressClear(size_t& shownColumns);

// "fetching URL (3s)": the line a fetch shows (`url` as it may be shown, without a password).
std::string fetchProgressText(std::string_view url, std::chrono::milliseconds elapsed);
// "applying: step 4: create wireguard tenant-a": the line of an apply's driver call.
std::string applyProgressText(size_t step, std::string_view what);

// A fetch's tick (fetch_child.h) that shows "fetching URL (Ns)" on `progress`.
class Progress;
std::function<void(std::chrono::milliseconds)> fetchProgress(Progress& progress, std::string url);

// The line itself. Nothing is written unless `fd` is a terminal, and nothing before `delay`
// has passed since it was made: short work shows nothing at all.
class Progress {
 public:
  explicit Progress(int fd = STDERR_FILENO,
                    std::chrono::milliseconds delay = std::chrono::milliseconds(500));
  ~Progress();  // clears the line
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void update(std::string_view text);
  void clear();

 private:
  void write(const std::string& bytes) const;

  int fd_;
  bool terminal_;
  std::chrono::steady_clock::time_point showFrom_;
  size_t shown_ = 0;  // the columns the line on the terminal takes now
};

}  // namespace edgeplane::cli
