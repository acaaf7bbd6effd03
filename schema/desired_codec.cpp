// A binary form of a validated Desired (see desired_codec.h): one field list per struct, read
// and written by the same function, so the two directions cannot drift apart.
#include "schema/desired_codec.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <limits>
#include <map>
#include <set>
#include <type_traits>
#include <utility>
#include <vector>

namespace edgeplane {
namespace {

// The model's sizes on x86-64 with libstdc++. A field added to a model struct changes its size
// and stops the build here until the field is in its io() below and kDesiredCodecVersion is
// bumped; otherwise a cached config would come back without it.
#if defined(__x86_64__) && defined(__GLIBCXX__)
static_assert(sizeof(SourceLoc) == 24 && sizeof(Origin) == 96 && sizeof(Fleet) == 336 &&
                  sizeof(Host) == 128 && sizeof(Peer) == 280 && sizeof(NamespaceRoute) == 136 &&
                  sizeof(WireGuardConfig) == 128 && sizeof(Namespace) == 352 &&
                  sizeof(Forward) == 192 && sizeof(Certificate) == 296 &&
                  sizeof(HealthCheck) == 88 && sizeof(Site) == 424 && sizeof(Passthrough) == 256 &&
                  sizeof(GatewayEndpoint) == 288 && sizeof(Gateway) == 312 &&
                  sizeof(ApiKey) == 248 && sizeof(Desired) == 536,
              "a model struct changed: encode the new field in desired_codec.cpp and bump "
              "kDesiredCodecVersion");
static_assert(sizeof(IpAddress) == 17 && sizeof(IpPrefix) == 18 && sizeof(Endpoint) == 20 &&
                  sizeof(HostPort) == 40 && sizeof(PortRange) == 4 && sizeof(RateLimit) == 16 &&
                  sizeof(WgKey) == 32,
              "a value type changed: encode the new field in desired_codec.cpp and bump "
              "kDesiredCodecVersion");
#endif

// The largest value of each encoded enum: a decoded value above it is refused.
template <typename E>
struct EnumLimit;
template <>
struct EnumLimit<IpAddress::Family> {
  static constexpr auto max = IpAddress::Family::V6;
};
template <>
struct EnumLimit<Protocol> {
  static constexpr auto max = Protocol::Udp;
};
template <>
struct EnumLimit<Issuer> {
  static constexpr auto max = Issuer::Files;
};
template <>
struct EnumLimit<AcmeChallengeType> {
  static constexpr auto max = AcmeChallengeType::Dns01;
};
template <>
struct EnumLimit<Balance> {
  static constexpr auto max = Balance::Random;
};
template <>
struct EnumLimit<ProxyProtocol> {
  static constexpr auto max = ProxyProtocol::V2;
};
template <>
struct EnumLimit<ApiKeyRole> {
  static constexpr auto max = ApiKeyRole::Admin;
};

template <typename T>
struct IsOptional : std::false_type {};
template <typename T>
struct IsOptional<std::optional<T>> : std::true_type {};
template <typename T>
struct IsVector : std::false_type {};
template <typename T>
struct IsVector<std::vector<T>> : std::true_type {};
template <typename T>
struct IsBytes : std::false_type {};
template <size_t N>
struct IsBytes<std::array<uint8_t, N>> : std::true_type {};
template <typename T>
struct IsDuration : std::false_type {};
template <typename R, typename P>
struct IsDuration<std::chrono::duration<R, P>> : std::true_type {};

// Where a location's file is: as written, the root itself, a path under the root, or the n-th
// distinct file an earlier location named (most locations share a handful of files).
enum class FileTag : uint8_t { Absolute, Root, UnderRoot, Seen };

class Writer {
 public:
  static constexpr bool kReading = false;
  Writer(std::string_view root, uint32_t linesBefore) : root_(root), linesBefore_(linesBefore) {}

  bool ok() const { return true; }
  std::string take() { return std::move(out_); }

  void unsignedInt(uint64_t& v) {
    uint64_t x = v;
    while (x >= 0x80) {
      out_.push_back(static_cast<char>((x & 0x7f) | 0x80));
      x >>= 7;
    }
    out_.push_back(static_cast<char>(x));
  }
  void signedInt(int64_t& v) {
    uint64_t zigzag = (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
    unsignedInt(zigzag);
  }
  void bytes(uint8_t* p, size_t n) { out_.append(reinterpret_cast<const char*>(p), n); }
  void text(std::string& s) {
    uint64_t n = s.size();
    unsignedInt(n);
    out_.append(s);
  }
  void location(SourceFile& location) {
    const std::string& file = location.str();
    if (auto it = seen_.find(file); it != seen_.end()) {
      uint64_t t = static_cast<uint8_t>(FileTag::Seen);
      uint64_t index = it->second;
      unsignedInt(t);
      unsignedInt(index);
      return;
    }
    seen_.emplace(file, seen_.size());
    FileTag tag = FileTag::Absolute;
    std::string rest = file;
    if (!root_.empty() && file == root_) {
      tag = FileTag::Root;
      rest.clear();
    } else if (!root_.empty() && file.size() > root_.size() && file.starts_with(root_) &&
               file[root_.size()] == '/') {
      tag = FileTag::UnderRoot;
      rest = file.substr(root_.size() + 1);
    }
    uint64_t t = static_cast<uint8_t>(tag);
    unsignedInt(t);
    text(rest);
  }
  // How many elements follow.
  void count(uint64_t& n) { unsignedInt(n); }
  // A location's line, counted from the line after `linesBefore` (0, unknown, stays 0).
  void line(uint32_t& v) {
    uint64_t n = v > linesBefore_ ? v - linesBefore_ : 0;
    unsignedInt(n);
  }

 private:
  std::string_view root_;
  uint32_t linesBefore_;
  std::string out_;
  std::map<std::string, uint64_t, std::less<>> seen_;
};

class Reader {
 public:
  static constexpr bool kReading = true;
  Reader(std::string_view in, std::string_view root, uint32_t linesBefore)
      : in_(in), root_(root), linesBefore_(linesBefore) {}

  bool ok() const { return !bad_; }
  bool atEnd() const { return pos_ == in_.size(); }
  size_t remaining() const { return in_.size() - pos_; }

  void unsignedInt(uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64 && !bad_; shift += 7) {
      if (pos_ >= in_.size()) {
        break;
      }
      const auto byte = static_cast<uint8_t>(in_[pos_++]);
      v |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) {
        return;
      }
    }
    fail();
  }
  void signedInt(int64_t& v) {
    uint64_t zigzag = 0;
    unsignedInt(zigzag);
    v = static_cast<int64_t>(zigzag >> 1) ^ -static_cast<int64_t>(zigzag & 1);
  }
  void bytes(uint8_t* p, size_t n) {
    if (bad_ || in_.size() - pos_ < n) {
      fail();
      return;
    }
    std::copy_n(in_.data() + pos_, n, p);
    pos_ += n;
  }
  void text(std::string& s) {
    uint64_t n = 0;
    unsignedInt(n);
    if (bad_ || in_.size() - pos_ < n) {
      fail();
      return;
    }
    s.assign(in_.substr(pos_, n));
    pos_ += n;
  }
  // Every location in a file shares its name (SourceFile), as the loader's do.
  void location(SourceFile& file) {
    uint64_t tag = 0;
    unsignedInt(tag);
    if (tag == static_cast<uint8_t>(FileTag::Seen)) {
      uint64_t index = 0;
      unsignedInt(index);
      if (bad_ || index >= seen_.size()) {
        fail();
        return;
      }
      file = seen_[index];
      return;
    }
    readLocation(tag, file);
    if (!bad_) {
      seen_.push_back(file);
    }
  }
  void readLocation(uint64_t tag, SourceFile& file) {
    std::string rest;
    text(rest);
    switch (tag) {
      case static_cast<uint8_t>(FileTag::Absolute):
        file = std::move(rest);
        return;
      case static_cast<uint8_t>(FileTag::Root):
        if (!rest.empty()) {
          fail();
        }
        file = std::string(root_);
        return;
      case static_cast<uint8_t>(FileTag::UnderRoot):
        file = std::string(root_) + "/" + rest;
        return;
      default:
        fail();
    }
  }
  // A location's line, put back after `linesBefore` (0, unknown, stays 0).
  void line(uint32_t& v) {
    uint64_t n = 0;
    unsignedInt(n);
    if (n != 0) {
      n += linesBefore_;
    }
    if (n > std::numeric_limits<uint32_t>::max()) {
      fail();
      return;
    }
    v = static_cast<uint32_t>(n);
  }
  // Every element takes at least one byte: a count beyond what is left is corrupt, and never
  // becomes a huge allocation.
  void count(uint64_t& n) {
    unsignedInt(n);
    if (n > in_.size() - pos_) {
      fail();
    }
  }
  void fail() {
    bad_ = true;
    pos_ = in_.size();
  }

 private:
  std::string_view in_;
  std::string_view root_;
  uint32_t linesBefore_;
  std::vector<SourceFile> seen_;
  size_t pos_ = 0;
  bool bad_ = false;
};

template <typename A, typename T>
void field(A& a, T& v);

template <typename A, typename... T>
void fields(A& a, T&... v) {
  (field(a, v), ...);
}

template <typename A>
void io(A& a, SourceLoc& v) {
  a.location(v.file);
  a.line(v.line);
  field(a, v.column);
}
template <typename A>
void io(A& a, Origin& v) {
  fields(a, v.table, v.fields, v.rejected);
}
template <typename A>
void io(A& a, IpAddress& v) {
  fields(a, v.family, v.bytes);
}
template <typename A>
void io(A& a, IpPrefix& v) {
  fields(a, v.address, v.length);
}
template <typename A>
void io(A& a, Endpoint& v) {
  fields(a, v.address, v.port);
}
template <typename A>
void io(A& a, HostPort& v) {
  fields(a, v.host, v.port);
}
template <typename A>
void io(A& a, PortRange& v) {
  fields(a, v.first, v.last);
}
template <typename A>
void io(A& a, RateLimit& v) {
  fields(a, v.count, v.period);
}
template <typename A>
void io(A& a, WgKey& v) {
  fields(a, v.bytes);
}
template <typename A>
void io(A& a, Fleet& v) {
  fields(a, v.base_domain, v.acme_directory, v.acme_email, v.acme_ca_roots, v.acme_eab_file,
         v.acme_timeout, v.wildcard, v.uplink_pool, v.origin);
}
template <typename A>
void io(A& a, Host& v) {
  fields(a, v.name, v.origin);
}
template <typename A>
void io(A& a, Peer& v) {
  fields(a, v.name, v.public_key, v.allowed_ips, v.endpoint, v.persistent_keepalive,
         v.preshared_key_file, v.origin);
}
template <typename A>
void io(A& a, NamespaceRoute& v) {
  fields(a, v.destination, v.via, v.origin);
}
template <typename A>
void io(A& a, WireGuardConfig& v) {
  fields(a, v.address, v.listen_port, v.mtu, v.origin);
}
template <typename A>
void io(A& a, Namespace& v) {
  fields(a, v.name, v.hosts, v.suspended, v.wireguard, v.peers, v.routes, v.origin);
}
template <typename A>
void io(A& a, Forward& v) {
  fields(a, v.name, v.namespace_name, v.protocol, v.public_port, v.target, v.origin);
}
template <typename A>
void io(A& a, Certificate& v) {
  fields(a, v.name, v.domains, v.issuer, v.cert_file, v.key_file, v.renew_before, v.challenge,
         v.managed_for, v.origin);
}
template <typename A>
void io(A& a, HealthCheck& v) {
  fields(a, v.path, v.interval, v.timeout, v.healthy_threshold, v.unhealthy_threshold,
         v.expect_status);
}
template <typename A>
void io(A& a, Site& v) {
  fields(a, v.name, v.hostnames, v.subdomain, v.namespace_name, v.hosts, v.backends, v.balance,
         v.certificate, v.redirect_http, v.health_check, v.origin);
}
template <typename A>
void io(A& a, Passthrough& v) {
  fields(a, v.name, v.hostnames, v.subdomain, v.namespace_name, v.backends, v.balance,
         v.proxy_protocol, v.origin);
}
template <typename A>
void io(A& a, GatewayEndpoint& v) {
  fields(a, v.path, v.method, v.backends, v.balance, v.health_check, v.origin);
}
template <typename A>
void io(A& a, Gateway& v) {
  fields(a, v.name, v.hostname, v.subdomain, v.namespace_name, v.certificate, v.rate_limit,
         v.endpoints, v.origin);
}
template <typename A>
void io(A& a, ApiKey& v) {
  fields(a, v.name, v.id, v.sha256, v.gateways, v.endpoints, v.role, v.enabled, v.origin);
}
template <typename A>
void io(A& a, Desired& v) {
  fields(a, v.fleet, v.hosts, v.namespaces, v.forwards, v.certificates, v.sites, v.passthroughs,
         v.gateways, v.api_keys);
}

// An unsigned number no larger than `max`, as one unsigned varint; a larger one read fails the
// input and reads as 0. (A bool is 0 or 1, an enum its value up to EnumLimit.)
template <typename A>
uint64_t boundedUnsigned(A& a, uint64_t n, uint64_t max) {
  a.unsignedInt(n);
  if (n > max) {
    if constexpr (A::kReading) {
      a.fail();
    }
    n = 0;
  }
  return n;
}

// A presence flag, then the value if present.
template <typename A, typename O>
void optionalField(A& a, O& v) {
  bool has = v.has_value();
  field(a, has);
  if constexpr (A::kReading) {
    v.reset();
    if (has) {
      v.emplace();
    }
  }
  if (has && a.ok()) {
    field(a, *v);
  }
}

// A count, then the items in order.
template <typename A, typename V>
void vectorField(A& a, V& v) {
  uint64_t n = v.size();
  a.count(n);
  if constexpr (A::kReading) {
    v.clear();
    // Each item takes a byte at least: a count beyond what is left is a bad input, not a size.
    v.reserve(std::min<uint64_t>(n, a.remaining()));
    for (uint64_t i = 0; i < n && a.ok(); ++i) {
      field(a, v.emplace_back());
    }
  } else {
    for (auto& item : v) {
      field(a, item);
    }
  }
}

// A count, then each key and its location.
template <typename A>
void locationMapField(A& a, LocationMap& v) {
  uint64_t n = v.size();
  a.count(n);
  if constexpr (A::kReading) {
    v.clear();
    v.reserve(std::min<uint64_t>(n, a.remaining()));
    for (uint64_t i = 0; i < n && a.ok(); ++i) {
      std::string key;
      SourceLoc loc;
      fields(a, key, loc);
      // Written in the map's order, so each key goes at the end (a key out of order, in a
      // damaged entry, still lands in its place).
      v.insert_or_assign(std::move(key), std::move(loc));
    }
  } else {
    for (auto& [key, loc] : v) {
      std::string k = key;
      fields(a, k, loc);
    }
  }
}

// A count, then the strings in order.
template <typename A>
void stringSetField(A& a, std::set<std::string, std::less<>>& v) {
  uint64_t n = v.size();
  a.count(n);
  if constexpr (A::kReading) {
    v.clear();
    for (uint64_t i = 0; i < n && a.ok(); ++i) {
      std::string item;
      field(a, item);
      v.insert(std::move(item));
    }
  } else {
    for (const std::string& item : v) {
      std::string copy = item;
      field(a, copy);
    }
  }
}

// Scalars are stored back only when reading: the writer must not write into what it encodes,
// which other threads may be reading meanwhile (the config cache encodes during the run).
template <typename A, typename T>
void field(A& a, T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    const bool got = boundedUnsigned(a, v ? 1 : 0, 1) == 1;
    if constexpr (A::kReading) {
      v = got;
    }
  } else if constexpr (std::is_enum_v<T>) {
    const auto got = static_cast<T>(
        boundedUnsigned(a, static_cast<uint64_t>(v), static_cast<uint64_t>(EnumLimit<T>::max)));
    if constexpr (A::kReading) {
      v = got;
    }
  } else if constexpr (std::is_integral_v<T> && std::is_unsigned_v<T>) {
    const auto got = static_cast<T>(boundedUnsigned(a, v, std::numeric_limits<T>::max()));
    if constexpr (A::kReading) {
      v = got;
    }
  } else if constexpr (IsDuration<T>::value) {
    static_assert(std::is_same_v<typename T::rep, int64_t> ||
                  std::is_same_v<typename T::rep, long>);
    int64_t n = v.count();
    a.signedInt(n);
    if constexpr (A::kReading) {
      v = T(n);
    }
  } else if constexpr (std::is_same_v<T, std::string>) {
    a.text(v);
  } else if constexpr (IsBytes<T>::value) {
    a.bytes(v.data(), v.size());
  } else if constexpr (IsOptional<T>::value) {
    optionalField(a, v);
  } else if constexpr (IsVector<T>::value) {
    vectorField(a, v);
  } else if constexpr (std::is_same_v<T, LocationMap>) {
    locationMapField(a, v);
  } else if constexpr (std::is_same_v<T, std::set<std::string, std::less<>>>) {
    stringSetField(a, v);
  } else {
    io(a, v);
  }
}

}  // namespace

std::string encodeDesired(const Desired& d, std::string_view root, uint32_t linesBefore) {
  Writer w(root, linesBefore);
  // The writer only reads: io() takes the struct by reference for both directions.
  field(w, const_cast<Desired&>(d));
  return w.take();
}

std::optional<Desired> decodeDesired(std::string_view bytes, std::string_view root,
                                     uint32_t linesBefore) {
  Reader r(bytes, root, linesBefore);
  Desired d;
  field(r, d);
  if (!r.ok() || !r.atEnd()) {
    return std::nullopt;
  }
  return d;
}

}  // namespace edgeplane
