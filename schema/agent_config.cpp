// The host-local agent file: loader and checks (see agent_config.h).
#include "schema/agent_config.h"

#include <unistd.h>

#include <regex>

#include "schema/encoding.h"
#include "schema/file_text.h"
#include "schema/git_url.h"
#include "schema/local_address.h"
#include "schema/state_layout.h"
#include "schema/toml_reader.h"

namespace edgeplane {
namespace {

using detail::enumValue;
using detail::locOf;
using detail::nonAsciiOutsideStrings;
using detail::parsed;
using detail::TableReader;

namespace fs = std::filesystem;

// sun_path holds 108 bytes with the terminating NUL.
constexpr size_t kMaxUnixPath = 107;

std::string machineHostname() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0) {
    return "";
  }
  return name;
}

// A path as given, or anchored at the agent file's directory when relative.
std::string resolvePath(const fs::path& baseDir, const std::string& p) {
  fs::path path(p);
  if (path.is_relative()) {
    path = baseDir / path;
  }
  return path.lexically_normal().string();
}

// git check-ref-format's rules for a full ref name (refs/...), which is what libgit2 checks
// when the source resolves the ref.
bool validFullRefName(std::string_view name) {
  if (name.empty() || name == "@" || name.front() == '/' || name.back() == '/' ||
      name.back() == '.' || name.find("..") != std::string_view::npos ||
      name.find("@{") != std::string_view::npos || name.find("//") != std::string_view::npos) {
    return false;
  }
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == ' ' || c == '~' || c == '^' || c == ':' || c == '?' ||
        c == '*' || c == '[' || c == '\\') {
      return false;
    }
  }
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('/', start);
    if (end == std::string_view::npos) {
      end = name.size();
    }
    std::string_view component = name.substr(start, end - start);
    if (component.empty() || component.front() == '.' || component.ends_with(".lock")) {
      return false;
    }
    start = end + 1;
  }
  return true;
}

// Why `ref` is not a branch, a tag or a full commit id; nullopt when it is one.
std::optional<std::string> refProblem(std::string_view ref) {
  if (isFullCommitId(ref)) {
    return std::nullopt;
  }
  if (ref.starts_with("refs/")) {
    if (!ref.starts_with("refs/heads/") && !ref.starts_with("refs/tags/")) {
      return "is neither a branch (refs/heads/...) nor a tag (refs/tags/...)";
    }
    if (!validFullRefName(ref)) {
      return "is not a valid ref name";
    }
    return std::nullopt;
  }
  if (!validFullRefName("refs/heads/" + std::string(ref))) {
    return "is not a valid branch or tag name, nor a full 40-hex commit id";
  }
  return std::nullopt;
}

class AgentLoader {
 public:
  AgentLoader(AgentConfig& out, const SourceFile& file, const fs::path& baseDir, Diagnostics& diags)
      : out_(out), file_(file), baseDir_(baseDir), diags_(diags) {}

  void load(const toml::table& root) {
    TableReader r(root, "the top level", file_, diags_);
    out_.origin.table = r.tableLoc();
    if (auto host = r.str("host")) {
      static const std::regex hostPattern("[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?");
      if (!std::regex_match(*host, hostPattern)) {
        r.error("host", "host name " + quote(*host) +
                            " must be lower-case letters, digits and inner hyphens (at most 64)");
        r.reject("host");
      } else {
        out_.host = *host;
      }
    }
    if (auto dir = r.str("state_dir")) {
      if (dir->empty()) {
        r.error("state_dir", "'state_dir' must not be empty");
        r.reject("state_dir");
      } else {
        out_.state_dir = resolvePath(baseDir_, *dir);
      }
    }
    if (auto metrics = r.str("metrics")) {
      out_.metrics = localAddress(r, "metrics", *metrics);
    }
    if (const toml::table* t = r.table("source")) {
      loadSource(*t);
    } else if (!r.has("source")) {
      r.require("source", r.tableLoc(),
                "the agent file has no [source] table; it needs at least [source] url");
    }
    if (const toml::table* t = r.table("reconcile")) {
      loadReconcile(*t);
    }
    if (const toml::table* t = r.table("wireguard")) {
      TableReader w = reader(*t, "[wireguard]");
      out_.wireguard_backend =
          enumValue<std::string>(
              w, "backend", {{"auto", "auto"}, {"kernel", "kernel"}, {"userspace", "userspace"}})
              .value_or(out_.wireguard_backend);
      finish(w, "wireguard");
    }
    if (const toml::table* t = r.table("proxy")) {
      TableReader p = reader(*t, "[proxy]");
      if (auto admin = p.str("admin")) {
        out_.proxy_admin = localAddress(p, "admin", *admin);
      }
      out_.proxy_admin_token_file = nonEmptyPath(p, "admin_token_file");
      finish(p, "proxy");
    }
    if (const toml::table* t = r.table("webhook")) {
      loadWebhook(*t);
    }
    r.finish();
    merge(r, "");
    if (!out_.proxy_admin) {
      out_.proxy_admin = defaultProxyAdmin(out_.state_dir);
    }
  }

 private:
  TableReader reader(const toml::table& t, std::string context) {
    return TableReader(t, std::move(context), file_, diags_);
  }

  // Reports the table's unknown keys and keeps its locations under "name.key".
  void finish(TableReader& r, std::string_view name) {
    r.finish();
    merge(r, std::string(name) + ".");
  }

  void merge(TableReader& r, const std::string& prefix) {
    for (auto& [key, loc] : r.origin().fields) {
      out_.origin.fields[prefix + key] = loc;
    }
    for (const std::string& key : r.origin().rejected) {
      out_.origin.rejected.insert(prefix + key);
    }
  }

  void loadSource(const toml::table& t) {
    TableReader r = reader(t, "[source]");
    AgentSource& s = out_.source;
    if (auto url = r.str("url", true)) {
      s.url = sourceUrl(r, *url);
    }
    if (auto ref = r.str("ref")) {
      if (auto problem = refProblem(*ref)) {
        r.error("ref", "'ref' " + quote(*ref) + " " + *problem);
        r.reject("ref");
      } else {
        s.ref = *ref;
      }
    }
    if (auto path = r.str("path")) {
      if (auto root = configRoot(r, *path)) {
        s.path = *root;
      }
    }
    if (auto key = nonEmptyPath(r, "ssh_key")) {
      s.ssh_key = key;
      if (!s.url.empty() && !isSshUrl(s.url)) {
        r.error("ssh_key",
                "'ssh_key' is only used with an ssh:// or scp-like (user@host:path) "
                "url, and 'url' is " +
                    quote(redactUrl(s.url)));
      }
    }
    s.allowed_signers = nonEmptyPath(r, "allowed_signers");
    if (auto d = parsed<Duration>(r, "fetch_timeout", false, parseDuration, "duration",
                                  kDurationExamples)) {
      s.fetch_timeout = *d;
    }
    if (auto n = r.integer("fetch_max_size", int64_t{1} << 20, int64_t{1} << 40)) {
      s.fetch_max_size = static_cast<std::uint64_t>(*n);
    }
    s.allow_rollback = r.boolean("allow_rollback").value_or(false);
    finish(r, "source");
  }

  // The repository url: a local path (anchored at the agent file's directory when relative),
  // file://, https://, ssh:// or scp-like. Other schemes are refused: git:// and http:// are
  // neither authenticated nor encrypted.
  std::string sourceUrl(TableReader& r, const std::string& url) {
    if (url.empty()) {
      r.error("url", "'url' must not be empty");
      r.reject("url");
      return "";
    }
    for (char c : url) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
        r.error("url", "'url' must not contain control characters");
        r.reject("url");
        return "";
      }
    }
    const size_t scheme = url.find("://");
    if (scheme != std::string::npos) {
      const std::string name = url.substr(0, scheme);
      if (name != "file" && name != "https" && name != "ssh") {
        r.error("url", "unsupported url scheme " + quote(name) + " in " + quote(redactUrl(url)) +
                           "; use a local path, file://, https:// or ssh://");
        r.reject("url");
        return "";
      }
      return url;
    }
    if (isScpLike(url)) {
      return url;
    }
    return resolvePath(baseDir_, url);
  }

  // The config root inside the repository: relative, without "..", normalised ("./a//b/" is
  // "a/b", "." is the top).
  std::optional<std::string> configRoot(TableReader& r, const std::string& path) {
    if (!path.empty() && path.front() == '/') {
      r.error("path",
              "'path' " + quote(path) + " must be relative to the repository's top, not absolute");
      r.reject("path");
      return std::nullopt;
    }
    std::string out;
    size_t start = 0;
    while (start <= path.size()) {
      size_t end = path.find('/', start);
      if (end == std::string::npos) {
        end = path.size();
      }
      const std::string component = path.substr(start, end - start);
      if (component == "..") {
        r.error("path", "'path' " + quote(path) + " must not contain \"..\"");
        r.reject("path");
        return std::nullopt;
      }
      if (!component.empty() && component != ".") {
        out += (out.empty() ? "" : "/") + component;
      }
      start = end + 1;
    }
    return out;
  }

  std::optional<std::string> nonEmptyPath(TableReader& r, std::string_view key) {
    auto p = r.str(key);
    if (!p) {
      return std::nullopt;
    }
    if (p->empty()) {
      r.error(key, "'" + std::string(key) + "' must not be empty");
      r.reject(key);
      return std::nullopt;
    }
    return resolvePath(baseDir_, *p);
  }

  void loadReconcile(const toml::table& t) {
    TableReader r = reader(t, "[reconcile]");
    if (auto d =
            parsed<Duration>(r, "interval", false, parseDuration, "duration", kDurationExamples)) {
      if (*d < std::chrono::seconds(1)) {
        r.error("interval",
                "reconcile interval " + formatDuration(*d) + " is shorter than the minimum, 1s");
        r.reject("interval");
      } else {
        out_.interval = *d;
      }
    }
    // "0s" (no jitter) is allowed here, unlike in other durations.
    if (auto d = parsed<Duration>(r, "jitter", false, parseDurationOrZero, "duration",
                                  kDurationExamples)) {
      out_.jitter = *d;
    }
    // Checked only with both values known to be good: a rejected one has been reported.
    if (!r.rejected("interval") && !r.rejected("jitter") && out_.jitter >= out_.interval) {
      r.error(r.has("jitter") ? "jitter" : "interval",
              "reconcile jitter " + formatDuration(out_.jitter) +
                  (r.has("jitter") ? "" : " (the default)") +
                  " must be shorter than the interval, " + formatDuration(out_.interval));
    }
    finish(r, "reconcile");
  }

  static std::optional<Duration> parseJitter(std::string_view text) {
    static const std::regex zero("0+(ms|s|m|h)");
    if (std::regex_match(text.begin(), text.end(), zero)) {
      return Duration{0};
    }
    return parseDuration(text);
  }

  // "unix:/path" (a relative path is anchored like the other paths) or a loopback ADDR:PORT,
  // the value of `key` (admin, metrics).
  std::optional<std::string> localAddress(TableReader& r, std::string_view key,
                                          const std::string& text) {
    const std::string name = "'" + std::string(key) + "'";
    if (text.starts_with("unix:")) {
      const std::string path = text.substr(5);
      if (path.empty()) {
        r.error(key, name + " " + quote(text) + " names no socket path");
        r.reject(key);
        return std::nullopt;
      }
      std::string resolved = resolvePath(baseDir_, path);
      if (resolved.size() > kMaxUnixPath) {
        r.error(key, name + " socket path " + quote(resolved) + " is longer than " +
                         std::to_string(kMaxUnixPath) + " bytes, too long for a unix socket");
        r.reject(key);
        return std::nullopt;
      }
      return "unix:" + resolved;
    }
    auto e = loopbackEndpoint(r, key, text, "\"unix:/path\" or a loopback ADDR:PORT");
    return e ? std::optional<std::string>(e->str()) : std::nullopt;
  }

  std::optional<Endpoint> loopbackEndpoint(TableReader& r, std::string_view key,
                                           const std::string& text, std::string_view want) {
    auto e = Endpoint::parse(text);
    if (!e) {
      r.error(key, "invalid address " + quote(text) + " in '" + std::string(key) + "' (want " +
                       std::string(want) + ")");
      r.reject(key);
      return std::nullopt;
    }
    if (!isLoopback(e->address)) {
      r.error(key, "'" + std::string(key) + "' " + quote(text) +
                       " is not a loopback address (127.0.0.0/8 or [::1]); it must not be "
                       "reachable from the network");
      r.reject(key);
      return std::nullopt;
    }
    return e;
  }

  void loadWebhook(const toml::table& t) {
    TableReader r = reader(t, "[webhook]");
    AgentWebhook w;
    bool ok = true;
    if (auto listen = r.str("listen", true)) {
      auto e = loopbackEndpoint(r, "listen", *listen, "a loopback ADDR:PORT");
      ok = ok && e.has_value();
      w.listen = e.value_or(Endpoint{});
    } else {
      ok = false;
    }
    if (auto secret = nonEmptyPath(r, "secret_file")) {
      w.secret_file = *secret;
    } else {
      ok = false;
      if (!r.has("secret_file")) {
        r.missing("secret_file");
      }
    }
    finish(r, "webhook");
    // A half-read webhook is not handed on: the file has errors, so nothing runs anyway.
    if (ok) {
      out_.webhook = std::move(w);
    }
  }

  AgentConfig& out_;
  const SourceFile& file_;
  const fs::path& baseDir_;
  Diagnostics& diags_;
};

}  // namespace

AgentConfig loadAgentConfigText(std::string_view text, const std::string& displayName,
                                const std::filesystem::path& baseDir, Diagnostics& diags) {
  AgentConfig out;
  out.host = machineHostname();
  const SourceFile file(displayName);
  out.origin.table = SourceLoc{file, 1, 1};
  if (auto at = nonAsciiOutsideStrings(text)) {
    diags.error(SourceLoc{file, at->first, at->second},
                "non-ASCII character outside a string or comment");
    return out;
  }
  if (auto line = detail::tooManyDotsOutsideStrings(text)) {
    diags.error(SourceLoc{file, *line, 1}, std::string(detail::kTooManyDots));
    return out;
  }
  toml::parse_result result = toml::parse(text, displayName);
  if (!result) {
    const toml::parse_error& err = result.error();
    diags.error(locOf(err.source(), file), std::string(err.description()));
    return out;
  }
  AgentLoader(out, file, baseDir, diags).load(result.table());
  return out;
}

AgentConfig loadAgentConfig(const std::filesystem::path& file, Diagnostics& diags) {
  const std::string name = file.string();
  std::error_code ec;
  const fs::file_status status = fs::status(file, ec);
  std::optional<Result<std::string>> text;
  if (fs::is_regular_file(status)) {
    text = readFileText(file);
  }
  if (!text || !*text) {
    diags.error(SourceLoc{name, 0, 0}, status.type() == fs::file_type::not_found
                                           ? "the agent file does not exist"
                                       : fs::is_directory(status) ? "the agent file is a directory"
                                                                  : "cannot read the agent file");
    AgentConfig out;
    out.host = machineHostname();
    out.origin.table = SourceLoc{name, 0, 0};
    return out;
  }
  fs::path dir = fs::absolute(file, ec).parent_path();
  if (ec) {
    dir = file.parent_path();
  }
  return loadAgentConfigText(**text, name, dir, diags);
}

}  // namespace edgeplane
