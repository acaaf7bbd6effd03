// One netlink client for rtnetlink and generic netlink: a socket bound to one namespace,
// request/ACK and dump exchanges, errors with the kernel's extended ACK.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "reconciler/system/netlink_attr.h"
#include "schema/result.h"

struct nl_msg;
struct nl_sock;

namespace edgeplane::sys {

// Handles one reply of an exchange. After its first error the remaining replies are still read
// (so the socket stays in step with the kernel) but no longer handed to it.
using NlReplyHandler = std::function<Result<void>(nl_msg*)>;

// How one exchange ended.
struct NlOutcome {
  int kernelErrno = 0;              // from NLMSG_ERROR or NLMSG_DONE
  int nlError = 0;                  // libnl's own failure (send, receive); -NLE_AGAIN: no reply
  std::string extack;               // NLMSGERR_ATTR_MSG, when the kernel explains itself
  bool interrupted = false;         // NLM_F_DUMP_INTR: the dump raced a change
  std::optional<Error> replyError;  // the reply handler's first error

  bool failed() const { return kernelErrno != 0 || nlError != 0; }
};

// What went wrong, without the operation: "Network is unreachable (Nexthop has invalid
// gateway)", or libnl's own failure ("no reply from the kernel within 5s").
std::string nlFailureText(const NlOutcome& outcome);
// "what: " + nlFailureText, retryable for transient errnos (retryableErrno in schema/result.h)
// and for local failures (a lost reply).
Error nlFailure(const NlOutcome& outcome, const std::string& what);

// A netlink socket created inside one network namespace, which it belongs to for its whole
// life (the namespace is entered only while the socket is created). Extended ACKs are asked
// for (best effort); a receive waits at most 5 s. Not thread-safe.
class NlSocket {
 public:
  // protocol: NETLINK_ROUTE or NETLINK_GENERIC. netns "" = the calling thread's namespace.
  static Result<NlSocket> open(int protocol, std::string_view netns);

  NlSocket(NlSocket&&) noexcept;
  NlSocket& operator=(NlSocket&&) noexcept;
  ~NlSocket();

  // Sends `msg` (libnl adds port, sequence number, NLM_F_REQUEST and NLM_F_ACK) and reads its
  // replies through the ACK, the error or the end of the dump. Replies are matched by sequence
  // number, so a stray message left over from an abandoned exchange is skipped.
  NlOutcome exchange(nl_msg* msg, const NlReplyHandler& onReply = nullptr);

  // The id of a generic netlink family; a negative libnl error when the kernel has none.
  int genlFamily(const char* name);

 private:
  struct SocketFree {
    void operator()(nl_sock* sock) const;
  };
  explicit NlSocket(nl_sock* sock);

  std::unique_ptr<nl_sock, SocketFree> sock_;
};

// " in namespace NAME", or "" for the current one: the tail of error messages.
std::string inNamespace(std::string_view netns);

}  // namespace edgeplane::sys
