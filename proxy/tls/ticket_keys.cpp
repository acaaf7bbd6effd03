// Session-ticket keys: minting, rotation, expiry and the OpenSSL ticket callback.
#include "proxy/tls/ticket_keys.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>
#include <utility>

namespace edgeplane::proxy::tls {

namespace {

// The SSL_CTX ex_data slot holding a heap std::shared_ptr<TicketKeys>, freed with the SSL_CTX.
void freeKeysSlot(void* /*parent*/, void* ptr, CRYPTO_EX_DATA* /*ad*/, int /*idx*/, long /*argl*/,
                  void* /*argp*/) {
  delete static_cast<std::shared_ptr<TicketKeys>*>(ptr);
}

int keysSlot() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, freeKeysSlot);
  return index;
}

int ticketKeyCallback(SSL* ssl, unsigned char keyName[16], unsigned char iv[EVP_MAX_IV_LENGTH],
                      EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int enc) {
  auto* slot = static_cast<std::shared_ptr<TicketKeys>*>(
      SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), keysSlot()));
  if (slot == nullptr || !*slot) {
    return 0;  // no keys: no ticket issued, none accepted
  }
  return (*slot)->ticketCallback(keyName, iv, cipher, mac, enc);
}

// AES-256-CBC fetched once for the process (never freed): EVP_aes_256_cbc() in an init call
// makes OpenSSL 3 look the algorithm up again on every ticket.
const EVP_CIPHER* ticketCipher() {
  static EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "AES-256-CBC", nullptr);
  return cipher;
}

void wipe(std::array<unsigned char, 32>& bytes) {
  OPENSSL_cleanse(bytes.data(), bytes.size());
}

bool setMacKey(EVP_MAC_CTX* mac, std::array<unsigned char, 32>& key) {
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key.data(), key.size()),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_end(),
  };
  return EVP_MAC_CTX_set_params(mac, params) == 1;
}

}  // namespace

std::shared_ptr<TicketKeys> TicketKeys::create() {
  return create(TicketKeysOptions{});
}

std::shared_ptr<TicketKeys> TicketKeys::create(TicketKeysOptions options) {
  return std::shared_ptr<TicketKeys>(new TicketKeys(std::move(options)));
}

TicketKeys::TicketKeys(TicketKeysOptions options) : options_(std::move(options)) {}

TicketKeys::~TicketKeys() {
  for (Key& key : keys_) {
    wipe(key.aes);
    wipe(key.hmac);
  }
}

int64_t TicketKeys::now() const {
  if (options_.clock) {
    return options_.clock();
  }
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

size_t TicketKeys::keyCount() const {
  std::lock_guard lock(mu_);
  return keys_.size();
}

bool TicketKeys::mintLocked(int64_t now) {
  Key key;
  key.createdAt = now;
  if (RAND_bytes(key.name.data(), static_cast<int>(key.name.size())) != 1 ||
      RAND_priv_bytes(key.aes.data(), static_cast<int>(key.aes.size())) != 1 ||
      RAND_priv_bytes(key.hmac.data(), static_cast<int>(key.hmac.size())) != 1) {
    wipe(key.aes);
    wipe(key.hmac);
    return false;
  }
  if (!keys_.empty() && keys_.front().retiredAt == 0) {
    keys_.front().retiredAt = now;
  }
  keys_.insert(keys_.begin(), key);
  wipe(key.aes);
  wipe(key.hmac);
  return true;
}

void TicketKeys::rotateIfDue(int64_t now) {
  std::lock_guard lock(mu_);
  bool due = keys_.empty() || keys_.front().retiredAt != 0 ||
             now - keys_.front().createdAt >= options_.rotateEvery.count();
  if (due) {
    // Retired when it fell due, not when noticed: every callback rotates first, so no ticket
    // was issued with it after that moment, and its decrypting life counts from then.
    if (!keys_.empty() && keys_.front().retiredAt == 0) {
      keys_.front().retiredAt =
          std::min(now, keys_.front().createdAt + options_.rotateEvery.count());
    }
    mintLocked(now);
  }
  // A retired key decrypts for one ticket lifetime after it stopped issuing, then goes.
  auto aged = [&](Key& key) {
    if (key.retiredAt == 0 || now - key.retiredAt < options_.ticketLifetime.count()) {
      return false;
    }
    wipe(key.aes);
    wipe(key.hmac);
    return true;
  };
  keys_.erase(std::remove_if(keys_.begin(), keys_.end(), aged), keys_.end());
}

void TicketKeys::rotate(int64_t now) {
  {
    std::lock_guard lock(mu_);
    if (!keys_.empty() && keys_.front().retiredAt == 0) {
      keys_.front().retiredAt = now;
    }
  }
  rotateIfDue(now);
}

int TicketKeys::ticketCallback(unsigned char keyName[16], unsigned char* iv, EVP_CIPHER_CTX* cipher,
                               EVP_MAC_CTX* mac, int enc) {
  rotateIfDue(now());
  std::lock_guard lock(mu_);
  if (enc == 1) {
    if (keys_.empty() || keys_.front().retiredAt != 0) {
      return 0;  // minting failed: issue no ticket rather than fail the handshake
    }
    Key& key = keys_.front();
    if (RAND_bytes(iv, 16) != 1) {
      return -1;
    }
    std::memcpy(keyName, key.name.data(), key.name.size());
    if (ticketCipher() == nullptr ||
        EVP_EncryptInit_ex2(cipher, ticketCipher(), key.aes.data(), iv, nullptr) != 1 ||
        !setMacKey(mac, key.hmac)) {
      return -1;
    }
    return 1;
  }
  auto found = std::find_if(keys_.begin(), keys_.end(), [&](const Key& key) {
    return std::memcmp(key.name.data(), keyName, key.name.size()) == 0;
  });
  if (found == keys_.end()) {
    return 0;  // unknown or aged out: a full handshake
  }
  if (!setMacKey(mac, found->hmac) || ticketCipher() == nullptr ||
      EVP_DecryptInit_ex2(cipher, ticketCipher(), found->aes.data(), iv, nullptr) != 1) {
    return -1;
  }
  return found->retiredAt == 0 ? 1 : 2;
}

bool TicketKeys::attach(SSL_CTX* ctx) {
  int slot = keysSlot();
  if (slot < 0) {
    return false;
  }
  delete static_cast<std::shared_ptr<TicketKeys>*>(SSL_CTX_get_ex_data(ctx, slot));
  auto* holder = new std::shared_ptr<TicketKeys>(shared_from_this());
  if (SSL_CTX_set_ex_data(ctx, slot, holder) != 1) {
    delete holder;
    return false;
  }
  SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticketKeyCallback);
  SSL_CTX_set_timeout(ctx, static_cast<long>(options_.ticketLifetime.count()));
  return true;
}

}  // namespace edgeplane::proxy::tls
