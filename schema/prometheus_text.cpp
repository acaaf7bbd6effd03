// Prometheus text exposition format writer (see prometheus_text.h).
#include "schema/prometheus_text.h"

#include <charconv>
#include <cmath>

namespace edgeplane::prometheus {

namespace {

std::string escape(std::string_view s, bool quote) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quote && c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string escapeLabelValue(std::string_view value) {
  return escape(value, true);
}

void family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out.append("# HELP ").append(name).append(" ").append(escape(help, false)).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

std::string formatValue(double value) {
  if (std::isnan(value)) {
    return "NaN";
  }
  if (std::isinf(value)) {
    return value > 0 ? "+Inf" : "-Inf";
  }
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  return ec == std::errc() ? std::string(buf, end) : "NaN";
}

void sampleText(std::string& out, std::string_view name, const Labels& labels,
                std::string_view value) {
  out.append(name);
  if (!labels.empty()) {
    out += '{';
    bool first = true;
    for (const auto& [label, text] : labels) {
      if (!first) {
        out += ',';
      }
      first = false;
      out.append(label).append("=\"").append(escapeLabelValue(text)).append("\"");
    }
    out += '}';
  }
  out.append(" ").append(value).append("\n");
}

void histogram(std::string& out, std::string_view name, const Labels& labels,
               std::span<const double> bounds, std::span<const uint64_t> perBucket, double sum) {
  const std::string base(name);
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= bounds.size(); ++i) {
    cumulative += i < perBucket.size() ? perBucket[i] : 0;
    const std::string le = i < bounds.size() ? formatValue(bounds[i]) : "+Inf";
    Labels withLe = labels;
    withLe.emplace_back("le", le);
    sample(out, base + "_bucket", withLe, cumulative);
  }
  sample(out, base + "_sum", labels, sum);
  sample(out, base + "_count", labels, cumulative);
}

}  // namespace edgeplane::prometheus
