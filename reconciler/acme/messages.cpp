// The CA's RFC 8555 JSON documents decoded into types (see messages.h).
#include "reconciler/acme/messages.h"

#include <algorithm>
#include <initializer_list>
#include <utility>

#include "schema/json_reader.h"
#include "schema/terminal_text.h"

namespace edgeplane::acme {
namespace {

// Text the CA wrote, as messages carry it on to logs, the journal and `status`: at most
// kCaTextBytes of it, control bytes escaped (terminal_text.h), so that it can neither forge a
// log line nor drive a terminal.
constexpr size_t kCaTextBytes = 512;
std::string caText(std::string_view s) {
  return terminalText(s.substr(0, kCaTextBytes)) + (s.size() > kCaTextBytes ? "..." : "");
}

using strict_json::Json;
using strict_json::member;

Result<Json> object(std::string_view body) {
  Json j;
  std::string error;
  if (!strict_json::parse(body, j, error) || j.type != Json::Type::Object) {
    return terminal("the CA's answer is not a JSON object" +
                    (error.empty() ? std::string() : " (" + error + ")"));
  }
  return j;
}

Error wrongType(std::string_view key, std::string_view want) {
  return terminal("'" + std::string(key) + "' is not " + std::string(want));
}

// `out` set when `key` is a string, left alone when absent; an error otherwise.
Result<void> readString(const Json& j, std::string_view key, std::string& out) {
  const Json* m = member(j, key);
  if (m == nullptr) {
    return {};
  }
  if (m->type != Json::Type::String) {
    return wrongType(key, "a string");
  }
  out = m->string;
  return {};
}

Result<void> readBool(const Json& j, std::string_view key, bool& out) {
  const Json* m = member(j, key);
  if (m == nullptr) {
    return {};
  }
  if (m->type != Json::Type::Bool) {
    return wrongType(key, "a boolean");
  }
  out = m->boolean;
  return {};
}

}  // namespace

Result<void> checkCaValue(std::string_view key, std::string_view value) {
  if (value.size() > kMaxCaValueBytes) {
    return terminal("'" + std::string(key) + "' is longer than " +
                    std::to_string(kMaxCaValueBytes) + " bytes");
  }
  for (char c : value) {
    if (c < 0x21 || c > 0x7e) {  // signed char: bytes past 0x7f are negative
      return terminal("'" + std::string(key) + "' holds a byte that is not printable ASCII");
    }
  }
  return {};
}

namespace {

// Each named member read with readString, a machine value (checkCaValue).
Result<void> readStrings(const Json& j,
                         std::initializer_list<std::pair<std::string_view, std::string*>> fields) {
  for (const auto& [name, out] : fields) {
    if (auto r = readString(j, name, *out); !r) {
      return r.error();
    }
    if (auto r = checkCaValue(name, *out); !r) {
      return r.error();
    }
  }
  return {};
}

Result<Problem> problemFrom(const Json& j, bool nested) {
  if (j.type != Json::Type::Object) {
    return terminal("a problem document is not a JSON object");
  }
  Problem p;
  for (const auto& [name, out] : {std::pair{"type", &p.type}, std::pair{"detail", &p.detail}}) {
    if (auto r = readString(j, name, *out); !r) {  // prose: escaped where shown
      return r.error();
    }
  }
  if (const Json* id = member(j, "identifier"); id != nullptr) {
    if (id->type != Json::Type::Object) {
      return wrongType("identifier", "an object");
    }
    if (auto r = readString(*id, "value", p.identifier); !r) {
      return r.error();
    }
  }
  const Json* subs = member(j, "subproblems");
  if (subs == nullptr) {
    return p;
  }
  // Section 6.7.1: subproblems do not nest.
  if (nested || subs->type != Json::Type::Array) {
    return wrongType("subproblems", nested ? "allowed in a subproblem" : "an array");
  }
  for (const Json& s : subs->array) {
    auto sub = problemFrom(s, true);
    if (!sub) {
      return sub.error();
    }
    p.subproblems.push_back(std::move(sub).value());
  }
  return p;
}

// The optional "error" member of an order, authorization or challenge.
Result<void> readError(const Json& j, std::optional<Problem>& out) {
  const Json* e = member(j, "error");
  if (e == nullptr) {
    return {};
  }
  auto p = problemFrom(*e, false);
  if (!p) {
    return terminal("'error': " + p.error().message);
  }
  out = std::move(p).value();
  return {};
}

Result<Challenge> challengeFrom(const Json& j) {
  if (j.type != Json::Type::Object) {
    return terminal("a challenge is not a JSON object");
  }
  Challenge c;
  if (auto r = readStrings(
          j, {{"type", &c.type}, {"url", &c.url}, {"token", &c.token}, {"status", &c.status}});
      !r) {
    return r.error();
  }
  if (auto r = readError(j, c.error); !r) {
    return r.error();
  }
  return c;
}

}  // namespace

Result<Directory> parseDirectory(std::string_view body) {
  auto j = object(body);
  if (!j) {
    return j.error();
  }
  Directory d;
  if (auto r = readStrings(*j, {{"newNonce", &d.newNonce},
                                {"newAccount", &d.newAccount},
                                {"newOrder", &d.newOrder},
                                {"renewalInfo", &d.renewalInfo}});
      !r) {
    return r.error();
  }
  if (d.newNonce.empty() || d.newAccount.empty() || d.newOrder.empty()) {
    return terminal("lacks newNonce, newAccount or newOrder");
  }
  if (const Json* meta = member(*j, "meta"); meta != nullptr) {
    if (meta->type != Json::Type::Object) {
      return wrongType("meta", "an object");
    }
    if (auto r = readBool(*meta, "externalAccountRequired", d.externalAccountRequired); !r) {
      return r.error();
    }
  }
  return d;
}

Result<Order> parseOrder(std::string_view body) {
  auto j = object(body);
  if (!j) {
    return j.error();
  }
  Order o;
  if (auto r = readStrings(
          *j, {{"status", &o.status}, {"finalize", &o.finalize}, {"certificate", &o.certificate}});
      !r) {
    return r.error();
  }
  if (const Json* as = member(*j, "authorizations"); as != nullptr) {
    if (as->type != Json::Type::Array) {
      return wrongType("authorizations", "an array");
    }
    o.authorizations.emplace();
    for (const Json& a : as->array) {
      if (a.type != Json::Type::String) {
        return terminal("an authorization URL is not a string");
      }
      if (auto r = checkCaValue("authorizations", a.string); !r) {
        return r.error();
      }
      o.authorizations->push_back(a.string);
    }
  }
  if (auto r = readError(*j, o.error); !r) {
    return r.error();
  }
  return o;
}

Result<Authorization> parseAuthorization(std::string_view body) {
  auto j = object(body);
  if (!j) {
    return j.error();
  }
  Authorization a;
  if (auto r = readStrings(*j, {{"status", &a.status}}); !r) {
    return r.error();
  }
  if (const Json* id = member(*j, "identifier"); id != nullptr) {
    if (id->type != Json::Type::Object) {
      return wrongType("identifier", "an object");
    }
    if (auto r = readStrings(*id, {{"type", &a.identifierType}, {"value", &a.identifierValue}});
        !r) {
      return r.error();
    }
  }
  if (auto r = readBool(*j, "wildcard", a.wildcard); !r) {
    return r.error();
  }
  if (const Json* cs = member(*j, "challenges"); cs != nullptr) {
    if (cs->type != Json::Type::Array) {
      return wrongType("challenges", "an array");
    }
    for (const Json& c : cs->array) {
      auto ch = challengeFrom(c);
      if (!ch) {
        return ch.error();
      }
      a.challenges.push_back(std::move(ch).value());
    }
  }
  if (auto r = readError(*j, a.error); !r) {
    return r.error();
  }
  return a;
}

Result<Problem> parseProblem(std::string_view body) {
  auto j = object(body);
  if (!j) {
    return j.error();
  }
  return problemFrom(*j, false);
}

namespace {

// `n` decimal digits of `text` at `pos`, or -1.
int digits(std::string_view text, size_t pos, size_t n) {
  if (pos + n > text.size()) {
    return -1;
  }
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (text[i] < '0' || text[i] > '9') {
      return -1;
    }
    v = v * 10 + (text[i] - '0');
  }
  return v;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t daysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

bool leapYear(int y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

}  // namespace

std::optional<int64_t> parseRfc3339(std::string_view t) {
  // YYYY-MM-DD[Tt ]hh:mm:ss
  if (t.size() < 20 || t[4] != '-' || t[7] != '-' || (t[10] != 'T' && t[10] != 't') ||
      t[13] != ':' || t[16] != ':') {
    return std::nullopt;
  }
  const int year = digits(t, 0, 4), month = digits(t, 5, 2), day = digits(t, 8, 2);
  const int hour = digits(t, 11, 2), minute = digits(t, 14, 2), second = digits(t, 17, 2);
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (year < 0 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 || minute < 0 ||
      minute > 59 || second < 0 || second > 60 ||
      day > kDays[month - 1] + (month == 2 && leapYear(year) ? 1 : 0)) {
    return std::nullopt;
  }
  size_t pos = 19;
  if (t[pos] == '.') {
    const size_t first = ++pos;
    while (pos < t.size() && t[pos] >= '0' && t[pos] <= '9') {
      ++pos;
    }
    if (pos == first) {
      return std::nullopt;
    }
  }
  int64_t offset = 0;
  if (pos < t.size() && (t[pos] == 'Z' || t[pos] == 'z')) {
    ++pos;
  } else if (pos < t.size() && (t[pos] == '+' || t[pos] == '-')) {
    const int oh = digits(t, pos + 1, 2), om = digits(t, pos + 4, 2);
    if (oh < 0 || oh > 23 || om < 0 || om > 59 || pos + 3 >= t.size() || t[pos + 3] != ':') {
      return std::nullopt;
    }
    offset = (t[pos] == '+' ? 1 : -1) * (oh * 3600 + om * 60);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != t.size()) {
    return std::nullopt;
  }
  return daysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 +
         std::min(second, 59) - offset;
}

Result<RenewalInfo> parseRenewalInfo(std::string_view body) {
  auto j = object(body);
  if (!j) {
    return j.error();
  }
  const Json* w = member(*j, "suggestedWindow");
  if (w == nullptr || w->type != Json::Type::Object) {
    return terminal(w == nullptr ? "lacks suggestedWindow" : "'suggestedWindow' is not an object");
  }
  std::string start;
  std::string end;
  RenewalInfo info;
  if (auto r = readStrings(*w, {{"start", &start}, {"end", &end}}); !r) {
    return r.error();
  }
  if (auto r = readString(*j, "explanationURL", info.explanationUrl); !r) {
    return r.error();
  }
  info.explanationUrl = caText(info.explanationUrl);
  auto s = parseRfc3339(start);
  auto e = parseRfc3339(end);
  if (!s || !e) {
    return terminal("suggestedWindow's start and end are not RFC 3339 date-times");
  }
  if (*e <= *s) {
    return terminal("suggestedWindow ends before it starts");
  }
  info.start = *s;
  info.end = *e;
  return info;
}

std::string problemSummary(const Problem& p) {
  return p.detail.empty() ? caText(p.type) : caText(p.type) + ": " + caText(p.detail);
}

}  // namespace edgeplane::acme
