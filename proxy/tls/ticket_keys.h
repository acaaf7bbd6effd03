// Session-ticket keys shared by every SSL_CTX of the process, rotated on a clock.
//
// One key set for all certificates, all workers and all snapshot generations, so a client
// resumes whichever worker accepts it and across certificate reloads. A new key is minted
// every `rotateEvery`; the retired ones still decrypt tickets for `ticketLifetime` after they
// stopped issuing (a ticket is never older than that), then they are wiped. Keys live only in
// memory: a restarted proxy issues fresh tickets (a full handshake for every client, once).
#pragma once

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace edgeplane::proxy::tls {

struct TicketKeysOptions {
  std::chrono::seconds rotateEvery{std::chrono::hours(1)};
  // How long a ticket is valid: the lifetime hint sent to clients (SSL_CTX_set_timeout) and
  // how long a retired key still decrypts.
  std::chrono::seconds ticketLifetime{std::chrono::hours(2)};
  std::function<int64_t()> clock;  // unix seconds; the system clock when unset (tests inject)
};

class TicketKeys : public std::enable_shared_from_this<TicketKeys> {
 public:
  static std::shared_ptr<TicketKeys> create();
  static std::shared_ptr<TicketKeys> create(TicketKeysOptions options);
  ~TicketKeys();
  TicketKeys(const TicketKeys&) = delete;
  TicketKeys& operator=(const TicketKeys&) = delete;

  // Mints a new issuing key when the current one is `rotateEvery` old (or none exists) and
  // drops retired keys older than the ticket lifetime. The ticket callback calls it on every
  // use, so an owner need not; calling it from a timer only wipes idle keys sooner.
  void rotateIfDue(int64_t now);
  // Retires the issuing key at once (e.g. suspected exposure); the next ticket uses a new one.
  void rotate(int64_t now);
  int64_t now() const;
  std::chrono::seconds ticketLifetime() const { return options_.ticketLifetime; }
  size_t keyCount() const;  // issuing + still-decrypting keys

  // The SSL_CTX_set_tlsext_ticket_key_evp_cb contract: enc=1 fills key_name/iv and sets up
  // AES-256-CBC + HMAC-SHA256 with the issuing key (1, or -1 on failure); enc=0 finds the
  // key by name: 0 unknown or aged out (full handshake), 1 current, 2 retired (reissue).
  int ticketCallback(unsigned char keyName[16], unsigned char* iv, EVP_CIPHER_CTX* cipher,
                     EVP_MAC_CTX* mac, int enc);

  // Makes `ctx` issue and accept tickets with these keys: installs the callback and the
  // ticket lifetime. The SSL_CTX holds a reference to the keys (ex_data), so a connection
  // outliving its ContextSet can still issue its post-handshake tickets.
  bool attach(SSL_CTX* ctx);

 private:
  struct Key {
    std::array<unsigned char, 16> name{};
    std::array<unsigned char, 32> aes{};
    std::array<unsigned char, 32> hmac{};
    int64_t createdAt = 0;
    int64_t retiredAt = 0;  // 0: the issuing key
  };

  explicit TicketKeys(TicketKeysOptions options);
  bool mintLocked(int64_t now);

  TicketKeysOptions options_;
  mutable std::mutex mu_;
  std::vector<Key> keys_;  // newest first; keys_[0] issues when retiredAt == 0
};

}  // namespace edgeplane::proxy::tls
