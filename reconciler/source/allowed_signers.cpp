// allowed_signers as OpenSSH reads it (ssh-keygen(1) "ALLOWED SIGNERS", sshsig.c, match.c):
// strict and bounded, every line's key checked as a key before it is accepted.
#include "reconciler/source/allowed_signers.h"

#include <ctime>
#include <utility>

#include "reconciler/source/ssh_key.h"
#include "schema/encoding.h"

namespace edgeplane::source {
namespace {

using ssh::nextLine;

// --- Patterns (OpenSSH match.c) ---

bool matchPattern(std::string_view s, std::string_view p) {
  size_t si = 0;
  size_t pi = 0;
  size_t starP = std::string_view::npos;
  size_t starS = 0;
  while (si < s.size()) {
    if (pi < p.size() && (p[pi] == '?' || p[pi] == s[si])) {
      ++si;
      ++pi;
    } else if (pi < p.size() && p[pi] == '*') {
      starP = pi++;
      starS = si;
    } else if (starP != std::string_view::npos) {
      pi = starP + 1;
      si = ++starS;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') {
    ++pi;
  }
  return pi == p.size();
}

// --- Lines and options (OpenSSH sshsig.c, misc.c) ---

bool isSpace(char c) {
  return c == ' ' || c == '\t';
}

void skipSpace(std::string_view& s) {
  while (!s.empty() && isSpace(s.front())) {
    s.remove_prefix(1);
  }
}

std::string_view takeToken(std::string_view& s) {
  size_t n = 0;
  while (n < s.size() && !isSpace(s[n])) {
    ++n;
  }
  std::string_view token = s.substr(0, n);
  s.remove_prefix(n);
  return token;
}

bool iequalsPrefix(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) {
    return false;
  }
  for (size_t i = 0; i < prefix.size(); ++i) {
    char a = s[i];
    if (a >= 'A' && a <= 'Z') {
      a = static_cast<char>(a - 'A' + 'a');
    }
    if (a != prefix[i]) {
      return false;
    }
  }
  return true;
}

// OpenSSH's opt_dequote: "…" with \" for a quote.
std::optional<std::string> dequote(std::string_view& s) {
  if (s.empty() || s.front() != '"') {
    return std::nullopt;
  }
  std::string out;
  size_t i = 1;
  for (; i < s.size() && s[i] != '"'; ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && s[i + 1] == '"') {
      ++i;
    }
    out.push_back(s[i]);
  }
  if (i == s.size()) {
    return std::nullopt;
  }
  s.remove_prefix(i + 1);
  return out;
}

bool allDigits(std::string_view s) {
  for (char c : s) {
    if (c < '0' || c > '9') {
      return false;
    }
  }
  return true;
}

int number(std::string_view digits) {
  int n = 0;
  for (char c : digits) {
    n = n * 10 + (c - '0');
  }
  return n;
}

// OpenSSH's parse_absolute_time: YYYYMMDD[HHMM[SS]][Z].
std::optional<std::int64_t> parseTime(std::string_view s) {
  bool utc = false;
  if (!s.empty() && (s.back() == 'Z' || s.back() == 'z')) {
    utc = true;
    s.remove_suffix(1);
  }
  if ((s.size() != 8 && s.size() != 12 && s.size() != 14) || !allDigits(s)) {
    return std::nullopt;
  }
  std::tm tm{};
  tm.tm_year = number(s.substr(0, 4)) - 1900;
  tm.tm_mon = number(s.substr(4, 2)) - 1;
  tm.tm_mday = number(s.substr(6, 2));
  if (s.size() >= 12) {
    tm.tm_hour = number(s.substr(8, 2));
    tm.tm_min = number(s.substr(10, 2));
  }
  if (s.size() == 14) {
    tm.tm_sec = number(s.substr(12, 2));
  }
  if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
      tm.tm_sec > 59) {
    return std::nullopt;
  }
  const std::tm wanted = tm;
  tm.tm_isdst = -1;
  const std::time_t t = utc ? ::timegm(&tm) : ::mktime(&tm);
  std::tm back{};
  if (t == static_cast<std::time_t>(-1) ||
      (utc ? ::gmtime_r(&t, &back) : ::localtime_r(&t, &back)) == nullptr) {
    return std::nullopt;
  }
  // Normalisation moved the date (the 31st of a 30-day month): not a real time.
  if (back.tm_year != wanted.tm_year || back.tm_mon != wanted.tm_mon ||
      back.tm_mday != wanted.tm_mday) {
    return std::nullopt;
  }
  return static_cast<std::int64_t>(t);
}

// OpenSSH's sshsigopt_parse.
std::optional<std::string> parseOptions(std::string_view opts, AllowedSigner& signer) {
  while (!opts.empty()) {
    if (iequalsPrefix(opts, "cert-authority")) {
      opts.remove_prefix(std::string_view("cert-authority").size());
      signer.certAuthority = true;
    } else if (iequalsPrefix(opts, "no-touch-required")) {
      opts.remove_prefix(std::string_view("no-touch-required").size());
      signer.noTouchRequired = true;
    } else if (iequalsPrefix(opts, "namespaces=")) {
      opts.remove_prefix(std::string_view("namespaces=").size());
      if (signer.namespaces) {
        return "multiple \"namespaces\" clauses";
      }
      auto value = dequote(opts);
      if (!value) {
        return "bad quoting in namespaces";
      }
      signer.namespaces = std::move(*value);
    } else if (iequalsPrefix(opts, "valid-after=") || iequalsPrefix(opts, "valid-before=")) {
      const bool after = iequalsPrefix(opts, "valid-after=");
      opts.remove_prefix(after ? std::string_view("valid-after=").size()
                               : std::string_view("valid-before=").size());
      std::optional<std::int64_t>& slot = after ? signer.validAfter : signer.validBefore;
      const char* name = after ? "valid-after" : "valid-before";
      if (slot) {
        return std::string("multiple \"") + name + "\" clauses";
      }
      auto value = dequote(opts);
      if (!value) {
        return std::string("bad quoting in ") + name;
      }
      slot = parseTime(*value);
      if (!slot) {
        return std::string("invalid ") + name + " time '" + *value + "'";
      }
    } else {
      return "unknown option '" + std::string(opts.substr(0, opts.find_first_of(",="))) + "'";
    }
    if (opts.empty()) {
      break;
    }
    if (opts.front() != ',') {
      return "unknown option";
    }
    opts.remove_prefix(1);
    if (opts.empty()) {
      return "unexpected end of options";
    }
  }
  if (signer.validAfter && signer.validBefore && *signer.validBefore <= *signer.validAfter) {
    return "\"valid-before\" time is before \"valid-after\"";
  }
  return std::nullopt;
}

// A key type we do not verify (ssh-dss, certificates, a newer OpenSSH's, ...). No option name
// looks like this, so the token cannot have been meant as options.
bool isOtherKeyType(std::string_view token) {
  return token.find_first_of("=\"") == std::string_view::npos &&
         (token.starts_with("ssh-") || token.starts_with("ecdsa-") || token.starts_with("sk-") ||
          token.ends_with("@openssh.com"));
}

// The options field: everything up to the first unquoted blank.
std::optional<std::string_view> takeOptions(std::string_view& s) {
  bool quoted = false;
  size_t i = 0;
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (quoted && c == '\\' && i + 1 < s.size() && s[i + 1] == '"') {
      ++i;
    } else if (c == '"') {
      quoted = !quoted;
    } else if (!quoted && isSpace(c)) {
      break;
    }
  }
  if (quoted) {
    return std::nullopt;
  }
  std::string_view opts = s.substr(0, i);
  s.remove_prefix(i);
  return opts;
}

// The principals field, a comma list quoted as a whole or not at all, into `principals`.
// Returns why the line is bad, if it is.
std::optional<std::string> takePrincipals(std::string_view& line,
                                          std::vector<std::string>& principals) {
  std::string_view field;
  if (line.front() == '"') {
    const size_t close = line.find('"', 1);
    if (close == std::string_view::npos) {
      return "unterminated quote in principals";
    }
    field = line.substr(1, close - 1);
    line.remove_prefix(close + 1);
    if (!line.empty() && !isSpace(line.front())) {
      return "text after the quoted principals";
    }
  } else {
    field = takeToken(line);
    if (field.find('"') != std::string_view::npos) {
      return "a quote inside the principals; quote the whole field";
    }
  }
  while (true) {
    const size_t comma = field.find(',');
    const std::string_view p = field.substr(0, comma);
    if (p.empty()) {
      return "empty principal";
    }
    principals.emplace_back(p);
    if (comma == std::string_view::npos) {
      break;
    }
    field.remove_prefix(comma + 1);
  }
  return std::nullopt;
}

// The options field, if the line has one (the token after the principals is no key type),
// into `signer`, then the key type; `line` is left after the key type. Returns why the line
// is bad, if it is.
std::optional<std::string> takeOptionsAndKeyType(std::string_view& line, AllowedSigner& signer,
                                                 std::string_view& keyType) {
  skipSpace(line);
  std::string_view rest = line;
  keyType = takeToken(rest);
  if (keyType.empty()) {
    return "missing key";
  }
  if (!ssh::isSupportedKeyType(keyType) && !isOtherKeyType(keyType)) {
    auto opts = takeOptions(line);
    if (!opts) {
      return "unterminated quote in options";
    }
    if (auto why = parseOptions(*opts, signer)) {
      return "bad options: " + *why;
    }
    skipSpace(line);
    rest = line;
    keyType = takeToken(rest);
    if (keyType.empty()) {
      return "missing key";
    }
  }
  line = rest;
  return std::nullopt;
}

// nullopt: a well-formed line of a key type we cannot verify, skipped with a warning so that
// one such signer (a type from a newer OpenSSH, say) does not lock every other one out.
Result<std::optional<AllowedSigner>> parseSignerLine(std::string_view line, size_t lineNo,
                                                     std::vector<std::string>* warnings) {
  auto bad = [lineNo](const std::string& why) {
    return terminal("allowed_signers:" + std::to_string(lineNo) + ": " + why);
  };
  AllowedSigner signer;
  signer.line = lineNo;
  if (auto why = takePrincipals(line, signer.principals)) {
    return bad(*why);
  }
  std::string_view keyType;
  if (auto why = takeOptionsAndKeyType(line, signer, keyType)) {
    return bad(*why);
  }
  std::string_view rest = line;
  skipSpace(rest);
  const std::string_view b64 = takeToken(rest);
  if (b64.empty()) {
    return bad("missing key data");
  }
  auto blob = decodeBase64(b64);
  if (!blob) {
    return bad("key data is not valid base64");
  }
  if (!ssh::isSupportedKeyType(keyType)) {
    if (ssh::blobKeyType(*blob) != keyType) {
      return bad("key data is not a " + std::string(keyType) + " key");
    }
    if (warnings != nullptr) {
      warnings->push_back("allowed_signers:" + std::to_string(lineNo) + ": key type '" +
                          std::string(keyType) + "' is not supported; the line is skipped");
    }
    return std::optional<AllowedSigner>();
  }
  auto key = ssh::parsePublicKey(*blob);
  if (!key) {
    return bad(key.error().message);
  }
  if (key->type != keyType) {
    return bad("key data is a " + key->type + " key, the line says " + std::string(keyType));
  }
  signer.keyType = std::string(keyType);
  signer.keyBlob = std::move(*blob);
  // What is left, if anything, is a comment.
  return std::optional<AllowedSigner>(std::move(signer));
}

}  // namespace

int matchPatternList(std::string_view s, std::string_view list) {
  int result = 0;
  while (true) {
    const size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    const bool negated = !item.empty() && item[0] == '!';
    if (negated) {
      item.remove_prefix(1);
    }
    if (matchPattern(s, item)) {
      if (negated) {
        return -1;
      }
      result = 1;
    }
    if (comma == std::string_view::npos) {
      break;
    }
    list.remove_prefix(comma + 1);
  }
  return result;
}

Result<std::vector<AllowedSigner>> parseAllowedSigners(std::string_view text,
                                                       std::vector<std::string>* warnings) {
  if (text.size() > kMaxAllowedSignersBytes) {
    return terminal("allowed_signers is larger than " + std::to_string(kMaxAllowedSignersBytes) +
                    " bytes");
  }
  if (text.find('\0') != std::string_view::npos) {
    return terminal("allowed_signers contains a NUL byte");
  }
  std::vector<AllowedSigner> signers;
  size_t lineNo = 0;
  while (!text.empty()) {
    std::string_view line = nextLine(text);
    ++lineNo;
    skipSpace(line);
    if (line.empty() || line.front() == '#') {
      continue;
    }
    if (signers.size() == kMaxAllowedSigners) {
      return terminal("allowed_signers has more than " + std::to_string(kMaxAllowedSigners) +
                      " keys");
    }
    auto signer = parseSignerLine(line, lineNo, warnings);
    if (!signer) {
      return signer.error();
    }
    if (signer->has_value()) {
      signers.push_back(std::move(**signer));
    }
  }
  return signers;
}

}  // namespace edgeplane::source
