// The nftables netlink socket: batches sent and acknowledged, the table dumped consistently.
#include "reconciler/system/nft_socket.h"

// <netinet/in.h> before the kernel headers, which defer to it (linux/libc-compat.h).
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>

#include <algorithm>
#include <cerrno>
#include <functional>
#include <utility>
#include <vector>

#include "reconciler/core/host_state.h"
#include "reconciler/system/netlink_attr.h"
#include "reconciler/system/netns.h"
#include "reconciler/system/nft_diff.h"
#include "reconciler/system/nft_objects.h"

namespace edgeplane::sys {

using namespace nft_detail;  // the dump's decoders and the libnftnl owners

namespace {

constexpr size_t kReceiveSize = 65536;

Error errnoError(std::string what, int err) {
  what += ": " + errnoText(err);
  return retryableErrno(err) ? retryable(std::move(what)) : terminal(std::move(what));
}

// The prefix of every error message of a socket.
std::string whereOf(const std::string& netns) {
  return netns.empty() ? "nft" : "nft (namespace " + netns + ")";
}

void setBuffer(int fd, int forceOpt, int opt, size_t wanted) {
  int current = 0;
  socklen_t len = sizeof(current);
  if (::getsockopt(fd, SOL_SOCKET, opt, &current, &len) == 0 &&
      static_cast<size_t>(current) >= wanted) {
    return;
  }
  const int value = static_cast<int>(std::min<size_t>(wanted, 1U << 30));
  // FORCE needs CAP_NET_ADMIN, which managing nftables needs anyway; fall back to the limit.
  if (::setsockopt(fd, SOL_SOCKET, forceOpt, &value, sizeof(value)) != 0) {
    (void)::setsockopt(fd, SOL_SOCKET, opt, &value, sizeof(value));
  }
}

// ---- Sending a batch ----

// Gives message i of the batch the sequence number base + i; returns how many there are.
uint32_t renumber(std::vector<uint8_t>& bytes, uint32_t base) {
  uint32_t count = 0;
  auto* nlh = reinterpret_cast<nlmsghdr*>(bytes.data());
  int remaining = static_cast<int>(bytes.size());
  while (mnl_nlmsg_ok(nlh, remaining)) {
    nlh->nlmsg_seq = base + count++;
    nlh->nlmsg_pid = 0;
    nlh = mnl_nlmsg_next(nlh, &remaining);
  }
  return count;
}

struct Failure {
  uint32_t index;  // of the message in the batch, BATCH_BEGIN being 0
  int err;
  Extack extack;
};

// The kernel's answers to one batch.
struct Answers {
  std::vector<Failure> failures;
  size_t acked = 0;
  bool lost = false;  // the socket overflowed: some answers were dropped
};

// Counts the ACKs and errors in one datagram of answers.
void tally(const std::vector<uint8_t>& buf, ssize_t n, uint32_t base, Answers& answers) {
  const auto* nlh = reinterpret_cast<const nlmsghdr*>(buf.data());
  int remaining = static_cast<int>(n);
  while (mnl_nlmsg_ok(nlh, remaining)) {
    if (nlh->nlmsg_type == NLMSG_ERROR && mnl_nlmsg_get_payload_len(nlh) >= sizeof(nlmsgerr)) {
      const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
      const uint32_t index = err->msg.nlmsg_seq - base;
      if (err->error == 0) {
        ++answers.acked;
      } else {
        answers.failures.push_back({index, -err->error, parseExtack(nlh)});
      }
    }
    nlh = mnl_nlmsg_next(nlh, &remaining);
  }
}

// nfnetlink processes the batch while sendmsg runs, so every answer is queued by now; read
// until the queue is empty, waiting briefly only if nothing has arrived at all.
Result<Answers> readAnswers(int fd, uint32_t base, const std::string& where) {
  Answers answers;
  std::vector<uint8_t> buf(kReceiveSize);
  for (;;) {
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
    if (n >= 0) {
      tally(buf, n, base, answers);
      continue;
    }
    const int err = errno;
    if (err == EINTR) {
      continue;
    }
    if (err == ENOBUFS) {
      answers.lost = true;
      continue;
    }
    if (err != EAGAIN && err != EWOULDBLOCK) {
      return errnoError(where + ": receive answers", err);
    }
    if (answers.acked == 0 && answers.failures.empty() && !answers.lost) {
      pollfd pfd{fd, POLLIN, 0};
      if (::poll(&pfd, 1, 2000) > 0) {
        continue;
      }
    }
    return answers;
  }
}

// The batch's error: the first failing message's object, the kernel's reason and text.
Error failureError(const std::string& where, const NftBatch& batch,
                   const std::vector<Failure>& failures) {
  const Failure& first =
      *std::min_element(failures.begin(), failures.end(),
                        [](const Failure& a, const Failure& b) { return a.index < b.index; });
  // Index 0 is BATCH_BEGIN and count-1 BATCH_END: errors there concern the whole batch. In a
  // message of several elements, the kernel's offset names the one it refused.
  std::string object = "batch";
  if (first.index >= 1 && first.index <= batch.messages().size()) {
    object = batch.opAt(first.index - 1, first.extack.offset).str();
  }
  std::string message = where + ": " + object + ": " + errnoText(first.err);
  if (!first.extack.message.empty()) {
    message += " (" + first.extack.message + ")";
  }
  if (failures.size() > 1) {
    message += " (and " + std::to_string(failures.size() - 1) + " more errors)";
  }
  message += "; nothing was changed";
  return retryableErrno(first.err) ? retryable(std::move(message)) : terminal(std::move(message));
}

// ---- Reading the table ----

using MessageCallback = std::function<int(const nlmsghdr*)>;

int trampoline(const nlmsghdr* nlh, void* data) {
  return (*static_cast<MessageCallback*>(data))(nlh);
}

// One request and its answers (a dump, or a single object plus the ACK).
Result<void> talk(mnl_socket* socket, uint32_t portId, uint32_t& seq, uint16_t type,
                  uint16_t family, uint16_t flags, const std::function<void(nlmsghdr*)>& fill,
                  MessageCallback callback, int& errOut) {
  std::vector<char> buf(kReceiveSize);
  const uint32_t mySeq = seq++;
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf.data(), type, family, flags, mySeq);
  if (fill) {
    fill(nlh);
  }
  errOut = 0;
  if (mnl_socket_sendto(socket, nlh, nlh->nlmsg_len) < 0) {
    errOut = errno;
    return errnoError("send request", errOut);
  }
  for (;;) {
    const ssize_t n = mnl_socket_recvfrom(socket, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      errOut = errno;
      return errnoError("receive", errOut);
    }
    const int rc =
        mnl_cb_run(buf.data(), static_cast<size_t>(n), mySeq, portId, trampoline, &callback);
    if (rc < 0) {
      errOut = errno;
      return errnoError("request", errOut);
    }
    if (rc == MNL_CB_STOP) {
      return {};
    }
  }
}

// Reads `ip edgeplane` through one socket, request by request. A failure is reported as
// "<where>: <what>: <cause>".
class TableReader {
 public:
  TableReader(mnl_socket* socket, uint32_t portId, uint32_t& seq, std::string where)
      : socket_(socket), portId_(portId), seq_(seq), where_(std::move(where)) {}

  Result<uint32_t> generation() {
    uint32_t id = 0;
    Result<void> r = request("read ruleset generation", NFT_MSG_GETGEN, AF_UNSPEC, NLM_F_ACK,
                             nullptr, [&](const nlmsghdr* nlh) {
                               GenPtr gen(nftnl_gen_alloc());
                               if (nftnl_gen_nlmsg_parse(nlh, gen.get()) == 0) {
                                 id = nftnl_gen_get_u32(gen.get(), NFTNL_GEN_ID);
                               }
                             });
    if (!r) {
      return r.error();
    }
    return id;
  }

  // Table, maps, chains, rules, then each map's elements. No table: `exists` false, no error.
  Result<void> read(ObservedTable& t, bool& exists) {
    exists = false;
    Result<void> r = readTable(t, exists);
    if (!r || !exists) {
      return r;
    }
    // The kernel filters set and rule dumps by the table named in the request; chains are
    // dumped whole and filtered here (decode* check the table of every answer anyway).
    r = dumpSets(t);
    if (r) {
      r = dumpChains(t);
    }
    if (r) {
      r = dumpRules(t);
    }
    for (ObservedMap& map : t.maps) {
      if (!r) {
        break;
      }
      r = dumpElems(map);
      // The kernel grows a hash set in the background after a large insert, and a dump spread
      // over several messages resumes by position: one read during that rehash shows some
      // elements twice and misses as many, with no generation change to say so.
      if (r && repeatsAnElement(map)) {
        return Error{
            where_ + ": dump elements of " + map.name + ": read while the kernel rehashed the set",
            true};
      }
    }
    return r;
  }

 private:
  Result<void> request(const char* what, uint16_t type, uint16_t family, uint16_t flags,
                       const std::function<void(nlmsghdr*)>& fill,
                       const std::function<void(const nlmsghdr*)>& each) {
    Result<void> r = talk(
        socket_, portId_, seq_, type, family, flags, fill,
        [&](const nlmsghdr* nlh) {
          each(nlh);
          return MNL_CB_OK;
        },
        err_);
    if (!r) {
      // EINTR: the dump was interrupted by a concurrent change; reading again will do.
      return Error{where_ + ": " + what + ": " + r.error().message,
                   r.error().retryable || err_ == EINTR};
    }
    return r;
  }

  Result<void> readTable(ObservedTable& t, bool& exists) {
    Result<void> r = request(
        "get table ip edgeplane", NFT_MSG_GETTABLE, NFPROTO_IPV4, NLM_F_ACK,
        [&](nlmsghdr* nlh) {
          TablePtr req(nftnl_table_alloc());
          nftnl_table_set_str(req.get(), NFTNL_TABLE_NAME, table_.c_str());
          nftnl_table_nlmsg_build_payload(nlh, req.get());
        },
        [&](const nlmsghdr* nlh) { exists = decodeTable(nlh, t) || exists; });
    if (!r && err_ == ENOENT) {
      return {};  // no table: nothing more to read
    }
    return r;
  }

  Result<void> dumpSets(ObservedTable& t) {
    return request(
        "dump sets", NFT_MSG_GETSET, NFPROTO_IPV4, NLM_F_DUMP,
        [&](nlmsghdr* nlh) {
          SetPtr req(nftnl_set_alloc());
          nftnl_set_set_str(req.get(), NFTNL_SET_TABLE, table_.c_str());
          nftnl_set_nlmsg_build_payload(nlh, req.get());
        },
        [&](const nlmsghdr* nlh) { decodeMap(nlh, t); });
  }

  Result<void> dumpChains(ObservedTable& t) {
    return request("dump chains", NFT_MSG_GETCHAIN, NFPROTO_IPV4, NLM_F_DUMP, nullptr,
                   [&](const nlmsghdr* nlh) { decodeChain(nlh, t); });
  }

  Result<void> dumpRules(ObservedTable& t) {
    return request(
        "dump rules", NFT_MSG_GETRULE, NFPROTO_IPV4, NLM_F_DUMP,
        [&](nlmsghdr* nlh) {
          RulePtr req(nftnl_rule_alloc());
          nftnl_rule_set_str(req.get(), NFTNL_RULE_TABLE, table_.c_str());
          nftnl_rule_nlmsg_build_payload(nlh, req.get());
        },
        [&](const nlmsghdr* nlh) { decodeRule(nlh, t); });
  }

  Result<void> dumpElems(ObservedMap& map) {
    return request(
        "dump elements", NFT_MSG_GETSETELEM, NFPROTO_IPV4, NLM_F_DUMP,
        [&](nlmsghdr* nlh) {
          SetPtr req(nftnl_set_alloc());
          nftnl_set_set_str(req.get(), NFTNL_SET_TABLE, table_.c_str());
          nftnl_set_set_str(req.get(), NFTNL_SET_NAME, map.name.c_str());
          nftnl_set_elems_nlmsg_build_payload(nlh, req.get());
        },
        [&](const nlmsghdr* nlh) { decodeElems(nlh, map); });
  }

  mnl_socket* socket_;
  uint32_t portId_;
  uint32_t& seq_;
  std::string where_;
  const std::string table_{core::kTableName};
  int err_ = 0;  // errno of the last request that failed, 0 after one that did not
};

}  // namespace

NftSocket::NftSocket(mnl_socket* socket, std::string netns)
    : socket_(socket), portId_(mnl_socket_get_portid(socket)), netns_(std::move(netns)) {}

NftSocket::NftSocket(NftSocket&& other) noexcept
    : socket_(std::exchange(other.socket_, nullptr)),
      portId_(other.portId_),
      seq_(other.seq_),
      netns_(std::move(other.netns_)) {}

NftSocket& NftSocket::operator=(NftSocket&& other) noexcept {
  if (this != &other) {
    if (socket_ != nullptr) {
      mnl_socket_close(socket_);
    }
    socket_ = std::exchange(other.socket_, nullptr);
    portId_ = other.portId_;
    seq_ = other.seq_;
    netns_ = std::move(other.netns_);
  }
  return *this;
}

NftSocket::~NftSocket() {
  if (socket_ != nullptr) {
    mnl_socket_close(socket_);
  }
}

Result<NftSocket> NftSocket::open(std::string_view netns) {
  const std::string where = netns.empty() ? std::string() : " in namespace " + std::string(netns);
  Result<NetnsScope> scope = NetnsScope::enter(netns);
  if (!scope) {
    return scope.error();
  }
  mnl_socket* socket = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
  if (socket == nullptr) {
    const int err = errno;
    return errnoError("nft: open netlink socket" + where, err);
  }
  if (mnl_socket_bind(socket, 0, MNL_SOCKET_AUTOPID) < 0) {
    const int err = errno;
    mnl_socket_close(socket);
    return errnoError("nft: bind netlink socket" + where, err);
  }
  int on = 1;
  // Short error answers (no echo of the failed message) and the kernel's error text, if any.
  (void)mnl_socket_setsockopt(socket, NETLINK_CAP_ACK, &on, sizeof(on));
  (void)mnl_socket_setsockopt(socket, NETLINK_EXT_ACK, &on, sizeof(on));
  NftSocket out(socket, std::string(netns));
  out.seq_ = 1;
  return out;
}

Result<void> NftSocket::send(const NftBatch& batch) {
  if (batch.empty()) {
    return {};
  }
  const std::string where = whereOf(netns_);
  // Renumber the messages for this socket: message i of the batch gets base + i.
  std::vector<uint8_t> bytes(batch.data(), batch.data() + batch.size());
  const uint32_t base = seq_;
  const uint32_t count = renumber(bytes, base);
  seq_ += count;
  const int fd = mnl_socket_get_fd(socket_);
  setBuffer(fd, SO_SNDBUFFORCE, SO_SNDBUF, bytes.size() + 4096);
  // One answer per message; each is queued as its own skb, so leave generous room.
  setBuffer(fd, SO_RCVBUFFORCE, SO_RCVBUF, static_cast<size_t>(count) * 1024 + 65536);

  if (mnl_socket_sendto(socket_, bytes.data(), bytes.size()) < 0) {
    const int err = errno;
    return errnoError(where + ": send batch", err);
  }
  Result<Answers> answers = readAnswers(fd, base, where);
  if (!answers) {
    return answers.error();
  }
  if (!answers->failures.empty()) {
    return failureError(where, batch, answers->failures);
  }
  const size_t messages = batch.messages().size();
  if (answers->lost || answers->acked < messages) {
    return retryable(where + ": " + std::to_string(messages - answers->acked) + " of " +
                     std::to_string(messages) +
                     " messages unanswered; the table must be observed again");
  }
  return {};
}

Result<uint32_t> NftSocket::generation() {
  TableReader reader(socket_, portId_, seq_, whereOf(netns_));
  return reader.generation();
}

Result<uint64_t> NftSocket::netnsCookie() const {
  uint64_t cookie = 0;
  socklen_t len = sizeof(cookie);
  if (::getsockopt(mnl_socket_get_fd(socket_), SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) != 0) {
    const int err = errno;
    return errnoError(whereOf(netns_) + ": read the namespace cookie", err);
  }
  return cookie;
}

Result<std::optional<NftTableState>> NftSocket::observe(uint32_t* generation) {
  const std::string where = whereOf(netns_);
  TableReader reader(socket_, portId_, seq_, where);
  for (int attempt = 0; attempt < 10; ++attempt) {
    Result<uint32_t> before = reader.generation();
    if (!before) {
      return before.error();
    }
    ObservedTable t;
    bool exists = false;
    Result<void> read = reader.read(t, exists);
    Result<uint32_t> after = reader.generation();
    if (!after) {
      return after.error();
    }
    if (*after != *before || (!read && read.error().retryable)) {
      continue;  // the ruleset changed while we read it: read it again
    }
    if (!read) {
      return read.error();
    }
    if (generation != nullptr) {
      *generation = *after;
    }
    if (!exists) {
      return std::optional<NftTableState>();
    }
    return std::optional<NftTableState>(interpret(t));
  }
  return retryable(where + ": the ruleset kept changing while it was read");
}

}  // namespace edgeplane::sys
