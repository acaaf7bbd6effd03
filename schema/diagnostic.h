// Config diagnostics: collected, sorted, printed as `file:line:col: error: message`.
#pragma once

#include <string>
#include <vector>

#include "schema/model.h"

namespace edgeplane {

struct Diagnostic {
  SourceLoc loc;
  std::string message;
  auto operator<=>(const Diagnostic&) const = default;
};

class Diagnostics {
 public:
  void error(const SourceLoc& loc, std::string message);
  // Takes over every diagnostic of `other`.
  void append(Diagnostics&& other);
  bool empty() const { return items_.empty(); }
  size_t size() const { return items_.size(); }
  // Sorted by file, line, column, message; duplicates removed.
  std::vector<Diagnostic> sorted() const;
  // Every diagnostic, one per line, in sorted order.
  std::string format() const;

 private:
  std::vector<Diagnostic> items_;
};

std::string formatDiagnostic(const Diagnostic& d);

// A user's value in double quotes for a message; very long values are cut (with their size)
// so one bad value cannot flood the output.
std::string quote(std::string_view value);

}  // namespace edgeplane
