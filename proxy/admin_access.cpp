// Admission to the admin API (see admin_access.h).
#include "proxy/admin_access.h"

#include <sys/socket.h>

#include "proxy/http/syntax.h"
#include "schema/secret_file.h"

namespace edgeplane::proxy {

namespace {
constexpr size_t kMinTokenLength = 16;
}  // namespace

Result<ApiKeyDigest> loadAdminToken(const std::filesystem::path& file) {
  auto token = readSecretFile(file, "admin token file");
  if (!token) {
    return token.error();
  }
  if (token->size() < kMinTokenLength) {
    return terminal("admin token file " + file.string() + " holds fewer than " +
                    std::to_string(kMinTokenLength) +
                    " characters; use e.g. `openssl rand -hex 32`");
  }
  return apiKeyDigest(*token);
}

bool bearerAuthorized(std::optional<std::string_view> authorization, const ApiKeyDigest& token) {
  if (!authorization) {
    return false;
  }
  std::string_view given = http::bearerCredentials(*authorization);
  // An empty token is compared too (and fails): the time taken says nothing either way.
  return digestsEqual(apiKeyDigest(given), token) && !given.empty();
}

bool peerAllowed(uid_t uid, gid_t gid, const AdminAccess& access) {
  return uid == 0 || uid == access.ownUid || (access.allowedGid && gid == *access.allowedGid);
}

int admitAdminRequest(const AdminAccess& access, bool unixSocket,
                      std::optional<std::string_view> authorization,
                      std::optional<PeerCredentials> peer) {
  if (unixSocket) {
    return peer && peerAllowed(peer->uid, peer->gid, access) ? 0 : 403;
  }
  if (!access.token) {
    return 401;  // a TCP admin API without a token serves no one
  }
  return bearerAuthorized(authorization, *access.token) ? 0 : 401;
}

std::optional<PeerCredentials> peerCredentials(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof cred) {
    return std::nullopt;
  }
  return PeerCredentials{cred.uid, cred.gid};
}

}  // namespace edgeplane::proxy
