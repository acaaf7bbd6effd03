// `edgeplane peer-config` (see peer_config.h).
#include "reconciler/cli/peer_config.h"

#include <stdlib.h>

#include <cerrno>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <utility>

#include "reconciler/cli/command_support.h"
#include "reconciler/cli/commands.h"
#include "reconciler/cli/fetch_child.h"
#include "reconciler/cli/git_run.h"
#include "reconciler/cli/history.h"
#include "reconciler/cli/qr_text.h"
#include "reconciler/system/host_driver.h"
#include "reconciler/system/wg_keys.h"
#include "schema/git_url.h"

namespace edgeplane::cli {

namespace {

namespace fs = std::filesystem;

std::string joinPrefixes(const std::vector<IpPrefix>& prefixes) {
  std::string out;
  for (const auto& p : prefixes) {
    out += (out.empty() ? "" : ", ") + p.str();
  }
  return out;
}

std::string namesOf(const auto& items) {
  std::string out;
  for (const auto& item : items) {
    out += (out.empty() ? "" : ", ") + item.name;
  }
  return out.empty() ? "none" : out;
}

// The peer's own addresses: its allowed_ips inside the namespace's WireGuard networks (a
// routed network behind the peer is not an address of its interface); all when none is.
std::vector<IpPrefix> peerAddresses(const Peer& p, const std::vector<IpPrefix>& networks) {
  std::vector<IpPrefix> out;
  for (const auto& a : p.allowed_ips) {
    for (const auto& n : networks) {
      if (n.address.family == a.address.family && n.length <= a.length && n.contains(a.address)) {
        out.push_back(a);
        break;
      }
    }
  }
  return out.empty() ? p.allowed_ips : out;
}

// The .conf without its comment lines: they are instructions for whoever reads the text, and
// each byte less keeps the QR code smaller (it must fit a terminal and a phone's camera).
std::string withoutComments(const std::string& conf) {
  std::string out;
  std::istringstream in(conf);
  for (std::string line; std::getline(in, line);) {
    if (!line.starts_with("#")) {
      out += line + "\n";
    }
  }
  return out;
}

// A directory under the system's temporary directory, removed with everything in it.
class TempDir {
 public:
  static Result<TempDir> make() {
    std::string tmpl = (fs::temp_directory_path() / "edgeplane-peer-config-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      const int err = errno;
      return terminal("cannot create a temporary directory: " + errnoText(err));
    }
    return TempDir(tmpl);
  }
  TempDir(TempDir&& other) noexcept : path_(std::exchange(other.path_, {})) {}
  TempDir& operator=(TempDir&&) = delete;
  ~TempDir() {
    if (!path_.empty()) {
      std::error_code ec;
      fs::remove_all(path_, ec);
    }
  }
  const fs::path& path() const { return path_; }

 private:
  explicit TempDir(fs::path path) : path_(std::move(path)) {}
  fs::path path_;
};

// The head commit of a Git source (--source, the agent file's [source] under --ref, --path or
// --allowed-signers) exported into `dir`, as `plan --offline` gets it: fetched by the bounded
// child into a throw-away cache beside `dir`, so that nothing of this host's state changes and
// no lock is taken; refused when the source names allowed signers and none signed it (a peer
// is not handed addresses from a commit apply would refuse). The anti-rollback rules are
// apply's: this prints, it applies nothing.
Result<void> exportHead(const Options& o, const GitSettings& g, const fs::path& scratch,
                        const fs::path& dir) {
  const fs::path cache = scratch / "source";
  auto scrubbed = [&g](const Error& e) { return terminal(scrubCredentials(e.message, g.url)); };
  auto opened = source::GitSource::open(cache, specOf(g));
  if (!opened) {
    return scrubbed(opened.error());
  }
  auto fetched = fetchInChild(cache, opened->spec(), g.fetchTimeout,
                              o.fetchHelper.empty() ? defaultFetchHelper() : o.fetchHelper);
  if (!fetched) {
    return scrubbed(fetched.error());
  }
  auto src = source::GitSource::open(cache, specOf(g));
  auto head = src ? src->describeCommit(*fetched) : Result<source::FetchResult>(src.error());
  if (!head) {
    return scrubbed(head.error());
  }
  std::cerr << "source: " << gitSourceText(g) << ": commit " << shortCommit(head->commitId) << " \""
            << head->subject << "\" by " << head->author << "\n";
  std::string note;
  if (auto refusal = checkSignature(*src, g, head->commitId, note)) {
    return terminal("commit " + shortCommit(head->commitId) + " is refused: " + *refusal);
  }
  if (!note.empty()) {
    std::cerr << note << "\n";
  }
  auto files = exportCommit(*src, g, head->commitId, dir);
  if (!files) {
    return files.error();
  }
  return {};
}

}  // namespace

Result<std::string> peerEndpoint(const std::optional<std::string>& flag, uint16_t listenPort,
                                 std::string_view host) {
  if (!flag) {
    return terminal("the config gives host " + std::string(host) +
                    " no public address; pass --endpoint HOST[:PORT] (the address peers reach "
                    "this host at; the port defaults to the namespace's listen_port " +
                    std::to_string(listenPort) + ")");
  }
  if (auto ip = IpAddress::parse(*flag)) {
    return HostPort{ip->str(), listenPort}.str();
  }
  if (isValidDnsName(*flag, false)) {
    return HostPort{*flag, listenPort}.str();
  }
  if (auto hp = HostPort::parse(*flag); hp && hp->port != 0) {
    return hp->str();
  }
  return terminal("--endpoint " + *flag +
                  " is not HOST or HOST:PORT (a DNS name or an IP address; [IPv6]:PORT)");
}

Result<std::string> renderPeerConfig(const Desired& hostDesired, std::string_view ns,
                                     std::string_view peer, const WgKey& hostPublicKey,
                                     std::string_view endpoint) {
  const Namespace* n = hostDesired.findNamespace(ns);
  if (n == nullptr) {
    return terminal("no namespace \"" + std::string(ns) +
                    "\" on this host (namespaces: " + namesOf(hostDesired.namespaces) + ")");
  }
  if (!n->wireguard) {
    return terminal("namespace " + std::string(ns) + " has no [namespace.wireguard]");
  }
  const Peer* p = nullptr;
  for (const auto& candidate : n->peers) {
    if (candidate.name == peer) {
      p = &candidate;
    }
  }
  if (p == nullptr) {
    return terminal("no peer \"" + std::string(peer) + "\" in namespace " + std::string(ns) +
                    " (peers: " + namesOf(n->peers) + ")");
  }
  std::vector<IpPrefix> networks;
  for (const auto& a : n->wireguard->address) {
    networks.push_back(a.network());
  }
  std::string out = "# wg-quick configuration of peer " + p->name + " in namespace " + n->name +
                    " (edgeplane peer-config).\n# Fill in the private key the peer holds (`wg "
                    "genkey`; its public half is\n# the peer's public_key in the config)";
  out += p->preshared_key_file ? " and the preshared key\n# (the host's preshared_key_file).\n"
                               : ".\n";
  out += "[Interface]\n";
  out += "PrivateKey = " + std::string(kFillIn) + "\n";
  out += "Address = " + joinPrefixes(peerAddresses(*p, networks)) + "\n";
  out += "\n[Peer]\n";
  out += "PublicKey = " + hostPublicKey.base64() + "\n";
  if (p->preshared_key_file) {
    out += "PresharedKey = " + std::string(kFillIn) + "\n";
  }
  out += "Endpoint = " + std::string(endpoint) + "\n";
  out += "AllowedIPs = " + joinPrefixes(networks) + "\n";
  if (p->persistent_keepalive) {
    out += "PersistentKeepalive = " + std::to_string(*p->persistent_keepalive) + "\n";
  }
  return out;
}

int cmdPeerConfig(const Options& o) {
  const PeerConfigArgs& a = o.peerConfig;
  // The config: --config; a Git source's head commit (--source); else the tree the last Git
  // run accepted (kept in the state dir).
  fs::path dir = o.config ? fs::path(*o.config) : keptConfigDir(o.stateDir);
  std::optional<std::string> displayRoot;
  std::optional<TempDir> scratch;
  if (o.git && !o.config) {
    auto made = TempDir::make();
    if (!made) {
      std::cerr << "edgeplane peer-config: " << made.error().message << "\n";
      return 1;
    }
    scratch.emplace(std::move(made).value());
    dir = scratch->path() / "config";
    if (auto exported = exportHead(o, *o.git, scratch->path(), dir); !exported) {
      std::cerr << "edgeplane peer-config: " << exported.error().message << "\n";
      return 1;
    }
    displayRoot = o.git->path;
  }
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    std::cerr << "edgeplane peer-config: no config at " << dir.string()
              << " (nothing applied from Git yet); pass --config DIR or --source URL\n";
    return 1;
  }
  LoadOutcome lo = loadConfig(dir, displayRoot, o);
  if (!lo.loaded) {
    const std::string where =
        displayRoot ? "the config of " + gitSourceText(*o.git) : "the config in " + dir.string();
    std::cerr << lo.diagnostics << "edgeplane peer-config: "
              << (lo.errors != 0 ? where + " is not valid" : lo.hostError) << "\n";
    return 1;
  }
  const Desired here = resolveFor(*lo.loaded->all, lo.loaded->host);
  const Namespace* n = here.findNamespace(a.ns);
  const uint16_t port = n != nullptr && n->wireguard ? n->wireguard->listen_port : 0;
  // The namespace and peer are checked before the key store is read: a typo gets its answer
  // without root.
  if (auto check = renderPeerConfig(here, a.ns, a.peer, WgKey{}, ""); !check) {
    std::cerr << "edgeplane peer-config: " << check.error().message << "\n";
    return 1;
  }
  auto endpoint = peerEndpoint(a.endpoint, port, lo.loaded->host);
  if (!endpoint) {
    std::cerr << "edgeplane peer-config: " << endpoint.error().message << "\n";
    return 1;
  }
  auto key = sys::loadKey(sys::wireguardKeyPath(o.stateDir, a.ns));
  if (!key || !*key) {
    std::cerr << "edgeplane peer-config: namespace " << a.ns << " has no usable WireGuard key in "
              << o.stateDir << ": "
              << (key ? "none was made yet (run edgeplane apply first)" : key.error().message)
              << "\n";
    return 1;
  }
  auto conf = renderPeerConfig(here, a.ns, a.peer, (*key)->publicKey, *endpoint);
  if (!conf) {
    std::cerr << "edgeplane peer-config: " << conf.error().message << "\n";
    return 1;
  }
  if (!a.qr) {
    std::cout << *conf;
    return 0;
  }
  auto qr = qrTerminalText(withoutComments(*conf));
  if (!qr) {
    std::cerr << "edgeplane peer-config: " << qr.error().message << "\n";
    return 1;
  }
  std::cout << *qr;
  return 0;
}

}  // namespace edgeplane::cli
