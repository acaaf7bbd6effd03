// The proxy routing snapshot as JSON text: canonical, one spelling per value, so that equal
// snapshots are equal text (see snapshot.h).
#include "schema/snapshot.h"

#include "schema/json_text.h"

#include <string>
#include <string_view>

namespace edgeplane {

namespace {

// Writes one object's members in the order they are added.
class ObjectWriter {
 public:
  explicit ObjectWriter(std::string& out) : out_(out) { out_.push_back('{'); }
  ~ObjectWriter() { out_.push_back('}'); }
  ObjectWriter(const ObjectWriter&) = delete;
  ObjectWriter& operator=(const ObjectWriter&) = delete;

  std::string& key(std::string_view k) {
    if (!first_) {
      out_.push_back(',');
    }
    first_ = false;
    appendJsonString(out_, k);
    out_.push_back(':');
    return out_;
  }
  void str(std::string_view k, std::string_view v) { appendJsonString(key(k), v); }
  void integer(std::string_view k, int64_t v) { key(k) += std::to_string(v); }
  void boolean(std::string_view k, bool v) { key(k) += v ? "true" : "false"; }
  void strings(std::string_view k, const std::vector<std::string>& v) {
    std::string& o = key(k);
    o.push_back('[');
    for (size_t i = 0; i < v.size(); ++i) {
      if (i != 0) {
        o.push_back(',');
      }
      appendJsonString(o, v[i]);
    }
    o.push_back(']');
  }
  void endpoints(std::string_view k, const std::vector<Endpoint>& v) {
    std::vector<std::string> text;
    text.reserve(v.size());
    for (const auto& e : v) {
      text.push_back(e.str());
    }
    strings(k, text);
  }

 private:
  std::string& out_;
  bool first_ = true;
};

// The health_* members of a site route or a gateway endpoint, each only when set.
template <typename T>
void writeHealth(ObjectWriter& o, const T& r) {
  if (r.health_path) {
    o.str("health_path", *r.health_path);
  }
  if (r.health_interval) {
    o.integer("health_interval_ms", r.health_interval->count());
  }
  if (r.health_timeout) {
    o.integer("health_timeout_ms", r.health_timeout->count());
  }
  if (r.health_healthy_threshold) {
    o.integer("health_healthy_threshold", *r.health_healthy_threshold);
  }
  if (r.health_unhealthy_threshold) {
    o.integer("health_unhealthy_threshold", *r.health_unhealthy_threshold);
  }
  if (r.health_expect_status) {
    o.str("health_expect_status", *r.health_expect_status);
  }
}

void writeRoute(std::string& out, const SnapshotRoute& r) {
  ObjectWriter o(out);
  o.str("kind", toString(r.kind));
  o.str("name", r.name);
  o.strings("hostnames", r.hostnames);
  o.str("namespace", r.namespace_name);
  o.str("netns", r.netns);
  switch (r.kind) {
    case RouteKind::Passthrough:
      o.endpoints("backends", r.backends);
      o.str("balance", toString(r.balance));
      o.str("proxy_protocol", toString(r.proxy_protocol));
      break;
    case RouteKind::Site:
      o.endpoints("backends", r.backends);
      o.str("balance", toString(r.balance));
      if (r.certificate) {
        o.str("certificate", *r.certificate);
      }
      o.boolean("redirect_http", r.redirect_http);
      writeHealth(o, r);
      break;
    case RouteKind::Gateway: {
      if (r.certificate) {
        o.str("certificate", *r.certificate);
      }
      if (r.rate_limit) {
        o.str("rate_limit", *r.rate_limit);
      }
      std::string& a = o.key("endpoints");
      a.push_back('[');
      for (size_t i = 0; i < r.endpoints.size(); ++i) {
        if (i != 0) {
          a.push_back(',');
        }
        const SnapshotEndpoint& e = r.endpoints[i];
        ObjectWriter eo(a);
        eo.str("path", e.path);
        eo.str("method", e.method);
        eo.endpoints("backends", e.backends);
        eo.str("balance", toString(e.balance));
        writeHealth(eo, e);
      }
      a.push_back(']');
      break;
    }
  }
}

void writeCertificate(std::string& out, const SnapshotCertificate& c) {
  ObjectWriter o(out);
  o.str("name", c.name);
  o.str("fingerprint", c.fingerprint);
  o.str("cert_file", c.cert_file);
  o.str("key_file", c.key_file);
  o.strings("domains", c.domains);
  o.integer("not_after", c.not_after);
}

void writeApiKey(std::string& out, const SnapshotApiKey& k) {
  ObjectWriter o(out);
  o.str("id", k.id);
  o.str("name", k.name);
  o.str("sha256", k.sha256);
  o.strings("gateways", k.gateways);
  o.strings("endpoints", k.endpoints);
  o.str("role", toString(k.role));
  o.boolean("enabled", k.enabled);
}

}  // namespace

std::string snapshotToJson(const ProxySnapshot& s) {
  std::string out;
  {
    ObjectWriter o(out);
    o.integer("version", kSnapshotVersion);
    o.str("host", s.host);
    if (s.commit) {
      o.str("commit", *s.commit);
    }
    std::string& a = o.key("routes");
    a.push_back('[');
    for (size_t i = 0; i < s.routes.size(); ++i) {
      if (i != 0) {
        a.push_back(',');
      }
      writeRoute(a, s.routes[i]);
    }
    a.push_back(']');
    std::string& c = o.key("certificates");
    c.push_back('[');
    for (size_t i = 0; i < s.certificates.size(); ++i) {
      if (i != 0) {
        c.push_back(',');
      }
      writeCertificate(c, s.certificates[i]);
    }
    c.push_back(']');
    std::string& k = o.key("api_keys");
    k.push_back('[');
    for (size_t i = 0; i < s.api_keys.size(); ++i) {
      if (i != 0) {
        k.push_back(',');
      }
      writeApiKey(k, s.api_keys[i]);
    }
    k.push_back(']');
  }
  return out;
}

}  // namespace edgeplane
