// The https handler's state (internal to proxy/handlers; see https.h for the behaviour).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "proxy/engine/handler.h"
#include "proxy/handlers/https.h"
#include "proxy/handlers/upstream_pool.h"
#include "proxy/http/chunked.h"
#include "proxy/http/message.h"
#include "proxy/tls/stream.h"

namespace edgeplane::proxy {

// The per-worker cache of I/O buffers (kBufferBytes each): a request takes one or two, an
// idle keep-alive connection none. Reuse spares the allocator and the page faults of a fresh
// 48 KiB block per request; the cache keeps at most kKeep (768 KiB), so a burst of
// concurrent requests does not leave its buffers held for good.
class BufferCache {
 public:
  static constexpr size_t kBufferBytes = 49152;  // > the head limits (8 KiB line + 32 KiB fields)
  static constexpr size_t kKeep = 16;
  std::unique_ptr<char[]> get() {
    if (free_.empty()) {
      return std::unique_ptr<char[]>(new char[kBufferBytes]);  // not zeroed: never read unset
    }
    std::unique_ptr<char[]> b = std::move(free_.back());
    free_.pop_back();
    return b;
  }
  void put(std::unique_ptr<char[]> b) {
    if (b && free_.size() < kKeep) {
      free_.push_back(std::move(b));
    }
  }

 private:
  std::vector<std::unique_ptr<char[]>> free_;
};

// A byte buffer of BufferCache::kBufferBytes, read into at the tail and consumed at the head;
// it holds memory only between acquire() and release().
class ByteBuffer {
 public:
  void acquire(BufferCache& cache) {
    if (!bytes_) {
      bytes_ = cache.get();
    }
  }
  void release(BufferCache& cache) {
    cache.put(std::move(bytes_));
    begin_ = end_ = 0;
  }
  std::span<const char> data() const { return {bytes_.get() + begin_, end_ - begin_}; }
  size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }
  // Room at the tail, after moving the unread bytes to the front if that makes more.
  size_t room();
  char* tail() { return bytes_.get() + end_; }
  void produced(size_t n) { end_ += n; }
  void consume(size_t n);
  void clear() { begin_ = end_ = 0; }

 private:
  std::unique_ptr<char[]> bytes_;
  size_t begin_ = 0;
  size_t end_ = 0;
};

// Bytes queued for one socket, written from `sent`.
struct OutQueue {
  std::string bytes;
  size_t sent = 0;
  bool empty() const { return sent == bytes.size(); }
  size_t size() const { return bytes.size() - sent; }
  void clearIfDone() {
    if (sent == bytes.size()) {
      bytes.clear();
      sent = 0;
    }
  }
  // Empties the queue and gives its memory back. Assigning an empty queue would not: a
  // string moved from a short one keeps its own capacity, and an idle keep-alive connection
  // would hold the last response's size for as long as it stays open.
  void release() {
    std::string().swap(bytes);
    sent = 0;
  }
};

class HttpsProtocol final : public Protocol {
 public:
  HttpsProtocol(Context& ctx, std::unique_ptr<RequestFilter> filter)
      : pool_(ctx), filter_(std::move(filter)) {}
  std::unique_ptr<Handler> create(Connection& conn) override;
  void shutdown() override { pool_.clear(); }

  UpstreamPool pool_;
  BufferCache buffers_;
  std::unique_ptr<RequestFilter> filter_;
};

class HttpsHandler final : public Handler {
 public:
  HttpsHandler(Connection& conn, HttpsProtocol& protocol) : Handler(conn), protocol_(protocol) {}

  // Interface
  void start() override;
  void onIo(uint32_t tag, uint32_t events) override;
  void onTimer() override;
  void onReady() override { pump(); }
  void onClose(Outcome outcome) override;
  void onDrain() override;

  static constexpr uint32_t kUpstreamTag = 1;
  // How often the credential of a request the filter let through is checked again while its
  // exchange or tunnel lasts (a revoked API key ends it).
  static constexpr int64_t kAdmissionRecheckMs = 1000;
  // Draining: how long an idle keep-alive connection stays open for a request already on its
  // way (answered with Connection: close) before it is closed.
  static constexpr int64_t kDrainIdleGraceMs = 1000;

 private:
  enum class State : uint8_t { Handshake, Idle, Head, Exchange, Tunnel, Closing, Linger };
  enum class Resp : uint8_t { Head, Body, Done };

  // https.cpp: the client side.
  void pump();
  bool step();
  bool handshake();
  bool flushClient();
  bool readClient();
  bool wantClientBytes();
  bool processIdle();
  bool processHead();
  void startRequest(size_t headLength);
  const ActiveRoute* resolveHost(const std::shared_ptr<const ActiveConfig>& config);
  void answerError(int status, std::string_view body);
  void logRequest(Outcome outcome);
  void completeExchange();
  void resetRequest();
  void releaseIdleMemory();

  // https_lifetime.cpp: deadlines, the admission recheck, the close.
  void startClosing();
  bool linger();
  void armTimer();
  bool admissionChecked() const;
  bool stillAdmitted();
  int64_t stateDeadline();

  // https_upstream.cpp: backends and the exchange.
  void chooseBackend();
  void connectNext();
  void onConnectEvent(uint32_t events);
  void upstreamFailed(bool connectFailure);
  void closeUpstream(bool reusable);
  bool flushUpstream();
  bool readUpstream();
  bool forwardRequestBody();
  bool processResponse();
  bool responseHead();
  bool forwardResponseBody();
  bool tunnel();
  bool backendUp(size_t index);
  const std::vector<Endpoint>& backends() { return *ex().verdict.choice.backends; }

  // What a request needs beyond the connection's own state: made when a request begins (or
  // an answer needs it), dropped when the connection goes idle, so an idle keep-alive
  // connection does not carry ~750 bytes of heads, decoders and filter verdict.
  struct Exchange {
    http::RequestHead req;
    FilterVerdict verdict;  // the filter's decision; verdict.choice: the backends
    http::ChunkedDecoder reqChunks;
    std::string headBytes;  // the upstream request head, kept for a retry
    http::ResponseHead respHead;
    http::ChunkedDecoder respChunks;
  };
  Exchange& ex() {
    if (!ex_) {
      ex_ = std::make_unique<Exchange>();
    }
    return *ex_;
  }
  void filterFinished();

  HttpsProtocol& protocol_;
  std::unique_ptr<tls::ServerStream> tls_;
  std::string certName_;
  State state_ = State::Handshake;
  Outcome closeOutcome_;
  bool clientReadable_ = false;
  bool clientWritable_ = false;
  bool clientEof_ = false;
  bool closeAfter_ = false;   // the next response ends the connection (drain)
  int64_t drainSinceMs_ = 0;  // when onDrain() came (closeAfter_)
  bool anyRequest_ = false;
  int64_t stateSinceMs_ = 0;
  int64_t lastActivityMs_ = 0;
  int64_t admissionCheckMs_ = 0;  // admissionChecked(): when the credential is checked again
  ByteBuffer cin_;                // decrypted client bytes
  OutQueue cout_;                 // plaintext for the client

  // The request in flight.
  std::unique_ptr<Exchange> ex_;
  std::shared_ptr<const ActiveConfig> reqConfig_;
  const ActiveRoute* route_ = nullptr;
  bool filterPending_ = false;  // the filter saw this request: finished() is owed
  std::string method_, host_, path_;
  http::BodyFraming reqFraming_ = http::BodyFraming::None;
  uint64_t reqRemaining_ = 0;
  bool reqBodyDone_ = true;
  bool reqKeepAlive_ = true;
  bool http10_ = false;
  bool upgrade_ = false;
  bool retryable_ = false;  // idempotent, no body
  uint64_t in_ = 0;
  uint64_t out_ = 0;
  int status_ = 0;

  // The upstream side.
  UpstreamLink* link_ = nullptr;  // the upstream connection (the pool owns it)
  int up_ = -1;                   // its fd
  bool upConnecting_ = false;
  bool upReadable_ = false;
  bool upWritable_ = false;
  bool upEof_ = false;
  bool upHup_ = false;  // EPOLLRDHUP/HUP/ERR seen: read until EOF, a short read proves nothing
  bool upReused_ = false;
  int64_t attemptMs_ = 0;
  int64_t sentMs_ = 0;  // the request body was complete (the response timeout runs from here)
  int backend_ = -1;
  uint32_t firstBackend_ = 0;
  uint32_t tried_ = 0;
  OutQueue uout_;
  ByteBuffer uin_;
  Resp resp_ = Resp::Head;
  http::BodyFraming respFraming_ = http::BodyFraming::None;
  uint64_t respRemaining_ = 0;
  bool respStarted_ = false;
  bool respClose_ = false;
  bool dechunk_ = false;  // a chunked response to an HTTP/1.0 client: data only, then close
};

}  // namespace edgeplane::proxy
