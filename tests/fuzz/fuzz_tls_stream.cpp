// libFuzzer target for ServerStream: untrusted bytes handed over as the replayed ClientHello.
//
// The input is what the engine's hello reader would pass on. The stream runs over one end of
// a socketpair (the other end never answers), as far as the bytes take it: the handshake, a
// read and a write if it completes, a shutdown. Whatever the bytes, every call must return one
// of the Io values (no crash, leak or hang) and an Error must carry a text.
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include "proxy/tls/context.h"
#include "proxy/tls/stream.h"
#include "tests/support/test_cert.h"

namespace {

using edgeplane::proxy::tls::ContextSet;
using edgeplane::proxy::tls::ServerStream;
using Io = ServerStream::Io;

// One certificate loaded once, through the same files path the proxy uses.
SSL_CTX* context() {
  static const std::shared_ptr<const ContextSet> set = [] {
    auto made = edgeplane::testing::makeTestCertificate({"fuzz.example.com"});
    char pattern[] = "/tmp/edgeplane-fuzz-tls-XXXXXX";
    std::filesystem::path dir = ::mkdtemp(pattern);
    edgeplane::SnapshotCertificate cert;
    cert.name = "fuzz";
    cert.fingerprint = made.fingerprint;
    cert.cert_file = (dir / "fuzz.crt").string();
    cert.key_file = (dir / "fuzz.key").string();
    std::ofstream(cert.cert_file) << made.certPem;
    std::ofstream(cert.key_file) << made.keyPem;
    std::vector<std::string> errors;
    auto built = ContextSet::build({cert}, nullptr, nullptr, &errors);
    std::filesystem::remove_all(dir);
    if (built->find("fuzz") == nullptr) {
      std::abort();
    }
    return built;
  }();
  return set->find("fuzz");
}

void check(const ServerStream& stream, Io io) {
  if (io == Io::Error && stream.errorText().empty()) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 16384) {
    return 0;  // the engine's hello reader hands over at most 16 KiB
  }
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
    return 0;
  }
  auto stream = ServerStream::create(context(), fds[0], std::vector<uint8_t>(data, data + size));
  if (stream) {
    Io io = stream->handshake();
    check(*stream, io);
    if (io == Io::Ok) {
      uint8_t buf[512];
      size_t n = 0;
      check(*stream, stream->read(buf, sizeof buf, &n));
      check(*stream, stream->write(buf, sizeof buf, &n));
    }
    (void)stream->pending();
    (void)stream->alpn();
    (void)stream->version();
    check(*stream, stream->shutdown());
  }
  stream.reset();
  ::close(fds[0]);
  ::close(fds[1]);
  return 0;
}
