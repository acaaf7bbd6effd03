// One server SSL_CTX per snapshot certificate, built by the control side once per snapshot
// generation and read by every worker.
//
// Every context has the same policy: TLS 1.2 and 1.3 only; for 1.2 ECDHE with AES-GCM or
// ChaCha20-Poly1305; ALPN "http/1.1" when the client offers it, otherwise no ALPN (never a
// failed handshake over ALPN); session tickets from the process-wide TicketKeys; no
// renegotiation, no compression; released idle buffers and partial writes from a moving
// buffer, as a non-blocking event loop needs.
#pragma once

#include <openssl/ssl.h>

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/tls/ticket_keys.h"
#include "schema/snapshot.h"

namespace edgeplane::proxy::tls {

// The ALPN protocol the server selects when offered.
inline constexpr std::string_view kAlpnHttp11 = "http/1.1";

// `protocol` in a client's ProtocolNameList (as an ALPN select callback gets it): where its
// name starts inside `in`, or nullptr when it is not offered (or the list is malformed there).
const unsigned char* findAlpnProtocol(const unsigned char* in, unsigned int inlen,
                                      std::string_view protocol);

class ContextSet {
 public:
  ~ContextSet();
  ContextSet(const ContextSet&) = delete;
  ContextSet& operator=(const ContextSet&) = delete;

  // Loads every certificate into its own SSL_CTX. A certificate whose name, fingerprint and
  // file paths equal an entry of `previous` (built with the same keys) takes that SSL_CTX over
  // (up_ref) without reading any file, so an unchanged certificate costs nothing per reload.
  // A certificate that fails (a file missing or unreadable, not PEM, the key not matching the
  // certificate, the leaf's SHA-256 not the snapshot's fingerprint, a duplicate name) is left
  // out and reported in `errors` (may be nullptr) as "NAME: reason"; the reason never holds
  // key material. `keys` nullptr: the previous set's keys, else fresh ones. Never nullptr.
  static std::shared_ptr<const ContextSet> build(const std::vector<SnapshotCertificate>& certs,
                                                 const ContextSet* previous,
                                                 std::shared_ptr<TicketKeys> keys,
                                                 std::vector<std::string>* errors);

  // The context of a certificate by its snapshot name; nullptr if absent or failed. The
  // pointer lives as long as this set (SSL_new takes its own reference).
  SSL_CTX* find(std::string_view certificateName) const;
  size_t size() const { return entries_.size(); }
  // The certificates loaded (what is served), by name.
  std::vector<SnapshotCertificate> loaded() const;
  const std::shared_ptr<TicketKeys>& ticketKeys() const { return keys_; }

 private:
  struct Entry {
    SnapshotCertificate spec;
    SSL_CTX* ctx = nullptr;  // owned: one reference
  };

  ContextSet() = default;

  std::shared_ptr<TicketKeys> keys_;
  std::map<std::string, Entry, std::less<>> entries_;  // by certificate name
};

}  // namespace edgeplane::proxy::tls
