// Who may use the proxy's admin API: on TCP, a bearer token from an owner-only file; on the
// unix socket, the peer's credentials (SO_PEERCRED).
//
// Why both: a loopback TCP port is open to every local user, so it needs a secret; a unix
// socket's peer is known to the kernel, so the check is who it is: root, the proxy's own user,
// or a member (by its effective group) of the one group --admin-allow-gid names.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string_view>

#include "schema/api_key.h"
#include "schema/result.h"

namespace edgeplane::proxy {

struct AdminAccess {
  // TCP: every request carries `Authorization: Bearer <token>`; this is the token's SHA-256.
  std::optional<ApiKeyDigest> token;
  // Unix socket: who may connect besides root.
  uid_t ownUid = 0;
  std::optional<gid_t> allowedGid;
};

// The token in `file` (owner-only, see schema/secret_file.h), as its SHA-256; at least 16
// characters, so a token is not guessable by trying.
Result<ApiKeyDigest> loadAdminToken(const std::filesystem::path& file);

// True when exactly one Authorization value was given and it is the Bearer token whose SHA-256
// is `token`; compared in constant time (digests of equal length).
bool bearerAuthorized(std::optional<std::string_view> authorization, const ApiKeyDigest& token);

// Root, the proxy's own uid, or the allowed group.
bool peerAllowed(uid_t uid, gid_t gid, const AdminAccess& access);

// The admission decision for one request: 0 to serve it, else the status to refuse it with
// (401 on TCP, 403 on the unix socket). `authorization`: the request's one Authorization value
// (nullopt: none, or several); `peer`: SO_PEERCRED's uid and gid (nullopt: unknown).
struct PeerCredentials {
  uid_t uid = 0;
  gid_t gid = 0;
};
int admitAdminRequest(const AdminAccess& access, bool unixSocket,
                      std::optional<std::string_view> authorization,
                      std::optional<PeerCredentials> peer);

// SO_PEERCRED of a connected unix socket; nullopt when the kernel does not say.
std::optional<PeerCredentials> peerCredentials(int fd);

}  // namespace edgeplane::proxy
