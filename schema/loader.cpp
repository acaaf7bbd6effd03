// TOML -> Desired: reads every file of a config root with toml++, keeping file:line:col.
#include "schema/loader.h"

#include <toml++/toml.h>

#include <algorithm>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "schema/validate.h"

namespace edgeplane {
namespace {

SourceLoc locOf(const toml::source_region& src, const std::string& file) {
  return SourceLoc{file, src.begin.line, src.begin.column};
}

std::string_view typeName(toml::node_type t) {
  switch (t) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::date:
    case toml::node_type::time:
    case toml::node_type::date_time:
      return "a date/time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) {
    row[j] = j;
  }
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// Tracks which keys of a table were read, reports type errors and leftover (unknown) keys.
class TableReader {
 public:
  TableReader(const toml::table& table, std::string context, const std::string& file,
              Diagnostics& diags)
      : table_(table), context_(std::move(context)), file_(file), diags_(diags) {
    origin_.table = locOf(table.source(), file);
  }

  const SourceLoc& tableLoc() const { return origin_.table; }
  Origin& origin() { return origin_; }
  const std::string& context() const { return context_; }

  // The node under `key` if present and of type `want`; reports a type error otherwise.
  const toml::node* get(std::string_view key, toml::node_type want) {
    known_.insert(std::string(key));
    const toml::node* n = table_.get(key);
    if (n == nullptr) {
      return nullptr;
    }
    origin_.fields[std::string(key)] = locOf(n->source(), file_);
    if (n->type() != want) {
      error(key, "'" + std::string(key) + "' must be " + std::string(typeName(want)) + ", not " +
                     std::string(typeName(n->type())));
      reject(key);
      return nullptr;
    }
    return n;
  }

  // Marks the value under `key` as rejected; the caller has reported why.
  void reject(std::string_view key) { origin_.rejected.insert(std::string(key)); }
  bool rejected(std::string_view key) const { return origin_.isRejected(key); }

  bool has(std::string_view key) const { return table_.contains(key); }

  // True when `key` is an array with no elements (so "empty" is not confused with "malformed").
  bool isEmptyArray(std::string_view key) const {
    const toml::node* n = table_.get(key);
    return n != nullptr && n->is_array() && n->as_array()->empty();
  }

  // The node under `key` whatever its type (the caller checks), marked as known.
  const toml::node* raw(std::string_view key) {
    known_.insert(std::string(key));
    const toml::node* n = table_.get(key);
    if (n != nullptr) {
      origin_.fields[std::string(key)] = locOf(n->source(), file_);
    }
    return n;
  }

  void missing(std::string_view key) {
    require(key, origin_.table, context_ + " is missing required key '" + std::string(key) + "'");
  }

  // Reports that `key` is needed, unless an unknown key turns out to be a misspelling of it:
  // then the "did you mean" is the one error for the one mistake (see finish()).
  void require(std::string_view key, const SourceLoc& loc, std::string message) {
    required_.push_back(Required{std::string(key), loc, std::move(message)});
  }

  std::optional<std::string> str(std::string_view key, bool required = false) {
    const toml::node* n = get(key, toml::node_type::string);
    if (n == nullptr) {
      if (required && !has(key)) {
        missing(key);
      }
      return std::nullopt;
    }
    return std::string(n->as_string()->get());
  }

  std::optional<int64_t> integer(std::string_view key, int64_t min, int64_t max,
                                 bool required = false) {
    const toml::node* n = get(key, toml::node_type::integer);
    if (n == nullptr) {
      if (required && !has(key)) {
        missing(key);
      }
      return std::nullopt;
    }
    int64_t v = n->as_integer()->get();
    if (v < min || v > max) {
      error(key, "'" + std::string(key) + "' must be between " + std::to_string(min) + " and " +
                     std::to_string(max) + ", got " + std::to_string(v));
      reject(key);
      return std::nullopt;
    }
    return v;
  }

  std::optional<bool> boolean(std::string_view key) {
    const toml::node* n = get(key, toml::node_type::boolean);
    return n != nullptr ? std::optional<bool>(n->as_boolean()->get()) : std::nullopt;
  }

  // An array of strings; element locations are recorded as "key#i".
  std::optional<std::vector<std::string>> strings(std::string_view key, bool required = false) {
    const toml::node* n = get(key, toml::node_type::array);
    if (n == nullptr) {
      if (required && !has(key)) {
        missing(key);
      }
      return std::nullopt;
    }
    std::vector<std::string> out;
    const toml::array& arr = *n->as_array();
    bool ok = true;
    for (size_t i = 0; i < arr.size(); ++i) {
      const toml::node& e = arr[i];
      SourceLoc loc = locOf(e.source(), file_);
      origin_.fields[Origin::elementKey(key, i)] = loc;
      if (!e.is_string()) {
        diags_.error(loc, "elements of '" + std::string(key) + "' must be strings, not " +
                              std::string(typeName(e.type())));
        ok = false;
        continue;
      }
      out.emplace_back(e.as_string()->get());
    }
    if (!ok) {
      reject(key);
      return std::nullopt;
    }
    return out;
  }

  // A table ([key]). A one-element array of tables ([[key]]) is reported but still read, so
  // that what it holds is checked and what refers to it does not dangle.
  const toml::table* table(std::string_view key) {
    const toml::node* n = raw(key);
    if (n != nullptr && n->is_array_of_tables() && n->as_array()->size() == 1) {
      error(key, "'" + std::string(key) + "' must be a table, not an array");
      return n->as_array()->get(0)->as_table();
    }
    n = get(key, toml::node_type::table);
    return n != nullptr ? n->as_table() : nullptr;
  }

  // An array of tables ([[key]]). A single table ([key]) is reported but still read, as one
  // element, for the same reason as in table(); anything else is rejected.
  std::vector<const toml::table*> tables(std::string_view key) {
    std::vector<const toml::table*> out;
    const toml::node* n = raw(key);
    if (n == nullptr || (n->is_array() && n->as_array()->empty())) {
      return out;
    }
    if (!n->is_array_of_tables()) {
      error(key, "'" + std::string(key) + "' must be an array of tables ([[" + context_prefix() +
                     std::string(key) + "]]), not " + std::string(typeName(n->type())));
      if (n->is_table()) {
        out.push_back(n->as_table());
      } else {
        reject(key);
      }
      return out;
    }
    for (const toml::node& e : *n->as_array()) {
      out.push_back(e.as_table());
    }
    return out;
  }

  void error(std::string_view key, std::string message) {
    diags_.error(origin_.at(key), std::move(message));
  }
  void errorAt(const SourceLoc& loc, std::string message) { diags_.error(loc, std::move(message)); }

  // Reports every key that no getter asked for, with a suggestion when one is close, then the
  // required keys that are missing and were not misspelt.
  void finish() {
    std::set<std::string, std::less<>> suggested;
    for (auto&& [k, v] : table_) {
      std::string key(k.str());
      if (known_.count(key) != 0) {
        continue;
      }
      std::string message = "unknown key '" + key + "' in " + context_;
      std::string best;
      size_t bestDistance = 3;
      for (const auto& candidate : known_) {
        size_t d = editDistance(key, candidate);
        if (d < bestDistance) {
          bestDistance = d;
          best = candidate;
        }
      }
      if (!best.empty()) {
        message += "; did you mean '" + best + "'?";
        suggested.insert(best);
      }
      diags_.error(locOf(k.source(), file_), message);
    }
    for (Required& r : required_) {
      if (suggested.count(r.key) == 0) {
        diags_.error(r.loc, std::move(r.message));
      }
    }
    required_.clear();
  }

 private:
  // A required key found missing, reported by finish() unless it was misspelt.
  struct Required {
    std::string key;
    SourceLoc loc;
    std::string message;
  };

  // "namespace." for a context like "[[namespace]]", so nested hints read [[namespace.peer]];
  // nothing at the top level.
  std::string context_prefix() const {
    if (context_.empty() || context_.front() != '[') {
      return "";
    }
    std::string c = context_;
    c.erase(std::remove_if(c.begin(), c.end(), [](char ch) { return ch == '[' || ch == ']'; }),
            c.end());
    return c.empty() ? c : c + ".";
  }

  const toml::table& table_;
  std::string context_;
  const std::string& file_;
  Diagnostics& diags_;
  Origin origin_;
  std::set<std::string, std::less<>> known_;
  std::vector<Required> required_;
};

// One or more DNS labels, checked label by label (a regex over repeated labels recurses per
// label in libstdc++ and overflows the stack on a long enough value).
bool validSubdomain(std::string_view s) {
  return s.size() <= 200 && isValidDnsName(std::string(s) + ".invalid", false);
}

// Parses a required-or-optional string key with `parse`, reporting `what` on failure.
template <typename T, typename Parse>
std::optional<T> parsed(TableReader& r, std::string_view key, bool required, Parse parse,
                        std::string_view what) {
  auto s = r.str(key, required);
  if (!s) {
    return std::nullopt;
  }
  auto v = parse(*s);
  if (!v) {
    r.error(key,
            "invalid " + std::string(what) + " " + quote(*s) + " in '" + std::string(key) + "'");
    r.reject(key);
  }
  return v;
}

// Parses every element of a string array with `parse`. Malformed elements are reported and
// left out; the element locations are renumbered to match what is kept, so that a later error
// about element i of the result points at the element it is about.
template <typename T, typename Parse>
std::vector<T> parsedList(TableReader& r, std::string_view key, bool required, Parse parse,
                          std::string_view what) {
  std::vector<T> out;
  auto list = r.strings(key, required);
  if (!list) {
    return out;
  }
  std::vector<SourceLoc> kept;
  for (size_t i = 0; i < list->size(); ++i) {
    const SourceLoc loc = r.origin().at(key, i);
    auto v = parse((*list)[i]);
    if (!v) {
      r.errorAt(loc, "invalid " + std::string(what) + " " + quote((*list)[i]) + " in '" +
                         std::string(key) + "'");
      continue;
    }
    out.push_back(*v);
    kept.push_back(loc);
  }
  if (kept.size() != list->size()) {
    r.reject(key);
    for (size_t i = 0; i < list->size(); ++i) {
      r.origin().fields.erase(Origin::elementKey(key, i));
    }
    for (size_t i = 0; i < kept.size(); ++i) {
      r.origin().fields[Origin::elementKey(key, i)] = kept[i];
    }
  }
  return out;
}

template <typename E>
std::optional<E> enumValue(TableReader& r, std::string_view key,
                           std::initializer_list<std::pair<std::string_view, E>> options) {
  auto s = r.str(key);
  if (!s) {
    return std::nullopt;
  }
  std::string allowed;
  for (const auto& [name, value] : options) {
    if (*s == name) {
      return value;
    }
    allowed += (allowed.empty() ? "" : " | ") + std::string(name);
  }
  r.error(key, "'" + std::string(key) + "' must be one of " + allowed + ", got " + quote(*s));
  r.reject(key);
  return std::nullopt;
}

std::optional<std::string> dnsName(std::string_view s, bool allowWildcard) {
  if (isValidDnsName(s, allowWildcard)) {
    return std::string(s);
  }
  return std::nullopt;
}

const std::regex& namespaceNamePattern() {
  static const std::regex re("[a-z0-9-]{1,11}");
  return re;
}

std::string requiredName(TableReader& r) {
  return r.str("name", true).value_or("");
}

class Loader {
 public:
  Loader(Desired& out, Diagnostics& diags, const std::string& file)
      : out_(out), diags_(diags), file_(file) {}

  void load(const toml::table& root) {
    TableReader r(root, "the top level", file_, diags_);
    if (const toml::table* t = r.table("fleet")) {
      loadFleet(*t);
    }
    for (const toml::table* t : r.tables("host")) {
      loadHost(*t);
    }
    for (const toml::table* t : r.tables("namespace")) {
      loadNamespace(*t);
    }
    for (const toml::table* t : r.tables("forward")) {
      loadForward(*t);
    }
    for (const toml::table* t : r.tables("certificate")) {
      loadCertificate(*t);
    }
    for (const toml::table* t : r.tables("site")) {
      loadSite(*t);
    }
    for (const toml::table* t : r.tables("passthrough")) {
      loadPassthrough(*t);
    }
    for (const toml::table* t : r.tables("gateway")) {
      loadGateway(*t);
    }
    for (const toml::table* t : r.tables("api_key")) {
      loadApiKey(*t);
    }
    r.finish();
  }

 private:
  TableReader reader(const toml::table& t, std::string context) {
    return TableReader(t, std::move(context), file_, diags_);
  }

  void loadFleet(const toml::table& t) {
    TableReader r = reader(t, "[fleet]");
    if (out_.fleet) {
      const SourceLoc& first = out_.fleet->origin.table;
      r.errorAt(r.tableLoc(), "duplicate [fleet] table (first defined at " + first.file + ":" +
                                  std::to_string(first.line) + ":" + std::to_string(first.column) +
                                  ")");
    }
    Fleet f;
    f.base_domain = parsed<std::string>(
        r, "base_domain", false, [](std::string_view s) { return dnsName(s, false); },
        "domain name");
    f.acme_directory = r.str("acme_directory");
    if (f.acme_directory && f.acme_directory->rfind("https://", 0) != 0 &&
        f.acme_directory->rfind("http://", 0) != 0) {
      r.error("acme_directory", "'acme_directory' must be an http:// or https:// URL");
    }
    f.acme_email = r.str("acme_email");
    if (f.acme_email) {
      auto at = f.acme_email->find('@');
      if (at == std::string::npos || at == 0 ||
          !isValidDnsName(std::string_view(*f.acme_email).substr(at + 1), false)) {
        r.error("acme_email",
                "invalid e-mail address " + quote(*f.acme_email) + " in 'acme_email'");
      }
    }
    f.uplink_pool = parsed<IpPrefix>(r, "uplink_pool", false, IpPrefix::parse, "CIDR");
    r.finish();
    f.origin = std::move(r.origin());
    if (!out_.fleet) {
      out_.fleet = std::move(f);
    }
  }

  void loadHost(const toml::table& t) {
    TableReader r = reader(t, "[[host]]");
    Host h;
    h.name = requiredName(r);
    if (!h.name.empty() &&
        !std::regex_match(h.name, std::regex("[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?"))) {
      r.error("name", "host name " + quote(h.name) +
                          " must be lower-case letters, digits and inner hyphens (at most 64)");
    }
    r.finish();
    h.origin = std::move(r.origin());
    out_.hosts.push_back(std::move(h));
  }

  void loadNamespace(const toml::table& t) {
    TableReader r = reader(t, "[[namespace]]");
    Namespace ns;
    ns.name = requiredName(r);
    if (!ns.name.empty() && !std::regex_match(ns.name, namespaceNamePattern())) {
      r.error("name", "namespace name " + quote(ns.name) + " must match [a-z0-9-]{1,11}");
    }
    ns.hosts = r.strings("hosts");
    if (ns.hosts && ns.hosts->empty() && r.isEmptyArray("hosts")) {
      r.error("hosts", "'hosts' must name at least one host (leave it out for every host)");
      r.reject("hosts");
    }
    ns.suspended = r.boolean("suspended").value_or(false);
    if (const toml::table* wg = r.table("wireguard")) {
      ns.wireguard = loadWireGuard(*wg);
    }
    for (const toml::table* p : r.tables("peer")) {
      ns.peers.push_back(loadPeer(*p));
    }
    for (const toml::table* rt : r.tables("route")) {
      ns.routes.push_back(loadRoute(*rt));
    }
    if (!ns.peers.empty() && !r.has("wireguard")) {
      r.require("wireguard", ns.peers.front().origin.table,
                "namespace " + quote(ns.name) + " has peers but no [namespace.wireguard]");
    }
    r.finish();
    ns.origin = std::move(r.origin());
    out_.namespaces.push_back(std::move(ns));
  }

  WireGuardConfig loadWireGuard(const toml::table& t) {
    TableReader r = reader(t, "[namespace.wireguard]");
    WireGuardConfig wg;
    wg.address = parsedList<IpPrefix>(r, "address", true, IpPrefix::parse, "interface address");
    if (r.has("address") && wg.address.empty() && r.isEmptyArray("address")) {
      r.error("address", "'address' must list at least one interface address");
    }
    wg.listen_port = static_cast<uint16_t>(r.integer("listen_port", 1, 65535, true).value_or(0));
    if (auto mtu = r.integer("mtu", 1280, 9000)) {
      wg.mtu = static_cast<uint16_t>(*mtu);
    }
    r.finish();
    wg.origin = std::move(r.origin());
    return wg;
  }

  Peer loadPeer(const toml::table& t) {
    TableReader r = reader(t, "[[namespace.peer]]");
    Peer p;
    p.name = requiredName(r);
    if (auto key = parsed<WgKey>(r, "public_key", true, WgKey::parseBase64,
                                 "WireGuard public key (base64 of 32 bytes)")) {
      p.public_key = *key;
    }
    p.allowed_ips = parsedList<IpPrefix>(r, "allowed_ips", true, IpPrefix::parse, "CIDR");
    for (size_t i = 0; i < p.allowed_ips.size(); ++i) {
      if (p.allowed_ips[i].network() != p.allowed_ips[i]) {
        r.errorAt(r.origin().at("allowed_ips", i),
                  "allowed_ips entry " + quote(p.allowed_ips[i].str()) +
                      " has host bits set; did you mean " +
                      quote(p.allowed_ips[i].network().str()) + "?");
      }
    }
    p.endpoint = parsed<HostPort>(r, "endpoint", false, HostPort::parse, "endpoint (host:port)");
    if (auto k = r.integer("persistent_keepalive", 1, 65535)) {
      p.persistent_keepalive = static_cast<uint16_t>(*k);
    }
    r.finish();
    p.origin = std::move(r.origin());
    return p;
  }

  NamespaceRoute loadRoute(const toml::table& t) {
    TableReader r = reader(t, "[[namespace.route]]");
    NamespaceRoute rt;
    if (auto d = parsed<IpPrefix>(r, "destination", true, IpPrefix::parse, "CIDR")) {
      rt.destination = *d;
      if (d->network() != *d) {
        r.error("destination", "destination " + quote(d->str()) +
                                   " has host bits set; did you mean " + quote(d->network().str()) +
                                   "?");
      }
    }
    if (auto v = parsed<IpAddress>(r, "via", true, IpAddress::parse, "IP address")) {
      rt.via = *v;
    }
    r.finish();
    rt.origin = std::move(r.origin());
    return rt;
  }

  void loadForward(const toml::table& t) {
    TableReader r = reader(t, "[[forward]]");
    Forward f;
    f.name = requiredName(r);
    f.namespace_name = r.str("namespace", true).value_or("");
    f.protocol =
        enumValue<Protocol>(r, "protocol", {{"tcp", Protocol::Tcp}, {"udp", Protocol::Udp}})
            .value_or(Protocol::Tcp);
    if (!r.has("protocol")) {
      r.missing("protocol");
    }
    if (!r.has("public_port")) {
      r.missing("public_port");
    }
    if (const toml::node* n = r.raw("public_port")) {
      if (n->is_integer()) {
        int64_t v = n->as_integer()->get();
        if (v < 1 || v > 65535) {
          r.error("public_port",
                  "'public_port' must be between 1 and 65535, got " + std::to_string(v));
          r.reject("public_port");
        } else {
          f.public_port = PortRange{static_cast<uint16_t>(v), static_cast<uint16_t>(v)};
        }
      } else if (n->is_string()) {
        std::string s(n->as_string()->get());
        if (auto pr = PortRange::parse(s)) {
          f.public_port = *pr;
        } else {
          r.error("public_port", "invalid port range " + quote(s) +
                                     " in 'public_port' (want 1-65535 or \"first-last\")");
          r.reject("public_port");
        }
      } else {
        r.error("public_port", "'public_port' must be an integer or a \"first-last\" string, not " +
                                   std::string(typeName(n->type())));
        r.reject("public_port");
      }
    }
    if (auto target = parsed<Endpoint>(r, "target", true, Endpoint::parse, "target (ip:port)")) {
      f.target = *target;
      if (target->address.family != IpAddress::Family::V4) {
        // The forwards' nftables tables are family ip: an IPv6 target could not be applied.
        r.error("target", "forward target " + target->str() + " must be an IPv4 address");
        r.reject("target");
      }
      uint32_t span = f.public_port.last - f.public_port.first;
      if (f.public_port.first != 0 && uint32_t{target->port} + span > 65535) {
        r.error("target", "target port " + std::to_string(target->port) + " plus the " +
                              std::to_string(span + 1) + "-port range exceeds 65535");
      }
    }
    r.finish();
    f.origin = std::move(r.origin());
    out_.forwards.push_back(std::move(f));
  }

  void loadCertificate(const toml::table& t) {
    TableReader r = reader(t, "[[certificate]]");
    Certificate c;
    c.name = requiredName(r);
    c.domains = parsedList<std::string>(
        r, "domains", true, [](std::string_view s) { return dnsName(s, true); }, "domain name");
    c.issuer =
        enumValue<Issuer>(
            r, "issuer",
            {{"acme", Issuer::Acme}, {"self-signed", Issuer::SelfSigned}, {"files", Issuer::Files}})
            .value_or(Issuer::Acme);
    c.cert_file = r.str("cert_file");
    c.key_file = r.str("key_file");
    if (c.issuer == Issuer::Files) {
      for (const char* key : {"cert_file", "key_file"}) {
        if (!r.has(key)) {
          r.require(key, r.tableLoc(),
                    "certificate " + quote(c.name) + " with issuer \"files\" needs '" + key + "'");
        }
      }
    }
    r.finish();
    c.origin = std::move(r.origin());
    out_.certificates.push_back(std::move(c));
  }

  // hostnames = [...] or subdomain = "x" (expanded after every file is read).
  void loadHostnames(TableReader& r, std::vector<std::string>& hostnames,
                     std::optional<std::string>& subdomain) {
    hostnames = parsedList<std::string>(
        r, "hostnames", false, [](std::string_view s) { return dnsName(s, true); }, "hostname");
    subdomain = r.str("subdomain");
    if (subdomain && !validSubdomain(*subdomain)) {
      r.error("subdomain", "invalid subdomain " + quote(*subdomain) + " in 'subdomain'");
      r.reject("subdomain");
      subdomain.reset();
    }
    if (r.has("hostnames") && r.has("subdomain")) {
      r.error("subdomain", "set either 'hostnames' or 'subdomain', not both");
    } else if (!r.has("hostnames") && !r.has("subdomain")) {
      r.require("hostnames", r.tableLoc(), r.context() + " needs 'hostnames' (or 'subdomain')");
    } else if (r.isEmptyArray("hostnames")) {
      r.error("hostnames", "'hostnames' must list at least one hostname");
    }
  }

  std::vector<Endpoint> backends(TableReader& r) {
    auto b = parsedList<Endpoint>(r, "backends", true, Endpoint::parse, "backend (ip:port)");
    if (r.has("backends") && b.empty() && r.isEmptyArray("backends")) {
      r.error("backends", "'backends' must list at least one backend");
    }
    return b;
  }

  Balance balance(TableReader& r) {
    return enumValue<Balance>(r, "balance",
                              {{"round_robin", Balance::RoundRobin}, {"random", Balance::Random}})
        .value_or(Balance::RoundRobin);
  }

  void loadSite(const toml::table& t) {
    TableReader r = reader(t, "[[site]]");
    Site s;
    s.name = requiredName(r);
    loadHostnames(r, s.hostnames, s.subdomain);
    s.namespace_name = r.str("namespace", true).value_or("");
    s.backends = backends(r);
    s.balance = balance(r);
    s.certificate = r.str("certificate", true).value_or("");
    s.redirect_http = r.boolean("redirect_http").value_or(false);
    if (const toml::table* hc = r.table("health_check")) {
      TableReader h = reader(*hc, "'health_check'");
      HealthCheck check;
      check.path = h.str("path").value_or("/");
      if (check.path.empty() || check.path[0] != '/') {
        h.error("path", "health check path " + quote(check.path) + " must start with '/'");
      }
      check.interval = parsed<Duration>(h, "interval", false, parseDuration, "duration")
                           .value_or(check.interval);
      check.timeout =
          parsed<Duration>(h, "timeout", false, parseDuration, "duration").value_or(check.timeout);
      if (!h.rejected("interval") && !h.rejected("timeout") && check.timeout >= check.interval) {
        h.error("timeout", "health check timeout " + formatDuration(check.timeout) +
                               " must be shorter than its interval " +
                               formatDuration(check.interval));
      }
      h.finish();
      s.health_check = check;
    }
    r.finish();
    s.origin = std::move(r.origin());
    out_.sites.push_back(std::move(s));
  }

  void loadPassthrough(const toml::table& t) {
    TableReader r = reader(t, "[[passthrough]]");
    Passthrough p;
    p.name = requiredName(r);
    loadHostnames(r, p.hostnames, p.subdomain);
    p.namespace_name = r.str("namespace", true).value_or("");
    p.backends = backends(r);
    p.balance = balance(r);
    p.proxy_protocol =
        enumValue<ProxyProtocol>(
            r, "proxy_protocol",
            {{"none", ProxyProtocol::None}, {"v1", ProxyProtocol::V1}, {"v2", ProxyProtocol::V2}})
            .value_or(ProxyProtocol::None);
    r.finish();
    p.origin = std::move(r.origin());
    out_.passthroughs.push_back(std::move(p));
  }

  void loadGateway(const toml::table& t) {
    TableReader r = reader(t, "[[gateway]]");
    Gateway g;
    g.name = requiredName(r);
    auto hostname = parsed<std::string>(
        r, "hostname", false, [](std::string_view s) { return dnsName(s, false); }, "hostname");
    g.subdomain = r.str("subdomain");
    if (r.has("hostname") && r.has("subdomain")) {
      r.error("subdomain", "set either 'hostname' or 'subdomain', not both");
    } else if (!r.has("hostname") && !r.has("subdomain")) {
      r.require("hostname", r.tableLoc(), "[[gateway]] needs 'hostname' (or 'subdomain')");
    }
    g.hostname = hostname.value_or("");
    g.namespace_name = r.str("namespace", true).value_or("");
    g.certificate = r.str("certificate", true).value_or("");
    g.rate_limit = parsed<RateLimit>(r, "rate_limit", false, RateLimit::parse,
                                     "rate limit (want N/second, N/minute or N/hour)");
    for (const toml::table* e : r.tables("endpoint")) {
      TableReader er = reader(*e, "[[gateway.endpoint]]");
      GatewayEndpoint ep;
      ep.path = er.str("path", true).value_or("");
      if (er.has("path") && (ep.path.empty() || ep.path[0] != '/')) {
        er.error("path", "endpoint path " + quote(ep.path) + " must start with '/'");
      }
      ep.method = er.str("method", true).value_or("");
      static const std::set<std::string, std::less<>> methods = {"GET",   "HEAD",   "POST",   "PUT",
                                                                 "PATCH", "DELETE", "OPTIONS"};
      if (er.has("method") && !ep.method.empty() && methods.count(ep.method) == 0) {
        er.error("method",
                 "'method' must be one of GET | HEAD | POST | PUT | PATCH | DELETE | "
                 "OPTIONS, got " +
                     quote(ep.method));
      }
      ep.backends = backends(er);
      ep.balance = balance(er);
      er.finish();
      ep.origin = std::move(er.origin());
      g.endpoints.push_back(std::move(ep));
    }
    if (g.endpoints.empty() && !r.rejected("endpoint")) {
      r.require("endpoint", r.tableLoc(),
                "[[gateway]] " + quote(g.name) +
                    " has no [[gateway.endpoint]]; a gateway needs at least one");
    }
    r.finish();
    g.origin = std::move(r.origin());
    out_.gateways.push_back(std::move(g));
  }

  void loadApiKey(const toml::table& t) {
    TableReader r = reader(t, "[[api_key]]");
    ApiKey k;
    k.name = requiredName(r);
    k.id = r.str("id", true).value_or("");
    if (r.has("id") && !std::regex_match(k.id, std::regex("[A-Za-z0-9_-]{4,64}"))) {
      r.error("id", "API key id " + quote(k.id) +
                        " must be 4 to 64 characters of letters, digits, '_' or '-'");
    }
    if (auto d = parsed<std::array<uint8_t, 32>>(r, "sha256", true, parseHex32,
                                                 "digest (want 64 hex digits)")) {
      k.sha256 = *d;
    }
    k.gateways = r.strings("gateways", true).value_or(std::vector<std::string>{});
    if (r.has("gateways") && k.gateways.empty() && r.isEmptyArray("gateways")) {
      r.error("gateways", "'gateways' must name at least one gateway");
    }
    k.role = enumValue<ApiKeyRole>(r, "role",
                                   {{"worker", ApiKeyRole::Worker}, {"admin", ApiKeyRole::Admin}})
                 .value_or(ApiKeyRole::Worker);
    k.enabled = r.boolean("enabled").value_or(true);
    r.finish();
    k.origin = std::move(r.origin());
    out_.api_keys.push_back(std::move(k));
  }

  Desired& out_;
  Diagnostics& diags_;
  const std::string& file_;
};

}  // namespace

namespace {

// `subdomain = "x"` becomes x.<base_domain>; needs every file read first.
void expandSubdomains(Desired& d, Diagnostics& diags) {
  const std::optional<std::string>& base =
      d.fleet ? d.fleet->base_domain : std::optional<std::string>{};
  // A base_domain that was given but rejected has been reported already.
  const bool baseRejected = d.fleet && d.fleet->origin.isRejected("base_domain");
  auto expand = [&](const std::optional<std::string>& sub, const Origin& origin,
                    std::string_view kind, const std::string& name) -> std::optional<std::string> {
    if (!sub) {
      return std::nullopt;
    }
    if (!base) {
      if (!baseRejected) {
        diags.error(origin.at("subdomain"),
                    std::string(kind) + " " + quote(name) +
                        " uses 'subdomain' but [fleet] sets no base_domain");
      }
      return std::nullopt;
    }
    std::string full = *sub + "." + *base;
    if (!isValidDnsName(full, false)) {
      diags.error(origin.at("subdomain"), "subdomain " + quote(*sub) + " with base_domain " +
                                              quote(*base) + " is not a valid hostname");
      return std::nullopt;
    }
    return full;
  };
  for (auto& s : d.sites) {
    if (auto h = expand(s.subdomain, s.origin, "site", s.name)) {
      s.hostnames = {*h};
    }
  }
  for (auto& p : d.passthroughs) {
    if (auto h = expand(p.subdomain, p.origin, "passthrough", p.name)) {
      p.hostnames = {*h};
    }
  }
  for (auto& g : d.gateways) {
    if (auto h = expand(g.subdomain, g.origin, "gateway", g.name)) {
      g.hostname = *h;
    }
  }
}

}  // namespace

namespace {

// TOML allows non-ASCII only inside strings and comments. toml++ 3.3.0 reaches an
// `unreachable` (undefined behaviour) on some non-ASCII code points elsewhere (upstream
// issue #295, fixed after 3.3.0), so such bytes are found and reported before it parses.
// Returns the 1-based line and column of the first one, if any.
std::optional<std::pair<uint32_t, uint32_t>> nonAsciiOutsideStrings(std::string_view t) {
  uint32_t line = 1;
  uint32_t col = 1;
  size_t i = 0;
  auto advance = [&](size_t n) {
    for (size_t k = 0; k < n && i < t.size(); ++k, ++i) {
      if (t[i] == '\n') {
        ++line;
        col = 1;
      } else if ((static_cast<unsigned char>(t[i]) & 0xC0) != 0x80) {
        ++col;  // count characters, not UTF-8 continuation bytes
      }
    }
  };
  auto startsWith = [&](std::string_view s) { return t.substr(i, s.size()) == s; };
  while (i < t.size()) {
    const char c = t[i];
    if (static_cast<unsigned char>(c) >= 0x80) {
      return std::make_pair(line, col);
    }
    if (c == '#') {  // comment: to the end of the line
      while (i < t.size() && t[i] != '\n') {
        advance(1);
      }
    } else if (startsWith("\"\"\"") || startsWith("'''")) {  // multi-line string
      const std::string_view close = t.substr(i, 3);
      const bool escapes = close[0] == '"';
      advance(3);
      while (i < t.size() && !startsWith(close)) {
        advance(escapes && t[i] == '\\' ? 2 : 1);
      }
      advance(3);
      while (i < t.size() && t[i] == close[0]) {  // up to two quotes may end the content
        advance(1);
      }
    } else if (c == '"' || c == '\'') {  // single-line string; a newline ends it (an error
      advance(1);                        // toml++ reports itself)
      while (i < t.size() && t[i] != c && t[i] != '\n') {
        advance(c == '"' && t[i] == '\\' ? 2 : 1);
      }
      advance(1);
    } else {
      advance(1);
    }
  }
  return std::nullopt;
}

}  // namespace

void loadDocument(std::string_view text, const std::string& displayName, Desired& out,
                  Diagnostics& diags) {
  if (auto at = nonAsciiOutsideStrings(text)) {
    diags.error(SourceLoc{displayName, at->first, at->second},
                "non-ASCII character outside a string or comment");
    return;
  }
  toml::parse_result result = toml::parse(text, displayName);
  if (!result) {
    const toml::parse_error& err = result.error();
    diags.error(locOf(err.source(), displayName), std::string(err.description()));
    return;
  }
  Loader(out, diags, displayName).load(result.table());
}

Desired loadDirectory(const std::filesystem::path& root, Diagnostics& diags) {
  namespace fs = std::filesystem;
  Desired out;
  const std::string rootName = root.lexically_normal().string();
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    diags.error(SourceLoc{rootName, 0, 0}, "config root is not a directory");
    return out;
  }
  std::vector<fs::path> files;
  fs::recursive_directory_iterator it(root, fs::directory_options::none, ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const fs::path& p = it->path();
    // Hidden entries (.git, editor lock files and the like) are not config.
    std::error_code entryEc;
    if (p.filename().string().front() == '.') {
      if (it->is_directory(entryEc)) {
        it.disable_recursion_pending();
      }
      continue;
    }
    if (p.extension() != ".toml") {
      continue;
    }
    // A *.toml that is a dangling symlink (or cannot be examined) is kept, to be reported as
    // unreadable below: silently leaving a file out would withdraw what it declares.
    const fs::file_status status = it->status(entryEc);
    if (fs::is_regular_file(status) || status.type() == fs::file_type::not_found || entryEc) {
      files.push_back(p);
    }
  }
  if (ec) {
    diags.error(SourceLoc{rootName, 0, 0}, "cannot read config root: " + ec.message());
    return out;
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    diags.error(SourceLoc{rootName, 0, 0}, "config root has no *.toml files");
    return out;
  }
  for (const fs::path& file : files) {
    const std::string name = file.lexically_normal().string();
    std::ifstream in(file, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    if (!in) {
      diags.error(SourceLoc{name, 0, 0}, "cannot read file");
      continue;
    }
    loadDocument(text.str(), name, out, diags);
  }
  expandSubdomains(out, diags);
  return out;
}

Desired loadAndValidate(const std::filesystem::path& root, Diagnostics& diags) {
  Desired d = loadDirectory(root, diags);
  validate(d, diags);
  return d;
}

}  // namespace edgeplane
