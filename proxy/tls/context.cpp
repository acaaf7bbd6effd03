// Loading snapshot certificates into server SSL_CTXs with the proxy's TLS policy.
#include "proxy/tls/context.h"

#include <fcntl.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <utility>

#include "schema/encoding.h"
#include "schema/pem_key.h"

namespace edgeplane::proxy::tls {

namespace {

// Mozilla's "intermediate" TLS 1.2 list without DHE: forward secret AEAD suites only.
constexpr char kCiphers12[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr char kCiphers13[] =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
constexpr char kGroups[] = "X25519:P-256:P-384";
// PEM files of a certificate chain or a key are a few KiB; this only bounds a wrong path.
constexpr size_t kMaxPemBytes = size_t{1} << 20;

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct CtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using BioPtr = std::unique_ptr<BIO, BioFree>;
using CtxPtr = std::unique_ptr<SSL_CTX, CtxFree>;

// Holds a file's bytes and wipes them when done: the key file's PEM is a secret.
class FileBytes {
 public:
  ~FileBytes() { OPENSSL_cleanse(bytes_.data(), bytes_.size()); }
  std::string& bytes() { return bytes_; }

 private:
  std::string bytes_;
};

// Reads a whole (small) file. An error names the path and the errno text, never content.
bool readFile(const std::string& path, FileBytes& out, std::string* reason) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    *reason = path + ": " + std::system_category().message(err);
    return false;
  }
  std::string& bytes = out.bytes();
  bytes.reserve(16384);
  char chunk[8192];
  while (true) {
    ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      const int err = errno;
      *reason = path + ": " + std::system_category().message(err);
      ::close(fd);
      return false;
    }
    if (n == 0) {
      break;
    }
    if (bytes.size() + static_cast<size_t>(n) > kMaxPemBytes) {
      *reason = path + ": larger than 1 MiB, not a PEM file";
      ::close(fd);
      return false;
    }
    bytes.append(chunk, static_cast<size_t>(n));
    OPENSSL_cleanse(chunk, sizeof chunk);
  }
  ::close(fd);
  return true;
}

// A passphrase callback that refuses: the default one would prompt on the terminal.
int noPassphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*u*/) {
  return 0;
}

int selectAlpn(SSL* /*ssl*/, const unsigned char** out, unsigned char* outlen,
               const unsigned char* in, unsigned int inlen, void* /*arg*/) {
  if (const unsigned char* p = findAlpnProtocol(in, inlen, kAlpnHttp11); p != nullptr) {
    *out = p;
    *outlen = static_cast<unsigned char>(kAlpnHttp11.size());
    return SSL_TLSEXT_ERR_OK;
  }
  // Nothing we speak: answer without ALPN; the client decides whether that is fatal.
  return SSL_TLSEXT_ERR_NOACK;
}

// The policy every certificate's context shares (see context.h).
CtxPtr newServerContext(const std::shared_ptr<TicketKeys>& keys, const std::string& name) {
  CtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) {
    return nullptr;
  }
  SSL_CTX* c = ctx.get();
  // Tickets are bound to the certificate's name, so one certificate's ticket never resumes a
  // session on another's context, while every generation of the same name accepts it.
  unsigned char sid[SHA256_DIGEST_LENGTH];
  std::string sidInput = "edgeplane-proxy certificate " + name;
  static_assert(sizeof sid <= SSL_MAX_SID_CTX_LENGTH);
  bool ok =
      SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION) == 1 &&
      SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION) == 1 &&
      SSL_CTX_set_cipher_list(c, kCiphers12) == 1 && SSL_CTX_set_ciphersuites(c, kCiphers13) == 1 &&
      SSL_CTX_set1_groups_list(c, kGroups) == 1 &&
      EVP_Digest(sidInput.data(), sidInput.size(), sid, nullptr, EVP_sha256(), nullptr) == 1 &&
      SSL_CTX_set_session_id_context(c, sid, sizeof sid) == 1 && keys->attach(c);
  if (!ok) {
    return nullptr;
  }
  SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_clear_options(c, SSL_OP_NO_TICKET);
  SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                          SSL_MODE_ENABLE_PARTIAL_WRITE);
  // Resumption is by ticket only: a per-context server cache would not be shared by the
  // generations or survive a reload, and it costs memory per handshake.
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_alpn_select_cb(c, selectAlpn, nullptr);
  return ctx;
}

}  // namespace

const unsigned char* findAlpnProtocol(const unsigned char* in, unsigned int inlen,
                                      std::string_view protocol) {
  size_t i = 0;
  while (i < inlen) {
    size_t len = in[i];
    if (i + 1 + len > inlen) {
      break;
    }
    if (std::string_view(reinterpret_cast<const char*>(in + i + 1), len) == protocol) {
      return in + i + 1;
    }
    i += 1 + len;
  }
  return nullptr;
}

namespace {

std::string lowerHex(std::string_view text) {
  std::string out(text);
  for (char& ch : out) {
    ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  }
  return out;
}

// Reads the PEM chain: the leaf, then every further certificate. nullptr + reason on error.
X509Ptr readChain(const std::string& path, std::vector<X509Ptr>& chain, std::string* reason) {
  FileBytes pem;
  if (!readFile(path, pem, reason)) {
    return nullptr;
  }
  BioPtr bio(BIO_new_mem_buf(pem.bytes().data(), static_cast<int>(pem.bytes().size())));
  if (!bio) {
    *reason = "out of memory";
    return nullptr;
  }
  X509Ptr leaf(PEM_read_bio_X509(bio.get(), nullptr, noPassphrase, nullptr));
  if (!leaf) {
    *reason = path + ": no PEM certificate";
    return nullptr;
  }
  while (true) {
    ERR_clear_error();
    X509Ptr next(PEM_read_bio_X509(bio.get(), nullptr, noPassphrase, nullptr));
    if (!next) {
      unsigned long err = ERR_peek_last_error();
      if (ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE) {
        break;  // the end of the file
      }
      *reason = path + ": certificate #" + std::to_string(chain.size() + 2) +
                " of the chain is not valid PEM";
      return nullptr;
    }
    chain.push_back(std::move(next));
  }
  ERR_clear_error();
  return leaf;
}

// One certificate -> its context, or nullptr with the reason (never key material).
CtxPtr loadCertificate(const SnapshotCertificate& spec, const std::shared_ptr<TicketKeys>& keys,
                       std::string* reason) {
  std::vector<X509Ptr> chain;
  X509Ptr leaf = readChain(spec.cert_file, chain, reason);
  if (!leaf) {
    return nullptr;
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdLen = 0;
  if (X509_digest(leaf.get(), EVP_sha256(), md, &mdLen) != 1) {
    *reason = "cannot hash the leaf certificate";
    return nullptr;
  }
  std::string actual = toHex(md, mdLen);
  if (actual != lowerHex(spec.fingerprint)) {
    *reason = "the leaf of " + spec.cert_file + " has SHA-256 " + actual + ", the snapshot says " +
              spec.fingerprint;
    return nullptr;
  }

  PrivateKey key;
  {
    FileBytes pem;
    if (!readFile(spec.key_file, pem, reason)) {
      return nullptr;
    }
    key = readPrivateKeyPem(pem.bytes());
  }
  if (!key) {
    *reason = spec.key_file + ": no unencrypted PEM private key";
    return nullptr;
  }

  CtxPtr ctx = newServerContext(keys, spec.name);
  if (!ctx) {
    *reason = "cannot create an SSL_CTX";
    return nullptr;
  }
  if (SSL_CTX_use_certificate(ctx.get(), leaf.get()) != 1) {
    *reason = spec.cert_file + ": the certificate is refused (too weak a key or signature?)";
    return nullptr;
  }
  for (X509Ptr& cert : chain) {
    if (SSL_CTX_add1_chain_cert(ctx.get(), cert.get()) != 1) {
      *reason = spec.cert_file + ": a chain certificate is refused";
      return nullptr;
    }
  }
  if (SSL_CTX_use_PrivateKey(ctx.get(), key.get()) != 1 ||
      SSL_CTX_check_private_key(ctx.get()) != 1) {
    *reason =
        "the key in " + spec.key_file + " does not match the certificate in " + spec.cert_file;
    return nullptr;
  }
  return ctx;
}

}  // namespace

ContextSet::~ContextSet() {
  for (auto& [name, entry] : entries_) {
    SSL_CTX_free(entry.ctx);
  }
}

std::shared_ptr<const ContextSet> ContextSet::build(const std::vector<SnapshotCertificate>& certs,
                                                    const ContextSet* previous,
                                                    std::shared_ptr<TicketKeys> keys,
                                                    std::vector<std::string>* errors) {
  if (!keys) {
    keys = previous != nullptr ? previous->keys_ : TicketKeys::create();
  }
  // A context carries its keys (ex_data): one built with other keys cannot be taken over.
  if (previous != nullptr && previous->keys_ != keys) {
    previous = nullptr;
  }
  std::shared_ptr<ContextSet> set(new ContextSet());
  set->keys_ = keys;
  auto fail = [&](const std::string& name, const std::string& reason) {
    if (errors != nullptr) {
      errors->push_back(name + ": " + reason);
    }
  };
  for (const SnapshotCertificate& spec : certs) {
    if (set->entries_.count(spec.name) != 0) {
      fail(spec.name, "appears twice in the snapshot");
      continue;
    }
    if (previous != nullptr) {
      auto old = previous->entries_.find(spec.name);
      if (old != previous->entries_.end() && old->second.spec.fingerprint == spec.fingerprint &&
          old->second.spec.cert_file == spec.cert_file &&
          old->second.spec.key_file == spec.key_file && SSL_CTX_up_ref(old->second.ctx) == 1) {
        set->entries_.emplace(spec.name, Entry{spec, old->second.ctx});
        continue;
      }
    }
    std::string reason;
    CtxPtr ctx = loadCertificate(spec, keys, &reason);
    ERR_clear_error();
    if (!ctx) {
      fail(spec.name, reason);
      continue;
    }
    set->entries_.emplace(spec.name, Entry{spec, ctx.release()});
  }
  return set;
}

SSL_CTX* ContextSet::find(std::string_view certificateName) const {
  auto found = entries_.find(certificateName);
  return found == entries_.end() ? nullptr : found->second.ctx;
}

std::vector<SnapshotCertificate> ContextSet::loaded() const {
  std::vector<SnapshotCertificate> out;
  out.reserve(entries_.size());
  for (const auto& [name, entry] : entries_) {
    out.push_back(entry.spec);
  }
  return out;
}

}  // namespace edgeplane::proxy::tls
