// The netlink client: libnl sends, our callbacks read ACKs, errors, extended ACKs and dumps.
//
// libnl's default error path maps errno to coarse NLE_* codes ("Unspecific failure" for
// ENETUNREACH), so the error, finish and ACK callbacks are ours and keep the kernel's errno.
#include "reconciler/system/netlink.h"

#include <linux/netlink.h>
#include <netlink/attr.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <cstring>

#include "reconciler/system/netns.h"

namespace edgeplane::sys {
namespace {

constexpr int kReceiveTimeoutSeconds = 5;

struct CbPut {
  void operator()(nl_cb* cb) const { nl_cb_put(cb); }
};
using CbPtr = std::unique_ptr<nl_cb, CbPut>;

// The state of one exchange, shared with the libnl callbacks.
struct Exchange {
  uint32_t seq = 0;
  bool done = false;
  NlOutcome outcome;
  const NlReplyHandler* onReply = nullptr;
};

int onSeqCheck(nl_msg* msg, void* arg) {
  return nlmsg_hdr(msg)->nlmsg_seq == static_cast<Exchange*>(arg)->seq ? NL_OK : NL_SKIP;
}

int onValid(nl_msg* msg, void* arg) {
  auto* x = static_cast<Exchange*>(arg);
  if (x->onReply != nullptr && *x->onReply && !x->outcome.replyError) {
    if (auto r = (*x->onReply)(msg); !r) {
      x->outcome.replyError = r.error();
    }
  }
  return NL_OK;
}

int onFinish(nl_msg* msg, void* arg) {
  auto* x = static_cast<Exchange*>(arg);
  const nlmsghdr* hdr = nlmsg_hdr(msg);
  if (nlmsg_datalen(hdr) >= static_cast<int>(sizeof(int))) {
    int status = 0;
    std::memcpy(&status, nlmsg_data(hdr), sizeof(status));
    if (status < 0) {
      x->outcome.kernelErrno = -status;
    }
  }
  x->done = true;
  return NL_STOP;
}

int onAck(nl_msg*, void* arg) {
  static_cast<Exchange*>(arg)->done = true;
  return NL_STOP;
}

int onError(sockaddr_nl*, nlmsgerr* err, void* arg) {
  auto* x = static_cast<Exchange*>(arg);
  // libnl hands us the payload; the header sits right before it.
  const auto* hdr =
      reinterpret_cast<const nlmsghdr*>(reinterpret_cast<const char*>(err) - NLMSG_HDRLEN);
  x->outcome.kernelErrno = -err->error;
  x->outcome.extack = parseExtack(hdr).message;
  x->done = true;
  return NL_STOP;
}

int onDumpInterrupted(nl_msg*, void* arg) {
  static_cast<Exchange*>(arg)->outcome.interrupted = true;
  return NL_OK;
}

void setCallbacks(nl_cb* cb, Exchange& x) {
  nl_cb_set(cb, NL_CB_SEQ_CHECK, NL_CB_CUSTOM, onSeqCheck, &x);
  nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, onValid, &x);
  nl_cb_set(cb, NL_CB_FINISH, NL_CB_CUSTOM, onFinish, &x);
  nl_cb_set(cb, NL_CB_ACK, NL_CB_CUSTOM, onAck, &x);
  nl_cb_set(cb, NL_CB_DUMP_INTR, NL_CB_CUSTOM, onDumpInterrupted, &x);
  nl_cb_err(cb, NL_CB_CUSTOM, onError, &x);
}

std::string protocolName(int protocol) {
  return protocol == NETLINK_GENERIC ? "generic netlink" : "rtnetlink";
}

}  // namespace

std::string inNamespace(std::string_view netns) {
  return netns.empty() ? std::string() : " in namespace " + std::string(netns);
}

std::string nlFailureText(const NlOutcome& outcome) {
  if (outcome.kernelErrno != 0) {
    std::string text = errnoText(outcome.kernelErrno);
    if (!outcome.extack.empty()) {
      text += " (" + outcome.extack + ")";
    }
    return text;
  }
  if (outcome.nlError == -NLE_AGAIN) {
    return "no reply from the kernel within " + std::to_string(kReceiveTimeoutSeconds) + "s";
  }
  return nl_geterror(outcome.nlError);
}

Error nlFailure(const NlOutcome& outcome, const std::string& what) {
  const bool transient = outcome.kernelErrno == 0 || retryableErrno(outcome.kernelErrno);
  return Error{what + ": " + nlFailureText(outcome), transient};
}

void NlSocket::SocketFree::operator()(nl_sock* sock) const {
  nl_socket_free(sock);
}

NlSocket::NlSocket(nl_sock* sock) : sock_(sock) {}
NlSocket::NlSocket(NlSocket&&) noexcept = default;
NlSocket& NlSocket::operator=(NlSocket&&) noexcept = default;
NlSocket::~NlSocket() = default;

Result<NlSocket> NlSocket::open(int protocol, std::string_view netns) {
  const std::string what = "open " + protocolName(protocol) + " socket" + inNamespace(netns);
  std::unique_ptr<nl_sock, SocketFree> sock(nl_socket_alloc());
  if (!sock) {
    return terminal(what + ": out of memory");
  }
  {
    // A socket belongs to the namespace it was created in, for its whole life.
    auto scope = NetnsScope::enter(netns);
    if (!scope) {
      return scope.error();
    }
    if (int rc = nl_connect(sock.get(), protocol); rc < 0) {
      return terminal(what + ": " + nl_geterror(rc));
    }
  }
  // Replies of any size (a WireGuard dump message can exceed a page).
  nl_socket_enable_msg_peek(sock.get());
  const int fd = nl_socket_get_fd(sock.get());
  const int on = 1;
  // Best effort: extended ACKs add the kernel's reason to errors; capped ACKs keep them small.
  ::setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &on, sizeof(on));
  ::setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &on, sizeof(on));
  // The kernel answers requests synchronously; the timeout only bounds a lost reply.
  timeval tv{kReceiveTimeoutSeconds, 0};
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0) {
    const int err = errno;
    return terminal(what + ": SO_RCVTIMEO: " + errnoText(err));
  }
  return NlSocket(sock.release());
}

NlOutcome NlSocket::exchange(nl_msg* msg, const NlReplyHandler& onReply) {
  Exchange x;
  x.onReply = &onReply;
  CbPtr socketCb(nl_socket_get_cb(sock_.get()));  // a new reference, dropped on return
  CbPtr cb(nl_cb_clone(socketCb.get()));
  if (!cb) {
    x.outcome.nlError = -NLE_NOMEM;
    return x.outcome;
  }
  setCallbacks(cb.get(), x);
  int rc = nl_send_auto(sock_.get(), msg);
  if (rc < 0) {
    x.outcome.nlError = rc;
    return x.outcome;
  }
  x.seq = nlmsg_hdr(msg)->nlmsg_seq;
  while (!x.done) {
    // Returns the number of messages handled; 0 without `done` means the receive timed out.
    rc = nl_recvmsgs_report(sock_.get(), cb.get());
    if (x.done) {
      break;
    }
    if (rc < 0) {
      x.outcome.nlError = rc;
      break;
    }
    if (rc == 0) {
      x.outcome.nlError = -NLE_AGAIN;
      break;
    }
  }
  return x.outcome;
}

int NlSocket::genlFamily(const char* name) {
  return genl_ctrl_resolve(sock_.get(), name);
}

}  // namespace edgeplane::sys
