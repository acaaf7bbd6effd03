// The diagnostics JSON document (see json_report.h).
#include "reconciler/cli/json_report.h"

#include "schema/json_text.h"

namespace edgeplane::cli {
namespace {

void appendDiagnostics(std::string& out, const std::vector<Diagnostic>& diagnostics) {
  out += "\"diagnostics\":[";
  for (size_t i = 0; i < diagnostics.size(); ++i) {
    const Diagnostic& d = diagnostics[i];
    out += i == 0 ? "{" : ",{";
    out += "\"severity\":\"error\",\"file\":";
    if (d.loc.file.empty()) {
      out += "null";
    } else {
      appendJsonString(out, d.loc.file.str());
    }
    if (d.loc.line == 0) {
      out += ",\"line\":null,\"column\":null";
    } else {
      out +=
          ",\"line\":" + std::to_string(d.loc.line) + ",\"column\":" + std::to_string(d.loc.column);
    }
    out += ",\"message\":";
    appendJsonString(out, d.message);
    out += "}";
  }
  out += "]";
}

}  // namespace

std::string renderDiagnosticsJson(const std::vector<Diagnostic>& diagnostics) {
  std::string out = "{\"format_version\":1,\"ok\":";
  out += diagnostics.empty() ? "true" : "false";
  out += ",";
  appendDiagnostics(out, diagnostics);
  return out + "}\n";
}

std::string renderPlanErrorJson(const PlanError& error) {
  std::string out = "{\"format_version\":1,\"ok\":false,\"error\":{\"kind\":";
  appendJsonString(out, error.kind);
  out += ",\"message\":";
  appendJsonString(out, error.message);
  out += "},";
  appendDiagnostics(out, error.diagnostics);
  return out + "}\n";
}

}  // namespace edgeplane::cli
