// proxy_tls: certificate loading and reuse, ticket keys, and ServerStream handshakes against a
// real OpenSSL client over a socketpair, with the ClientHello replayed as the engine does.
#include <gtest/gtest.h>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "proxy/tls/acme_alpn.h"
#include "proxy/tls/context.h"
#include "proxy/tls/stream.h"
#include "proxy/tls/ticket_keys.h"
#include "schema/encoding.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_cert.h"

namespace edgeplane::proxy::tls {
namespace {

using Io = ServerStream::Io;

// ---- certificates made in the test ---------------------------------------------------------

using KeyPair = testing::TestCertificate;

KeyPair makeCertificate(const std::vector<std::string>& domains) {
  return testing::makeTestCertificate(domains);
}

void writeFile(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

// Writes the pair as NAME.crt / NAME.key under `dir` and describes it as the snapshot would.
SnapshotCertificate placeCertificate(const std::filesystem::path& dir, const std::string& name,
                                     const KeyPair& pair, const std::vector<std::string>& domains) {
  SnapshotCertificate c;
  c.name = name;
  c.fingerprint = pair.fingerprint;
  c.cert_file = (dir / (name + ".crt")).string();
  c.key_file = (dir / (name + ".key")).string();
  c.domains = domains;
  writeFile(c.cert_file, pair.certPem);
  writeFile(c.key_file, pair.keyPem);
  return c;
}

std::string peerFingerprint(SSL* ssl) {
  X509* peer = SSL_get0_peer_certificate(ssl);
  if (peer == nullptr) {
    return "";
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  X509_digest(peer, EVP_sha256(), md, &len);
  return toHex(md, len);
}

// ---- a client and a ServerStream over a socketpair -------------------------------------------

struct ClientOptions {
  int minVersion = 0;  // 0: library default
  int maxVersion = 0;
  std::vector<std::string> alpn;
  SSL_SESSION* session = nullptr;  // offered for resumption
  std::string serverName = "a.example.com";
  bool legacy = false;  // security level 0, so the client may offer TLS 1.1
};

class Connection {
 public:
  ~Connection() {
    server_.reset();
    SSL_free(client_);
    SSL_CTX_free(clientCtx_);
    for (int fd : fds_) {
      if (fd >= 0) {
        ::close(fd);
      }
    }
  }

  // The client writes its ClientHello; the test reads it off the server end as the engine's
  // hello reader does and hands it to the ServerStream as `replay`.
  void start(SSL_CTX* serverCtx, const ClientOptions& options) {
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds_), 0);
    clientCtx_ = SSL_CTX_new(TLS_client_method());
    if (options.legacy) {
      SSL_CTX_set_security_level(clientCtx_, 0);
      SSL_CTX_set_cipher_list(clientCtx_, "DEFAULT:@SECLEVEL=0");
    }
    if (options.minVersion != 0) {
      SSL_CTX_set_min_proto_version(clientCtx_, options.minVersion);
    }
    if (options.maxVersion != 0) {
      SSL_CTX_set_max_proto_version(clientCtx_, options.maxVersion);
    }
    client_ = SSL_new(clientCtx_);
    SSL_set_fd(client_, fds_[1]);
    SSL_set_tlsext_host_name(client_, options.serverName.c_str());
    if (!options.alpn.empty()) {
      std::string wire;
      for (const std::string& p : options.alpn) {
        wire += static_cast<char>(p.size());
        wire += p;
      }
      ASSERT_EQ(SSL_set_alpn_protos(client_, reinterpret_cast<const unsigned char*>(wire.data()),
                                    static_cast<unsigned>(wire.size())),
                0);
    }
    if (options.session != nullptr) {
      ASSERT_EQ(SSL_set_session(client_, options.session), 1);
    }
    ASSERT_EQ(SSL_connect(client_), -1);
    ASSERT_EQ(SSL_get_error(client_, -1), SSL_ERROR_WANT_READ);
    std::vector<uint8_t> hello = drainSocket(fds_[0]);
    ASSERT_FALSE(hello.empty());
    ASSERT_EQ(hello[0], 0x16);  // a handshake record
    helloBytes_ = hello.size();
    server_ = ServerStream::create(serverCtx, fds_[0], std::move(hello));
    ASSERT_NE(server_, nullptr);
  }

  // Drives both ends until both finished the handshake (true) or one failed (false).
  bool handshake() {
    bool clientDone = false;
    for (int round = 0; round < 100; ++round) {
      server_->readable(false);  // polled, not edge-triggered: always try the socket
      serverIo_ = server_->handshake();
      if (!clientDone) {
        ERR_clear_error();
        int ret = SSL_do_handshake(client_);
        clientDone = ret == 1;
        int err = clientDone ? SSL_ERROR_NONE : SSL_get_error(client_, ret);
        if (err != SSL_ERROR_NONE && err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
          clientFailed_ = true;
        }
      }
      if (serverIo_ == Io::Ok && clientDone) {
        return true;
      }
      if (serverIo_ == Io::Error || serverIo_ == Io::Eof || clientFailed_) {
        return false;
      }
      if (!waitReadable()) {
        return false;
      }
    }
    return false;
  }

  // The server writes `data`; the client reads until it has all of it. Counts the server's
  // partial writes and WantWrite results.
  std::string serverToClient(const std::string& data) {
    std::string received;
    size_t sent = 0;
    for (int round = 0; round < 100000 && received.size() < data.size(); ++round) {
      if (sent < data.size()) {
        size_t n = 0;
        Io io = server_->write(reinterpret_cast<const uint8_t*>(data.data()) + sent,
                               data.size() - sent, &n);
        EXPECT_TRUE(io == Io::Ok || io == Io::WantWrite) << server_->errorText();
        if (io != Io::Ok && io != Io::WantWrite) {
          break;
        }
        wantWrites_ += io == Io::WantWrite ? 1 : 0;
        partialWrites_ += io == Io::Ok && n < data.size() - sent ? 1 : 0;
        sent += n;
      }
      clientReadAvailable(received);
    }
    return received;
  }

  // The client writes `data`; the server reads in 4 KiB steps until it has all of it.
  std::string clientToServer(const std::string& data) {
    std::string received;
    size_t sent = 0;
    for (int round = 0; round < 100000 && received.size() < data.size(); ++round) {
      if (sent < data.size()) {
        size_t n = 0;
        if (SSL_write_ex(client_, data.data() + sent, data.size() - sent, &n) == 1) {
          sent += n;
        }
      }
      Io io = serverRead(received);
      EXPECT_TRUE(io == Io::Ok || io == Io::WantRead) << server_->errorText();
      if (io != Io::Ok && io != Io::WantRead) {
        break;
      }
    }
    return received;
  }

  // Reads until the server reports something other than data/WantRead (Eof, Error).
  Io serverReadToEnd(std::string& received) {
    for (int round = 0; round < 100; ++round) {
      Io io = serverRead(received);
      if (io != Io::Ok && io != Io::WantRead) {
        return io;
      }
      waitReadable();
    }
    return Io::WantRead;
  }

  // A round trip each way, so the client has processed the TLS 1.3 session tickets.
  void exchange() {
    EXPECT_EQ(serverToClient("hello from the server"), "hello from the server");
    EXPECT_EQ(clientToServer("hello from the client"), "hello from the client");
  }

  ServerStream& server() { return *server_; }
  SSL* client() { return client_; }
  int clientFd() const { return fds_[1]; }
  size_t helloBytes() const { return helloBytes_; }
  Io serverIo() const { return serverIo_; }
  bool clientFailed() const { return clientFailed_; }
  int wantWrites() const { return wantWrites_; }
  int partialWrites() const { return partialWrites_; }

 private:
  static std::vector<uint8_t> drainSocket(int fd) {
    std::vector<uint8_t> out;
    uint8_t buf[4096];
    for (int i = 0; i < 100; ++i) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) {
        break;
      }
      out.insert(out.end(), buf, buf + n);
    }
    return out;
  }

  bool waitReadable() {
    pollfd p[2] = {{fds_[0], POLLIN, 0}, {fds_[1], POLLIN, 0}};
    return ::poll(p, 2, 2000) > 0;
  }

  // One server read of up to 4 KiB, then everything pending() says is buffered.
  Io serverRead(std::string& received) {
    uint8_t buf[4096];
    server_->readable(false);  // polled, not edge-triggered: always try the socket
    while (true) {
      size_t n = 0;
      Io io = server_->read(buf, sizeof buf, &n);
      if (io != Io::Ok) {
        return io;
      }
      received.append(reinterpret_cast<char*>(buf), n);
      if (server_->pending() == 0) {
        return Io::Ok;
      }
    }
  }

  void clientReadAvailable(std::string& received) {
    char buf[16384];
    size_t n = 0;
    while (SSL_read_ex(client_, buf, sizeof buf, &n) == 1) {
      received.append(buf, n);
    }
  }

  int fds_[2] = {-1, -1};
  SSL_CTX* clientCtx_ = nullptr;
  SSL* client_ = nullptr;
  std::unique_ptr<ServerStream> server_;
  Io serverIo_ = Io::WantRead;
  bool clientFailed_ = false;
  int wantWrites_ = 0;
  int partialWrites_ = 0;
  size_t helloBytes_ = 0;
};

// A TempDir with two certificates ("a" for a.example.com, "b" for b.example.com) and a set
// built from them with a controllable clock.
class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pairA_ = makeCertificate({"a.example.com", "www.a.example.com"});
    pairB_ = makeCertificate({"b.example.com"});
    certs_.push_back(placeCertificate(dir_.path(), "a", pairA_, {"a.example.com"}));
    certs_.push_back(placeCertificate(dir_.path(), "b", pairB_, {"b.example.com"}));
    TicketKeysOptions options;
    options.clock = [this] { return now_; };
    keys_ = TicketKeys::create(options);
  }

  std::shared_ptr<const ContextSet> build(const ContextSet* previous,
                                          std::vector<std::string>* errors = nullptr) {
    std::vector<std::string> local;
    auto set = ContextSet::build(certs_, previous, keys_, errors != nullptr ? errors : &local);
    EXPECT_NE(set, nullptr);
    if (errors == nullptr) {
      EXPECT_TRUE(local.empty()) << local.front();
    }
    return set;
  }

  // A full connection with a.example.com: handshake and a round trip; the client's session.
  // `helloBytes`: the ClientHello's size, which tells whether a ticket was offered at all.
  SSL_SESSION* connectAndKeepSession(SSL_CTX* ctx, const ClientOptions& options, bool* resumed,
                                     size_t* helloBytes = nullptr) {
    Connection conn;
    conn.start(ctx, options);
    if (helloBytes != nullptr) {
      *helloBytes = conn.helloBytes();
    }
    EXPECT_TRUE(conn.handshake()) << conn.server().errorText();
    conn.exchange();
    *resumed = conn.server().resumed();
    EXPECT_EQ(SSL_session_reused(conn.client()) == 1, *resumed);
    // A client freed without close_notify marks its session not resumable (a "bad session").
    SSL_shutdown(conn.client());
    return SSL_get1_session(conn.client());
  }

  testing::TempDir dir_;
  KeyPair pairA_;
  KeyPair pairB_;
  std::vector<SnapshotCertificate> certs_;
  int64_t now_ = 1'800'000'000;
  std::shared_ptr<TicketKeys> keys_;
};

// ---- ContextSet::build ---------------------------------------------------------------------

TEST_F(TlsTest, BuildLoadsEveryCertificateAndServesIt) {
  auto set = build(nullptr);
  ASSERT_EQ(set->size(), 2u);
  EXPECT_EQ(set->find("missing"), nullptr);
  ASSERT_NE(set->find("b"), nullptr);
  Connection conn;
  ClientOptions options;
  options.serverName = "b.example.com";
  conn.start(set->find("b"), options);
  ASSERT_TRUE(conn.handshake()) << conn.server().errorText();
  EXPECT_EQ(peerFingerprint(conn.client()), pairB_.fingerprint);
}

TEST_F(TlsTest, BuildReusesAnUnchangedCertificateWithoutReadingItsFiles) {
  auto first = build(nullptr);
  // The files are gone: only a reuse can still yield a context.
  std::filesystem::remove(certs_[0].cert_file);
  std::filesystem::remove(certs_[0].key_file);
  auto second = build(first.get());
  EXPECT_EQ(second->find("a"), first->find("a"));
  EXPECT_EQ(second->find("b"), first->find("b"));
  // The reused context outlives the generation that loaded it.
  SSL_CTX* a = second->find("a");
  first.reset();
  Connection conn;
  conn.start(a, ClientOptions{});
  ASSERT_TRUE(conn.handshake()) << conn.server().errorText();
  EXPECT_EQ(peerFingerprint(conn.client()), pairA_.fingerprint);
}

TEST_F(TlsTest, BuildReloadsACertificateWhoseFingerprintChanged) {
  auto first = build(nullptr);
  KeyPair renewed = makeCertificate({"a.example.com"});
  certs_[0] = placeCertificate(dir_.path(), "a", renewed, {"a.example.com"});
  auto second = build(first.get());
  EXPECT_NE(second->find("a"), first->find("a"));
  EXPECT_EQ(second->find("b"), first->find("b"));
  Connection conn;
  conn.start(second->find("a"), ClientOptions{});
  ASSERT_TRUE(conn.handshake()) << conn.server().errorText();
  EXPECT_EQ(peerFingerprint(conn.client()), renewed.fingerprint);
}

TEST_F(TlsTest, BuildReportsBrokenCertificatesAndKeepsTheOthers) {
  KeyPair c = makeCertificate({"c.example.com"});
  SnapshotCertificate mismatch = placeCertificate(dir_.path(), "mismatch", c, {});
  writeFile(mismatch.key_file, pairA_.keyPem);  // another certificate's key
  SnapshotCertificate missing = placeCertificate(dir_.path(), "missing", c, {});
  missing.cert_file = (dir_.path() / "nowhere.crt").string();
  SnapshotCertificate wrongPrint = placeCertificate(dir_.path(), "wrongprint", c, {});
  wrongPrint.fingerprint = pairB_.fingerprint;
  SnapshotCertificate notPem = placeCertificate(dir_.path(), "notpem", c, {});
  writeFile(notPem.cert_file, "this is not a certificate\n");
  SnapshotCertificate badKey = placeCertificate(dir_.path(), "badkey", c, {});
  writeFile(badKey.key_file, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
  certs_.insert(certs_.begin() + 1, {mismatch, missing, wrongPrint, notPem, badKey});

  std::vector<std::string> errors;
  auto set = build(nullptr, &errors);
  EXPECT_EQ(set->size(), 2u);
  EXPECT_NE(set->find("a"), nullptr);
  EXPECT_NE(set->find("b"), nullptr);
  ASSERT_EQ(errors.size(), 5u);
  EXPECT_EQ(errors[0].rfind("mismatch: ", 0), 0u) << errors[0];
  EXPECT_NE(errors[0].find("does not match"), std::string::npos) << errors[0];
  EXPECT_EQ(errors[1].rfind("missing: ", 0), 0u) << errors[1];
  EXPECT_NE(errors[1].find("No such file or directory"), std::string::npos) << errors[1];
  EXPECT_EQ(errors[2].rfind("wrongprint: ", 0), 0u) << errors[2];
  EXPECT_NE(errors[2].find(pairB_.fingerprint), std::string::npos) << errors[2];
  EXPECT_EQ(errors[3].rfind("notpem: ", 0), 0u) << errors[3];
  EXPECT_NE(errors[3].find("no PEM certificate"), std::string::npos) << errors[3];
  EXPECT_EQ(errors[4].rfind("badkey: ", 0), 0u) << errors[4];
  EXPECT_NE(errors[4].find("private key"), std::string::npos) << errors[4];
  // No key material in any message: not the PEM armour, not a line of the key's base64.
  std::string keyLine = pairA_.keyPem.substr(pairA_.keyPem.find('\n') + 1, 40);
  for (const std::string& e : errors) {
    EXPECT_EQ(e.find("BEGIN"), std::string::npos) << e;
    EXPECT_EQ(e.find(keyLine), std::string::npos) << e;
  }
}

TEST_F(TlsTest, BuildWithNoCertificatesIsEmpty) {
  std::vector<SnapshotCertificate> none;
  auto set = ContextSet::build(none, nullptr, nullptr, nullptr);
  ASSERT_NE(set, nullptr);
  EXPECT_EQ(set->size(), 0u);
  EXPECT_NE(set->ticketKeys(), nullptr);
}

// ---- handshakes and data -------------------------------------------------------------------

struct VersionCase {
  int version;
  const char* name;
};

class TlsVersionTest : public TlsTest, public ::testing::WithParamInterface<VersionCase> {};

TEST_P(TlsVersionTest, HandshakeDataBothWaysAndCloseNotify) {
  auto set = build(nullptr);
  Connection conn;
  ClientOptions options;
  options.minVersion = options.maxVersion = GetParam().version;
  conn.start(set->find("a"), options);
  ASSERT_TRUE(conn.handshake()) << conn.server().errorText();
  EXPECT_TRUE(conn.server().handshakeDone());
  EXPECT_EQ(conn.server().version(), GetParam().name);
  EXPECT_FALSE(conn.server().resumed());
  EXPECT_EQ(peerFingerprint(conn.client()), pairA_.fingerprint);

  // 4 MiB one way: far more than the socket buffer, so writes stop and resume part-way.
  std::string big(4 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) {
    big[i] = static_cast<char>((i * 7919) >> 3);
  }
  EXPECT_TRUE(conn.serverToClient(big) == big);
  EXPECT_GT(conn.wantWrites() + conn.partialWrites(), 0);
  std::string upload(300000, 'u');
  EXPECT_TRUE(conn.clientToServer(upload) == upload);

  ASSERT_EQ(SSL_shutdown(conn.client()), 0);  // the client's close_notify
  std::string rest;
  EXPECT_EQ(conn.serverReadToEnd(rest), Io::Eof) << conn.server().errorText();
  EXPECT_TRUE(rest.empty());
  EXPECT_EQ(conn.server().shutdown(), Io::Ok);
  EXPECT_EQ(SSL_shutdown(conn.client()), 1);  // the server's close_notify arrived
}

TEST_P(TlsVersionTest, FinWithoutCloseNotifyIsEof) {
  auto set = build(nullptr);
  Connection conn;
  ClientOptions options;
  options.minVersion = options.maxVersion = GetParam().version;
  conn.start(set->find("a"), options);
  ASSERT_TRUE(conn.handshake()) << conn.server().errorText();
  EXPECT_EQ(conn.clientToServer("last words"), "last words");
  ASSERT_EQ(::shutdown(conn.clientFd(), SHUT_WR), 0);
  std::string rest;
  EXPECT_EQ(conn.serverReadToEnd(rest), Io::Eof);
  EXPECT_NE(conn.server().errorText().find("without close_notify"), std::string::npos);
  EXPECT_EQ(conn.server().shutdown(), Io::Ok);  // nothing may be sent after that: no crash
}

INSTANTIATE_TEST_SUITE_P(Versions, TlsVersionTest,
                         ::testing::Values(VersionCase{TLS1_2_VERSION, "TLSv1.2"},
                                           VersionCase{TLS1_3_VERSION, "TLSv1.3"}),
                         [](const ::testing::TestParamInfo<VersionCase>& param) {
                           return param.param.version == TLS1_2_VERSION ? std::string("Tls12")
                                                                        : std::string("Tls13");
                         });

TEST_F(TlsTest, Tls11IsRefused) {
  auto set = build(nullptr);
  Connection conn;
  ClientOptions options;
  options.legacy = true;
  options.minVersion = options.maxVersion = TLS1_1_VERSION;
  conn.start(set->find("a"), options);
  EXPECT_FALSE(conn.handshake());
  EXPECT_EQ(conn.serverIo(), Io::Error);
  EXPECT_NE(conn.server().errorText().find("protocol"), std::string::npos)
      << conn.server().errorText();
  EXPECT_FALSE(conn.server().handshakeDone());
  size_t n = 0;
  uint8_t buf[16];
  EXPECT_EQ(conn.server().read(buf, sizeof buf, &n), Io::Error);
  EXPECT_EQ(conn.server().shutdown(), Io::Ok);
}

TEST_F(TlsTest, AlpnSelectsHttp11WhenOffered) {
  auto set = build(nullptr);
  Connection conn;
  ClientOptions options;
  options.alpn = {"h2", "http/1.1"};
  conn.start(set->find("a"), options);
  ASSERT_TRUE(conn.handshake()) << conn.server().errorText();
  EXPECT_EQ(conn.server().alpn(), "http/1.1");
}

TEST_F(TlsTest, AlpnAbsentWhenNotOffered) {
  auto set = build(nullptr);
  Connection conn;
  conn.start(set->find("a"), ClientOptions{});
  ASSERT_TRUE(conn.handshake()) << conn.server().errorText();
  EXPECT_EQ(conn.server().alpn(), "");
}

TEST_F(TlsTest, AlpnWithOnlyH2OfferedStillHandshakes) {
  auto set = build(nullptr);
  Connection conn;
  ClientOptions options;
  options.alpn = {"h2"};
  conn.start(set->find("a"), options);
  ASSERT_TRUE(conn.handshake()) << conn.server().errorText();
  EXPECT_EQ(conn.server().alpn(), "");
  const unsigned char* selected = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(conn.client(), &selected, &len);
  EXPECT_EQ(len, 0u);
  conn.exchange();
}

// Bytes that are no ClientHello, handed over as the engine would: an Error, never a crash.
void expectGarbageRefused(SSL_CTX* ctx, const std::vector<uint8_t>& garbage) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
  auto stream = ServerStream::create(ctx, fds[0], garbage);
  ASSERT_NE(stream, nullptr);
  EXPECT_EQ(stream->handshake(), Io::Error);
  EXPECT_FALSE(stream->errorText().empty());
  EXPECT_FALSE(stream->handshakeDone());
  EXPECT_EQ(stream->version(), "");
  size_t n = 0;
  uint8_t buf[8];
  EXPECT_EQ(stream->write(buf, sizeof buf, &n), Io::Error);
  EXPECT_EQ(stream->shutdown(), Io::Ok);
  stream.reset();
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST_F(TlsTest, GarbageClientHelloIsAnError) {
  auto set = build(nullptr);
  std::string http = "GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n";
  expectGarbageRefused(set->find("a"), std::vector<uint8_t>(http.begin(), http.end()));
  // A handshake record holding a ClientHello that claims more than it has.
  expectGarbageRefused(set->find("a"), {0x16, 0x03, 0x01, 0x00, 0x08, 0x01, 0x00, 0x00, 0x04, 0xff,
                                        0xff, 0xff, 0xff});
  // A record header announcing 65535 bytes (over the TLS limit).
  expectGarbageRefused(set->find("a"), {0x16, 0x03, 0x01, 0xff, 0xff, 0x01});
}

// ---- resumption by ticket ------------------------------------------------------------------

TEST_F(TlsTest, TicketResumesOnTheNextGenerationsContext) {
  for (int version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
    SCOPED_TRACE(version);
    auto first = build(nullptr);
    ClientOptions options;
    options.minVersion = options.maxVersion = version;
    bool resumed = true;
    SSL_SESSION* session = connectAndKeepSession(first->find("a"), options, &resumed);
    ASSERT_NE(session, nullptr);
    EXPECT_FALSE(resumed);
    // A fresh generation built without `previous`: a new SSL_CTX, the same ticket keys.
    auto second = build(nullptr);
    ASSERT_NE(second->find("a"), first->find("a"));
    options.session = session;
    SSL_SESSION* again = connectAndKeepSession(second->find("a"), options, &resumed);
    EXPECT_TRUE(resumed);
    SSL_SESSION_free(again);
    SSL_SESSION_free(session);
  }
}

TEST_F(TlsTest, TicketFromAnotherCertificateDoesNotResume) {
  auto set = build(nullptr);
  bool resumed = true;
  ClientOptions options;
  size_t plainHello = 0;
  size_t ticketHello = 0;
  SSL_SESSION* session = connectAndKeepSession(set->find("a"), options, &resumed, &plainHello);
  // Same server name, so the client offers the ticket; b's context must not take it.
  options.session = session;
  SSL_SESSION* other = connectAndKeepSession(set->find("b"), options, &resumed, &ticketHello);
  EXPECT_GT(ticketHello, plainHello + 100);  // the ticket was offered
  EXPECT_FALSE(resumed);
  SSL_SESSION_free(other);
  SSL_SESSION_free(session);
}

TEST_F(TlsTest, TicketResumesAfterOneRotationAndNotAfterTheKeysAgedOut) {
  auto set = build(nullptr);
  ClientOptions options;
  bool resumed = true;
  size_t plainHello = 0;
  size_t ticketHello = 0;
  SSL_SESSION* session = connectAndKeepSession(set->find("a"), options, &resumed, &plainHello);
  ASSERT_NE(session, nullptr);
  EXPECT_EQ(keys_->keyCount(), 1u);

  now_ += 3600;  // one rotation: a new issuing key, the old one still decrypts
  options.session = session;
  SSL_SESSION* renewed = connectAndKeepSession(set->find("a"), options, &resumed);
  EXPECT_TRUE(resumed);
  EXPECT_EQ(keys_->keyCount(), 2u);

  now_ += 3600 + 7200;  // two more rotations later the first key is gone
  SSL_SESSION* fresh = connectAndKeepSession(set->find("a"), options, &resumed, &ticketHello);
  EXPECT_GT(ticketHello, plainHello + 100);  // offered, and refused by the key lookup
  EXPECT_FALSE(resumed);
  EXPECT_EQ(keys_->keyCount(), 1u);
  SSL_SESSION_free(fresh);
  SSL_SESSION_free(renewed);
  SSL_SESSION_free(session);
}

TEST(TicketKeysTest, RotatesOnScheduleAndForgetsAgedKeys) {
  int64_t now = 1000;
  TicketKeysOptions options;
  options.rotateEvery = std::chrono::seconds(100);
  options.ticketLifetime = std::chrono::seconds(250);
  options.clock = [&] { return now; };
  auto keys = TicketKeys::create(options);
  EXPECT_EQ(keys->keyCount(), 0u);
  keys->rotateIfDue(keys->now());
  EXPECT_EQ(keys->keyCount(), 1u);
  keys->rotateIfDue(1099);
  EXPECT_EQ(keys->keyCount(), 1u);
  keys->rotateIfDue(1100);  // key 1 retired at 1100
  EXPECT_EQ(keys->keyCount(), 2u);
  keys->rotateIfDue(1200);  // key 2 retired at 1200
  EXPECT_EQ(keys->keyCount(), 3u);
  keys->rotateIfDue(1299);
  EXPECT_EQ(keys->keyCount(), 3u);
  keys->rotateIfDue(1300);  // key 3 retired at 1300; key 1 (retired at 1100) still decrypts
  EXPECT_EQ(keys->keyCount(), 4u);
  keys->rotateIfDue(1350);  // key 1 retired 250 s ago: gone
  EXPECT_EQ(keys->keyCount(), 3u);
  // After a long idle gap the stale issuing key counts as retired when it fell due.
  keys->rotateIfDue(5000);
  EXPECT_EQ(keys->keyCount(), 1u);
  keys->rotate(5001);  // forced
  EXPECT_EQ(keys->keyCount(), 2u);
}

// ---- TLS-ALPN-01 (RFC 8737) -----------------------------------------------------------------

// The extension's value for a known key authorization; the digest is
// `printf %s tok-1.thumbprint | sha256sum`.
TEST(AcmeTlsAlpn, IdentifierIsTheDerOctetStringOfTheKeyAuthorizationsDigest) {
  const std::string der = acmeIdentifierDer("tok-1.thumbprint");
  EXPECT_EQ(toHex(reinterpret_cast<const unsigned char*>(der.data()), der.size()),
            "0420"
            "3493c0b3b4890b8c61ed162d3b5b6c4f7b5034fa2cb2c84eccd0358037e000c2");
}

// DNS-01's TXT value (RFC 8555 section 8.4); the expected text is
// base64.urlsafe_b64encode(hashlib.sha256(ka).digest()) in Python, '=' stripped.
TEST(AcmeDns01, TxtValueIsTheBase64UrlOfTheKeyAuthorizationsDigest) {
  EXPECT_EQ(dns01TxtValue("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA."
                          "nP1qzpXGymHBrUEepNY9HCsQk7K8KhOypzEt62jcerQ"),
            "NGwKoXBgCT8JhEa0bK7AwfSqHyu_ZWeugV07fLGIVq0");
}

TEST_F(TlsTest, AcmeTlsAlpnServesTheValidationCertificateToAcmeTls1) {
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    auto ctx = acmeTlsAlpnContext("a.example.com", "tok-1.thumbprint");
    ASSERT_TRUE(ctx.ok()) << ctx.error().message;
    Connection conn;
    ClientOptions options;
    options.alpn = {"acme-tls/1"};
    options.minVersion = version;
    options.maxVersion = version;
    conn.start(ctx->get(), options);
    ASSERT_TRUE(conn.handshake()) << conn.server().errorText();
    EXPECT_EQ(conn.server().alpn(), "acme-tls/1");
    X509* peer = SSL_get0_peer_certificate(conn.client());
    ASSERT_NE(peer, nullptr);
    // subjectAltName: exactly one dNSName, the domain.
    auto* names =
        static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(peer, NID_subject_alt_name, nullptr, nullptr));
    ASSERT_NE(names, nullptr);
    ASSERT_EQ(sk_GENERAL_NAME_num(names), 1);
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, 0);
    ASSERT_EQ(name->type, GEN_DNS);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(name->d.dNSName)),
                          static_cast<size_t>(ASN1_STRING_length(name->d.dNSName))),
              "a.example.com");
    GENERAL_NAMES_free(names);
    // id-pe-acmeIdentifier: critical, SHA-256 of the key authorization.
    ASN1_OBJECT* oid = OBJ_txt2obj(kAcmeIdentifierOid, 1);
    const int at = X509_get_ext_by_OBJ(peer, oid, -1);
    ASN1_OBJECT_free(oid);
    ASSERT_GE(at, 0);
    X509_EXTENSION* ext = X509_get_ext(peer, at);
    EXPECT_EQ(X509_EXTENSION_get_critical(ext), 1);
    const ASN1_OCTET_STRING* data = X509_EXTENSION_get_data(ext);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(data)),
                          static_cast<size_t>(ASN1_STRING_length(data))),
              acmeIdentifierDer("tok-1.thumbprint"));
  }
}

// RFC 8737 section 3: only a client offering acme-tls/1 gets the validation certificate.
TEST_F(TlsTest, AcmeTlsAlpnRefusesAHandshakeWithoutAcmeTls1) {
  auto ctx = acmeTlsAlpnContext("a.example.com", "tok-1.thumbprint");
  ASSERT_TRUE(ctx.ok()) << ctx.error().message;
  for (const std::vector<std::string>& alpn :
       {std::vector<std::string>{"http/1.1"}, std::vector<std::string>{}}) {
    Connection conn;
    ClientOptions options;
    options.alpn = alpn;
    conn.start(ctx->get(), options);
    EXPECT_FALSE(conn.handshake()) << "ALPN offered: " << alpn.size();
  }
}

}  // namespace
}  // namespace edgeplane::proxy::tls
