// Collected config diagnostics and their one-line text form.
#include "schema/diagnostic.h"

#include <algorithm>

namespace edgeplane {

void Diagnostics::error(const SourceLoc& loc, std::string message) {
  items_.push_back(Diagnostic{loc, std::move(message)});
}

void Diagnostics::append(Diagnostics&& other) {
  items_.insert(items_.end(), std::make_move_iterator(other.items_.begin()),
                std::make_move_iterator(other.items_.end()));
  other.items_.clear();
}

std::vector<Diagnostic> Diagnostics::sorted() const {
  std::vector<Diagnostic> out = items_;
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string formatDiagnostic(const Diagnostic& d) {
  std::string out = d.loc.file;
  if (d.loc.line != 0) {
    out += ":" + std::to_string(d.loc.line) + ":" + std::to_string(d.loc.column);
  }
  return out + ": error: " + d.message;
}

std::string quote(std::string_view value) {
  constexpr size_t kMax = 256;  // a DNS name (253) is never cut
  if (value.size() <= kMax) {
    return "\"" + std::string(value) + "\"";
  }
  return "\"" + std::string(value.substr(0, kMax)) + "…\" (" + std::to_string(value.size()) +
         " bytes)";
}

std::string Diagnostics::format() const {
  std::string out;
  for (const auto& d : sorted()) {
    out += formatDiagnostic(d);
    out += '\n';
  }
  return out;
}

}  // namespace edgeplane
