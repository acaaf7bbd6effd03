// JSON codec for HostState + StoreView with Poco::JSON; strict about shapes and values.
#include "reconciler/core/state_json.h"

#include "schema/snapshot.h"

#include <Poco/Dynamic/Var.h>
#include <Poco/Exception.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/JSON/Stringifier.h>

#include <sstream>
#include <string_view>
#include <utility>

namespace edgeplane::core {
namespace {

using Poco::JSON::Array;
using Poco::JSON::Object;

Array::Ptr linksToJson(const std::vector<core::LinkView>& links) {
  Array::Ptr out = new Array;
  for (const auto& l : links) {
    Object::Ptr lo = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
    lo->set("name", l.name);
    lo->set("up", l.up);
    Array::Ptr addrs = new Array;
    for (const auto& a : l.addresses) {
      addrs->add(a.str());
    }
    lo->set("addresses", addrs);
    out->add(lo);
  }
  return out;
}

Array::Ptr routesToJson(const std::vector<core::RouteView>& routes) {
  Array::Ptr out = new Array;
  for (const auto& r : routes) {
    Object::Ptr ro = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
    ro->set("destination", r.destination.str());
    if (r.via) {
      ro->set("via", r.via->str());
    }
    ro->set("device", r.device);
    ro->set("protocol", r.protocol);
    ro->set("owned", r.owned);
    out->add(ro);
  }
  return out;
}

Object::Ptr tableToJson(const core::NftTableView& table) {
  Object::Ptr t = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
  t->set("intact", table.intact);
  Array::Ptr maps = new Array;
  for (const auto& m : table.mappings) {
    Object::Ptr mo = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
    mo->set("protocol", std::string(toString(m.protocol)));
    mo->set("port", m.port.str());
    mo->set("address", m.address.str());
    if (m.targetPort) {
      mo->set("target_port", static_cast<int>(*m.targetPort));
    }
    maps->add(mo);
  }
  t->set("mappings", maps);
  return t;
}

Object::Ptr peerToJson(const core::PeerView& p) {
  Object::Ptr po = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
  po->set("public_key", p.publicKey.base64());
  if (p.endpoint) {
    po->set("endpoint", p.endpoint->str());
  }
  Array::Ptr ips = new Array;
  for (const auto& a : p.allowedIps) {
    ips->add(a.str());
  }
  po->set("allowed_ips", ips);
  if (p.keepalive) {
    po->set("persistent_keepalive", static_cast<int>(*p.keepalive));
  }
  if (p.hasPsk) {
    po->set("preshared_key", true);  // whether one is set; never the key
  }
  if (p.lastHandshake) {
    po->set("latest_handshake", *p.lastHandshake);
  }
  po->set("rx_bytes", p.rxBytes);
  po->set("tx_bytes", p.txBytes);
  return po;
}

Object::Ptr wireguardToJson(const core::WireGuardView& wg) {
  Object::Ptr w = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
  if (wg.publicKey) {
    w->set("public_key", wg.publicKey->base64());
  }
  w->set("listen_port", static_cast<int>(wg.listenPort));
  Array::Ptr peers = new Array;
  for (const auto& p : wg.peers) {
    peers->add(peerToJson(p));
  }
  w->set("peers", peers);
  return w;
}

Object::Ptr viewToJson(const core::NetnsView& v) {
  Object::Ptr o = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
  o->set("links", linksToJson(v.links));
  o->set("routes", routesToJson(v.routes));
  if (v.table) {
    o->set("table", tableToJson(*v.table));
  }
  o->set("ip_forward", v.ipForward);
  if (v.wireguard) {
    o->set("wireguard", wireguardToJson(*v.wireguard));
  }
  if (v.storedPublicKey) {
    o->set("stored_public_key", v.storedPublicKey->base64());
  }
  if (!v.keyError.empty()) {
    o->set("key_error", v.keyError);
  }
  if (!v.unobservable.empty()) {
    o->set("unobservable", v.unobservable);
  }
  return o;
}

// Shape errors carry a JSON path so a hand-edited observed.json is easy to fix.
struct Reader {
  std::string error;

  Object::Ptr object(const Object::Ptr& o, const std::string& key, const std::string& path,
                     bool required) {
    if (!o->has(key)) {
      if (required) {
        fail(path + "." + key + ": missing");
      }
      return nullptr;
    }
    Object::Ptr v = o->getObject(key);
    if (!v) {
      fail(path + "." + key + ": must be an object");
    }
    return v;
  }
  Array::Ptr array(const Object::Ptr& o, const std::string& key, const std::string& path) {
    if (!o->has(key)) {
      return new Array;
    }
    Array::Ptr v = o->getArray(key);
    if (!v) {
      fail(path + "." + key + ": must be an array");
      return new Array;
    }
    return v;
  }
  std::string string(const Poco::Dynamic::Var& v, const std::string& path) {
    if (!v.isString()) {
      fail(path + ": must be a string");
      return {};
    }
    return v.extract<std::string>();
  }
  bool boolean(const Object::Ptr& o, const std::string& key, const std::string& path, bool dflt) {
    if (!o->has(key)) {
      return dflt;
    }
    Poco::Dynamic::Var v = o->get(key);
    if (!v.isBoolean()) {
      fail(path + "." + key + ": must be true or false");
      return dflt;
    }
    return v.extract<bool>();
  }
  template <typename T, typename Parse>
  T parsed(const Poco::Dynamic::Var& v, const std::string& path, Parse parse,
           std::string_view what) {
    std::string s = string(v, path);
    auto r = parse(s);
    if (!r) {
      fail(path + ": invalid " + std::string(what) + " \"" + s + "\"");
      return T{};
    }
    return *r;
  }
  void fail(std::string message) {
    if (error.empty()) {
      error = std::move(message);
    }
  }
  // Calls f(object, its path) for each element of `items` (at `path`), failing the others.
  template <typename F>
  void eachObject(const Array::Ptr& items, const std::string& path, F f) {
    for (size_t i = 0; i < items->size(); ++i) {
      const std::string ip = path + "[" + std::to_string(i) + "]";
      Object::Ptr io = items->getObject(static_cast<unsigned>(i));
      if (!io) {
        fail(ip + ": must be an object");
        continue;
      }
      f(io, ip);
    }
  }

  core::LinkView link(const Object::Ptr& lo, const std::string& lp) {
    core::LinkView l;
    l.name = string(lo->get("name"), lp + ".name");
    l.up = boolean(lo, "up", lp, false);
    Array::Ptr addrs = array(lo, "addresses", lp);
    for (size_t j = 0; j < addrs->size(); ++j) {
      l.addresses.push_back(parsed<IpPrefix>(addrs->get(static_cast<unsigned>(j)),
                                             lp + ".addresses[" + std::to_string(j) + "]",
                                             IpPrefix::parse, "prefix"));
    }
    return l;
  }

  core::RouteView route(const Object::Ptr& ro, const std::string& rp) {
    core::RouteView r;
    r.destination =
        parsed<IpPrefix>(ro->get("destination"), rp + ".destination", IpPrefix::parse, "prefix");
    if (ro->has("via")) {
      r.via = parsed<IpAddress>(ro->get("via"), rp + ".via", IpAddress::parse, "address");
    }
    if (ro->has("device")) {
      r.device = string(ro->get("device"), rp + ".device");
    }
    r.protocol = ro->has("protocol") ? string(ro->get("protocol"), rp + ".protocol") : "static";
    r.owned = boolean(ro, "owned", rp, false);
    return r;
  }

  core::PortMapping mapping(const Object::Ptr& mo, const std::string& mp) {
    core::PortMapping m;
    std::string proto = string(mo->get("protocol"), mp + ".protocol");
    if (proto != "tcp" && proto != "udp") {
      fail(mp + ".protocol: must be tcp or udp");
    }
    m.protocol = proto == "udp" ? Protocol::Udp : Protocol::Tcp;
    m.port = parsed<PortRange>(mo->get("port"), mp + ".port", PortRange::parse, "port range");
    m.address = parsed<IpAddress>(mo->get("address"), mp + ".address", IpAddress::parse, "address");
    if (mo->has("target_port")) {
      Poco::Dynamic::Var tp = mo->get("target_port");
      if (!tp.isInteger() || tp.convert<int>() < 1 || tp.convert<int>() > 65535) {
        fail(mp + ".target_port: must be a port number");
      } else {
        m.targetPort = static_cast<uint16_t>(tp.convert<int>());
      }
    }
    return m;
  }

  // `path` is the namespace's; the table is its "table" member.
  core::NftTableView table(const Object::Ptr& t, const std::string& path) {
    core::NftTableView table;
    table.intact = boolean(t, "intact", path + ".table", true);
    eachObject(array(t, "mappings", path + ".table"), path + ".table.mappings",
               [&](const Object::Ptr& mo, const std::string& mp) {
                 table.mappings.push_back(mapping(mo, mp));
               });
    std::sort(table.mappings.begin(), table.mappings.end());
    return table;
  }

  core::PeerView peer(const Object::Ptr& po, const std::string& pp) {
    core::PeerView pv;
    pv.publicKey = parsed<WgKey>(po->get("public_key"), pp + ".public_key", WgKey::parseBase64,
                                 "WireGuard key");
    if (po->has("endpoint")) {
      pv.endpoint =
          parsed<Endpoint>(po->get("endpoint"), pp + ".endpoint", Endpoint::parse, "endpoint");
    }
    Array::Ptr ips = array(po, "allowed_ips", pp);
    for (size_t j = 0; j < ips->size(); ++j) {
      pv.allowedIps.push_back(parsed<IpPrefix>(ips->get(static_cast<unsigned>(j)),
                                               pp + ".allowed_ips", IpPrefix::parse, "prefix"));
    }
    std::sort(pv.allowedIps.begin(), pv.allowedIps.end());
    if (po->has("persistent_keepalive")) {
      pv.keepalive = static_cast<uint16_t>(po->getValue<int>("persistent_keepalive"));
    }
    pv.hasPsk = po->optValue<bool>("preshared_key", false);
    if (po->has("latest_handshake")) {
      pv.lastHandshake = po->getValue<int64_t>("latest_handshake");
    }
    pv.rxBytes = po->optValue<uint64_t>("rx_bytes", 0);
    pv.txBytes = po->optValue<uint64_t>("tx_bytes", 0);
    return pv;
  }

  core::WireGuardView wireguard(const Object::Ptr& w, const std::string& wp) {
    core::WireGuardView wg;
    if (w->has("public_key")) {
      wg.publicKey = parsed<WgKey>(w->get("public_key"), wp + ".public_key", WgKey::parseBase64,
                                   "WireGuard key");
    }
    wg.listenPort = static_cast<uint16_t>(w->optValue<int>("listen_port", 0));
    eachObject(
        array(w, "peers", wp), wp + ".peers",
        [&](const Object::Ptr& po, const std::string& pp) { wg.peers.push_back(peer(po, pp)); });
    return wg;
  }

  core::NetnsView view(const Object::Ptr& o, const std::string& path) {
    core::NetnsView v;
    eachObject(
        array(o, "links", path), path + ".links",
        [&](const Object::Ptr& lo, const std::string& lp) { v.links.push_back(link(lo, lp)); });
    eachObject(
        array(o, "routes", path), path + ".routes",
        [&](const Object::Ptr& ro, const std::string& rp) { v.routes.push_back(route(ro, rp)); });
    if (Object::Ptr t = object(o, "table", path, false)) {
      v.table = table(t, path);
    }
    v.ipForward = boolean(o, "ip_forward", path, false);
    if (Object::Ptr w = object(o, "wireguard", path, false)) {
      v.wireguard = wireguard(w, path + ".wireguard");
    }
    if (o->has("stored_public_key")) {
      v.storedPublicKey = parsed<WgKey>(o->get("stored_public_key"), path + ".stored_public_key",
                                        WgKey::parseBase64, "WireGuard key");
    }
    v.keyError = o->optValue<std::string>("key_error", "");
    v.unobservable = o->optValue<std::string>("unobservable", "");
    return v;
  }

  // $.store: what the state store held.
  void store(const Object::Ptr& s, core::StoreView& out) {
    if (Object::Ptr a = object(s, "applied", "$.store", false)) {
      for (const auto& key : a->getNames()) {
        out.applied[key] = string(a->get(key), "$.store.applied." + key);
      }
    }
    if (Object::Ptr u = object(s, "uplinks", "$.store", false)) {
      for (const auto& name : u->getNames()) {
        Poco::Dynamic::Var v = u->get(name);
        if (!v.isInteger() || v.convert<int64_t>() < 0) {
          fail("$.store.uplinks." + name + ": must be a non-negative integer");
          continue;
        }
        out.uplinkIndex[name] = static_cast<uint32_t>(v.convert<int64_t>());
      }
    }
    if (Object::Ptr f = object(s, "forward_names", "$.store", false)) {
      for (const auto& key : f->getNames()) {
        out.forwardNames[key] = string(f->get(key), "$.store.forward_names." + key);
      }
    }
    if (Poco::JSON::Array::Ptr b = s->getArray("blocked_api_keys")) {
      for (size_t i = 0; i < b->size(); ++i) {
        out.blockedApiKeys.insert(string(b->get(static_cast<unsigned>(i)),
                                         "$.store.blocked_api_keys[" + std::to_string(i) + "]"));
      }
    } else if (s->has("blocked_api_keys")) {
      fail("$.store.blocked_api_keys: must be an array of key ids");
    }
  }
};

// The observation's object: the document's top level, or a saved `edgeplane status --json`'s
// "observed" member.
Result<Object::Ptr> observedRoot(const std::string& text) {
  Poco::Dynamic::Var parsed;
  try {
    Poco::JSON::Parser parser;
    parsed = parser.parse(text);
  } catch (const Poco::Exception& e) {
    return terminal("observed state: " + e.displayText());
  }
  Object::Ptr root = parsed.type() == typeid(Object::Ptr) ? parsed.extract<Object::Ptr>() : nullptr;
  if (!root) {
    return terminal("observed state: the top level must be an object");
  }
  if (root->has("observed")) {
    Poco::Dynamic::Var inner = root->get("observed");
    root = inner.type() == typeid(Object::Ptr) ? inner.extract<Object::Ptr>() : nullptr;
    if (!root) {
      return terminal("observed state: \"observed\" must be an object");
    }
  } else if (root->has("last_run")) {
    return terminal(
        "observed state: this `status --json` has no \"observed\" member (the host could not "
        "be observed when it was saved)");
  }
  return root;
}

Object::Ptr certToJson(const core::CertView& c) {
  Object::Ptr o = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
  o->set("cert_file", c.certFile);
  o->set("key_file", c.keyFile);
  o->set("fingerprint", c.fingerprint);
  Poco::JSON::Array::Ptr domains = new Poco::JSON::Array;
  for (const auto& d : c.domains) {
    domains->add(d);
  }
  o->set("domains", domains);
  o->set("not_before", c.notBefore);
  o->set("not_after", c.notAfter);
  if (c.selfIssued) {
    o->set("self_issued", true);
  }
  if (!c.error.empty()) {
    o->set("error", c.error);
  }
  return o;
}

Result<core::CertView> certFromJson(const Object::Ptr& o, const std::string& path) {
  core::CertView c;
  try {
    c.certFile = o->optValue<std::string>("cert_file", "");
    c.keyFile = o->optValue<std::string>("key_file", "");
    c.fingerprint = o->optValue<std::string>("fingerprint", "");
    if (Poco::JSON::Array::Ptr d = o->getArray("domains")) {
      for (size_t i = 0; i < d->size(); ++i) {
        c.domains.push_back(d->getElement<std::string>(static_cast<unsigned>(i)));
      }
    }
    c.notBefore = o->optValue<int64_t>("not_before", 0);
    c.notAfter = o->optValue<int64_t>("not_after", 0);
    c.selfIssued = o->optValue<bool>("self_issued", false);
    c.error = o->optValue<std::string>("error", "");
  } catch (const Poco::Exception& e) {
    return terminal(path + ": " + e.displayText());
  }
  return c;
}

Result<void> certsFromJson(const Object::Ptr& root, core::HostState& host) {
  Object::Ptr certs = root->getObject("certificates");
  if (!certs) {
    return {};
  }
  for (const char* group : {"generated", "files"}) {
    Object::Ptr g = certs->getObject(group);
    if (!g) {
      continue;
    }
    auto& into = std::string(group) == "generated" ? host.generatedCerts : host.fileCerts;
    for (const auto& name : g->getNames()) {
      const std::string path = "$.certificates." + std::string(group) + "." + name;
      Object::Ptr o = g->getObject(name);
      if (!o) {
        return terminal(path + ": must be an object");
      }
      auto c = certFromJson(o, path);
      if (!c) {
        return c.error();
      }
      into[name] = std::move(*c);
    }
  }
  return {};
}

}  // namespace

std::string certViewToJson(const core::CertView& c) {
  std::ostringstream out;
  Poco::JSON::Stringifier::stringify(certToJson(c), out);
  return out.str();
}

Result<core::CertView> certViewFromJson(const std::string& text) {
  Poco::Dynamic::Var parsed;
  try {
    parsed = Poco::JSON::Parser().parse(text);
  } catch (const Poco::Exception& e) {
    return terminal("certificate view: " + e.displayText());
  }
  if (parsed.type() != typeid(Object::Ptr)) {
    return terminal("certificate view: not an object");
  }
  return certFromJson(parsed.extract<Object::Ptr>(), "certificate view");
}

std::string toJson(const core::HostState& host, const core::StoreView& store) {
  Object::Ptr root = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
  root->set("host", viewToJson(host.host));
  Object::Ptr namespaces = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
  for (const auto& [name, v] : host.namespaces) {
    namespaces->set(name, viewToJson(v));
  }
  root->set("namespaces", namespaces);
  if (host.now != 0) {
    root->set("now", host.now);
  }
  if (!host.generatedCerts.empty() || !host.fileCerts.empty()) {
    Object::Ptr certs = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
    Object::Ptr generated = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
    for (const auto& [name, c] : host.generatedCerts) {
      generated->set(name, certToJson(c));
    }
    Object::Ptr files = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
    for (const auto& [name, c] : host.fileCerts) {
      files->set(name, certToJson(c));
    }
    certs->set("generated", generated);
    certs->set("files", files);
    root->set("certificates", certs);
  }
  Object::Ptr s = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
  Object::Ptr applied = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
  for (const auto& [key, spec] : store.applied) {
    applied->set(key, spec);
  }
  s->set("applied", applied);
  Object::Ptr uplinks = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
  for (const auto& [ns, idx] : store.uplinkIndex) {
    uplinks->set(ns, static_cast<int>(idx));
  }
  s->set("uplinks", uplinks);
  Object::Ptr names = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
  for (const auto& [key, name] : store.forwardNames) {
    names->set(key, name);
  }
  s->set("forward_names", names);
  if (store.snapshot) {
    s->set("snapshot", Poco::JSON::Parser().parse(snapshotToJson(*store.snapshot)));
  }
  if (!store.blockedApiKeys.empty()) {  // left out when empty, as older outputs have it
    Poco::JSON::Array::Ptr blocked = new Poco::JSON::Array;
    for (const auto& id : store.blockedApiKeys) {
      blocked->add(id);
    }
    s->set("blocked_api_keys", blocked);
  }
  root->set("store", s);
  std::ostringstream out;
  Poco::JSON::Stringifier::stringify(root, out, 2);
  out << "\n";
  return out.str();
}

Result<ObservedJson> observedFromJson(const std::string& text) {
  auto observed = observedRoot(text);
  if (!observed) {
    return observed.error();
  }
  const Object::Ptr root = *observed;
  Reader r;
  ObservedJson out;
  if (Object::Ptr h = r.object(root, "host", "$", false)) {
    out.host.host = r.view(h, "$.host");
  }
  if (Object::Ptr ns = r.object(root, "namespaces", "$", false)) {
    for (const auto& name : ns->getNames()) {
      Object::Ptr v = r.object(ns, name, "$.namespaces", true);
      out.host.namespaces[name] = v ? r.view(v, "$.namespaces." + name) : core::NetnsView{};
    }
  }
  if (Object::Ptr s = r.object(root, "store", "$", false)) {
    r.store(s, out.store);
  }
  if (!r.error.empty()) {
    return terminal("observed state: " + r.error);
  }
  if (root->has("now")) {
    Poco::Dynamic::Var now = root->get("now");
    if (!now.isInteger()) {
      return terminal("observed state: $.now: must be an integer (unix seconds)");
    }
    out.host.now = now.convert<int64_t>();
  }
  if (auto certs = certsFromJson(root, out.host); !certs) {
    return terminal("observed state: " + certs.error().message);
  }
  // The last published proxy snapshot, in the snapshot codec's own form.
  if (Object::Ptr s = root->getObject("store"); s && s->has("snapshot")) {
    std::ostringstream snapshotText;
    Poco::JSON::Stringifier::stringify(s->get("snapshot"), snapshotText);
    auto snapshot = snapshotFromJson(snapshotText.str());
    if (!snapshot) {
      return terminal("observed state: $.store.snapshot: " + snapshot.error().message);
    }
    out.store.snapshot = std::move(*snapshot);
  }
  return out;
}

}  // namespace edgeplane::core
