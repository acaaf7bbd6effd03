// Plan rendering: the Terraform-style text operators read and the JSON machines read.
#include <algorithm>
#include <iterator>
#include <string>

#include "reconciler/core/plan.h"
#include "schema/json_text.h"
#include "schema/terminal_text.h"

namespace edgeplane::core {
namespace {

char symbol(Action a) {
  switch (a) {
    case Action::Create:
      return '+';
    case Action::Update:
      return '~';
    case Action::Delete:
      return '-';
  }
  return '?';
}

// The fields whose values are numbers (ports, a keepalive, counts, a sysctl's 0/1): JSON
// numbers, so that a script compares them as such. Every other field is text: names, keys,
// addresses, and a forward's public_port, which is a port range ("30000-30010").
bool numericField(std::string_view field) {
  static constexpr std::string_view kNumeric[] = {
      "value",    "ip_forward",      "listen_port", "persistent_keepalive", "unexpected_elements",
      "mappings", "missing_elements"};
  return std::find(std::begin(kNumeric), std::end(kNumeric), field) != std::end(kNumeric);
}

std::string_view colourOf(char symbol) {
  switch (symbol) {
    case '+':
      return sgr::kGreen;
    case '~':
      return sgr::kYellow;
    default:  // '-', and '!' (an op that will fail)
      return sgr::kRed;
  }
}

bool allDigits(std::string_view s) {
  return !s.empty() && s.size() <= 18 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

std::string jsonEscape(std::string_view s) {
  std::string quoted;
  appendJsonString(quoted, s);
  return quoted.substr(1, quoted.size() - 2);
}

namespace {

// The plan's text, appended in place: a plan of 10k operations is rendered in one pass,
// without temporaries. With colour, what comes from the config or the host is escaped here,
// so that the only escapes in the text are the colours (plain text is escaped by the stream).
class TextWriter {
 public:
  explicit TextWriter(bool colour) : colour_(colour) {}

  void lit(std::string_view s) { out_ += s; }
  void text(std::string_view s) {
    if (colour_) {
      out_ += terminalLines(s);
    } else {
      out_ += s;
    }
  }

  // "  + kind name[: error][ (summary)][  (drift: …)]" and a line per changed field.
  void op(const Op& op) {
    // An op known to fail is marked `!` and says why on its first line.
    const char mark = op.error.empty() ? symbol(op.action) : '!';
    lit("  ");
    if (colour_) {
      lit(colourOf(mark));
      out_ += mark;
      lit(sgr::kReset);
    } else {
      out_ += mark;
    }
    lit(" ");
    lit(toString(op.kind));
    lit(" ");
    text(op.name);
    if (!op.error.empty()) {
      lit(": ");
      text(op.error);
    }
    if (!op.summary.empty()) {
      lit(" (");
      text(op.summary);
      lit(")");
    }
    if (!op.drift.empty()) {
      lit("  (drift: ");
      text(op.drift);
      lit(")");
    }
    lit("\n");
    for (const auto& c : op.changes) {
      change(op.action, c);
    }
  }

  std::string take() { return std::move(out_); }

 private:
  void change(Action action, const FieldChange& c) {
    lit("      ");
    text(c.field);
    lit(": ");
    if (action == Action::Create) {
      text(c.after);
    } else if (action == Action::Delete) {
      text(c.before);
    } else {
      const std::string_view none = "(none)";
      text(c.before.empty() ? none : std::string_view(c.before));
      lit(" → ");
      text(c.after.empty() ? none : std::string_view(c.after));
    }
    lit("\n");
  }

  const bool colour_;
  std::string out_;
};

}  // namespace

std::string renderText(const Plan& p, TextStyle style) {
  TextWriter w(style == TextStyle::Colour);
  if (p.ops.empty()) {
    w.lit("No changes. Host \"");
    w.text(p.host);
    w.lit("\" matches the configuration.\n");
  } else {
    w.lit("edgeplane will perform the following actions on host \"");
    w.text(p.host);
    w.lit("\":\n\n");
    for (const auto& op : p.ops) {
      w.op(op);
    }
  }
  if (!p.foreign.empty()) {
    w.lit("\nNot managed by edgeplane (seen, left alone):\n");
    for (const auto& f : p.foreign) {
      w.lit("  ");
      w.text(f);
      w.lit("\n");
    }
  }
  if (!p.notes.empty()) {
    w.lit("\n");
    for (const auto& n : p.notes) {
      w.lit("note: ");
      w.text(n);
      w.lit("\n");
    }
  }
  w.lit("\nPlan: " + std::to_string(p.count(Action::Create)) + " to add, " +
        std::to_string(p.count(Action::Update)) + " to change, " +
        std::to_string(p.count(Action::Delete)) + " to destroy" +
        (p.failing() == 0 ? std::string()
                          : "; " + std::to_string(p.failing()) + " will fail (marked !)") +
        ".\n");
  return w.take();
}

std::string renderJson(const Plan& p) {
  auto str = [](std::string_view s) { return "\"" + jsonEscape(s) + "\""; };
  // format_version: a script checks it before reading the rest (Terraform's plan JSON does the
  // same); it goes up when a field changes meaning or type, not when one is added.
  std::string out = "{\"format_version\":1,\"host\":" + str(p.host) + ",\"resource_changes\":[";
  for (size_t i = 0; i < p.ops.size(); ++i) {
    const Op& op = p.ops[i];
    out += i == 0 ? "" : ",";
    out += "{\"action\":" + str(toString(op.action)) + ",\"kind\":" + str(toString(op.kind)) +
           ",\"name\":" + str(op.name) + ",\"scope\":" + str(op.scope) +
           ",\"summary\":" + (op.summary.empty() ? std::string("null") : str(op.summary)) +
           ",\"changes\":[";
    for (size_t j = 0; j < op.changes.size(); ++j) {
      const FieldChange& c = op.changes[j];
      out += j == 0 ? "" : ",";
      auto value = [&](const std::string& v) {
        if (v.empty()) {
          return std::string("null");
        }
        return numericField(c.field) && allDigits(v) ? v : str(v);
      };
      out += "{\"field\":" + str(c.field) + ",\"before\":" + value(c.before) +
             ",\"after\":" + value(c.after) + "}";
    }
    out += "],\"drift\":" + (op.drift.empty() ? std::string("null") : str(op.drift)) +
           ",\"error\":" + (op.error.empty() ? std::string("null") : str(op.error)) +
           ",\"depends_on\":[";
    for (size_t j = 0; j < op.dependsOn.size(); ++j) {
      out += (j == 0 ? "" : ",") + std::to_string(op.dependsOn[j]);
    }
    out += "]}";
  }
  out += "],\"foreign\":[";
  for (size_t i = 0; i < p.foreign.size(); ++i) {
    out += (i == 0 ? "" : ",") + str(p.foreign[i]);
  }
  out += "],\"notes\":[";
  for (size_t i = 0; i < p.notes.size(); ++i) {
    out += (i == 0 ? "" : ",") + str(p.notes[i]);
  }
  out += "],\"summary\":{\"add\":" + std::to_string(p.count(Action::Create)) +
         ",\"change\":" + std::to_string(p.count(Action::Update)) +
         ",\"destroy\":" + std::to_string(p.count(Action::Delete)) + "}}\n";
  return out;
}

}  // namespace edgeplane::core
