// WireGuard keys with OpenSSL; key files written and read with strict modes, never logged.
#include "reconciler/system/wg_keys.h"

#include "reconciler/system/file_write.h"
#include "schema/file_text.h"
#include "schema/mode_text.h"
#include "schema/unique_fd.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>

namespace edgeplane::sys {
namespace {

std::string parentOf(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) {
    return ".";
  }
  return slash == 0 ? "/" : path.substr(0, slash);
}

// A buffer that is wiped when it goes away: it holds key material.
struct SecretBuffer {
  char data[256] = {};
  ~SecretBuffer() { OPENSSL_cleanse(data, sizeof(data)); }
};

// Whether the directory of a key file exists (false: it does not); one that others may write to
// is refused, read or written: they could swap the key file.
Result<bool> checkKeyDir(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    if (const int err = errno; err != ENOENT) {
      return terminal("key directory " + dir + ": " + errnoText(err));
    }
    return false;
  }
  if (!S_ISDIR(st.st_mode)) {
    return terminal("key directory " + dir + " is not a directory");
  }
  if ((st.st_mode & 022) != 0) {
    return terminal("key directory " + dir + " has mode " + modeText(st.st_mode) +
                    ": it must not be writable by group or others (chmod 700 " + dir + ")");
  }
  return true;
}

// Creates missing directories 0700 (chmod after mkdir, so the umask cannot loosen it); an
// existing one must pass checkKeyDir.
Result<void> prepareParent(const std::string& dir) {
  auto exists = checkKeyDir(dir);
  if (!exists || *exists) {
    return exists ? Result<void>{} : exists.error();
  }
  if (dir != "/" && dir != ".") {
    if (auto r = prepareParent(parentOf(dir)); !r) {
      return r;
    }
  }
  if (::mkdir(dir.c_str(), 0700) != 0) {
    const int err = errno;
    if (err != EEXIST) {
      return terminal("create key directory " + dir + ": " + errnoText(err));
    }
  }
  if (::chmod(dir.c_str(), 0700) != 0) {
    const int err = errno;
    return terminal("chmod 700 " + dir + ": " + errnoText(err));
  }
  return {};
}

// Writes base64 + "\n" to a new file (O_EXCL, 0600 regardless of umask) and syncs it.
// Returns errno in `err` on failure.
Result<void> writeNewKeyFile(const std::string& path, const WgKey& key, int& err) {
  SecretBuffer text;
  std::string b64 = key.base64();
  std::memcpy(text.data, b64.data(), b64.size());
  text.data[b64.size()] = '\n';
  const size_t len = b64.size() + 1;
  OPENSSL_cleanse(b64.data(), b64.size());
  return writeNewFile(path, std::string_view(text.data, len), 0600, &err);
}

// How readKeyFile names a secret that is not a WireGuard key (loadOrCreateSecret).
constexpr std::string_view kSecretFile = "secret file";

// Returns ENOENT in `err` when the file does not exist (the caller decides what that means).
// `what` names the file in messages ("key file", "preshared key file"); never the key.
Result<WgKey> readKeyFile(const std::string& path, int& err, std::string_view what = "key file") {
  const std::string name = std::string(what) + " " + path;
  err = 0;
  // Without blocking: a FIFO in its place would hang the run (it is refused below).
  const UniqueFd f(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC));
  if (f.get() < 0) {
    err = errno;
    if (err == ELOOP) {
      return terminal(name + " is a symbolic link; refusing to read it");
    }
    return terminal("open " + name + ": " + errnoText(err));
  }
  struct stat st {};
  if (::fstat(f.get(), &st) != 0) {
    err = errno;
    return terminal("stat " + name + ": " + errnoText(err));
  }
  if (!S_ISREG(st.st_mode)) {
    return terminal(name + " is not a regular file");
  }
  if (st.st_uid != ::geteuid()) {
    return terminal(name + " is owned by uid " + std::to_string(st.st_uid) + ", not by uid " +
                    std::to_string(::geteuid()) + " running edgeplane");
  }
  if ((st.st_mode & 077) != 0) {
    return terminal(name + " has mode " + modeText(st.st_mode) +
                    ": it must not be accessible by group or others (chmod 600 " + path + ")");
  }
  SecretBuffer text;
  size_t len = 0;
  if (const int e = readFull(f.get(), text.data, sizeof(text.data), len); e != 0) {
    err = e;
    return terminal("read " + name + ": " + errnoText(err));
  }
  // Exactly what `wg genkey` writes: 44 base64 characters and a newline (or none).
  if (len == 45 && text.data[44] == '\n') {
    len = 44;
  }
  std::optional<WgKey> key;
  if (len == 44) {
    key = WgKey::parseBase64(std::string_view(text.data, 44));
  }
  if (!key) {
    return terminal(name + " does not hold " + (what == kSecretFile ? "a key" : "a WireGuard key") +
                    " (base64 of 32 bytes and a newline)");
  }
  return *key;
}

// `key` written whole to `tmp` (a leftover removed first), then renamed to `path` without
// replacing it: a crash leaves `path` absent or complete, never empty. False when `path` exists
// (a file made meanwhile wins; `tmp` is removed).
Result<bool> placeNewKeyFile(const std::string& path, const std::string& tmp, const WgKey& key) {
  ::unlink(tmp.c_str());
  int err = 0;
  if (auto w = writeNewKeyFile(tmp, key, err); !w) {
    return w.error();
  }
  const bool linked =
      ::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) == 0;
  err = errno;
  if (!linked) {
    ::unlink(tmp.c_str());
    if (err == EEXIST) {
      return false;
    }
    return terminal("create key file " + path + ": " + errnoText(err));
  }
  if (auto r = fsyncDir(parentOf(path)); !r) {
    return r.error();
  }
  return true;
}

Result<LoadedKey> withPublic(const WgKey& key, bool created) {
  auto pub = publicKeyFor(key);
  if (!pub) {
    return pub.error();
  }
  return LoadedKey{key, *pub, created};
}

}  // namespace

bool isZeroKey(const WgKey& key) {
  return std::all_of(key.bytes.begin(), key.bytes.end(), [](uint8_t b) { return b == 0; });
}

void clampPrivateKey(WgKey& key) {
  key.bytes[0] &= 248;
  key.bytes[31] &= 127;
  key.bytes[31] |= 64;
}

Result<WgKey> generatePrivateKey() {
  WgKey key;
  if (RAND_priv_bytes(key.bytes.data(), static_cast<int>(key.bytes.size())) != 1) {
    return terminal("generate WireGuard private key: the OpenSSL random generator failed");
  }
  clampPrivateKey(key);
  return key;
}

Result<WgKey> publicKeyFor(const WgKey& privateKey) {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> pkey(
      EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, privateKey.bytes.data(),
                                   privateKey.bytes.size()),
      &EVP_PKEY_free);
  if (!pkey) {
    return terminal("derive WireGuard public key: OpenSSL rejected the X25519 private key");
  }
  WgKey pub;
  size_t len = pub.bytes.size();
  if (EVP_PKEY_get_raw_public_key(pkey.get(), pub.bytes.data(), &len) != 1 ||
      len != pub.bytes.size()) {
    return terminal("derive WireGuard public key: OpenSSL X25519 failed");
  }
  return pub;
}

Result<std::optional<LoadedKey>> loadKey(const std::string& path) {
  if (auto dir = checkKeyDir(parentOf(path)); !dir) {
    return dir.error();
  }
  int err = 0;
  auto key = readKeyFile(path, err);
  if (!key) {
    if (err == ENOENT) {
      return std::optional<LoadedKey>();
    }
    return key.error();
  }
  auto loaded = withPublic(*key, false);
  if (!loaded) {
    return loaded.error();
  }
  return std::optional<LoadedKey>(*loaded);
}

Result<LoadedKey> loadOrCreateKey(const std::string& path, bool allowCreate) {
  auto stored = loadKey(path);
  if (!stored) {
    return stored.error();
  }
  if (*stored) {
    return **stored;
  }
  if (!allowCreate) {
    return terminal("WireGuard key file " + path +
                    " is missing; a new key would change the interface's public key, so it is "
                    "only generated on request (--rotate-key)");
  }
  const std::string dir = parentOf(path);
  if (auto r = prepareParent(dir); !r) {
    return r.error();
  }
  auto fresh = generatePrivateKey();
  if (!fresh) {
    return fresh.error();
  }
  // Keys are written under the state lock, one run at a time: the temporary name is fixed.
  auto placed = placeNewKeyFile(path, path + ".new", *fresh);
  if (!placed) {
    return placed.error();
  }
  if (!*placed) {
    return loadOrCreateKey(path, false);  // someone created it between our read and now
  }
  return withPublic(*fresh, true);
}

Result<WgKey> loadOrCreateSecret(const std::string& path) {
  if (auto dir = checkKeyDir(parentOf(path)); !dir) {
    return dir.error();
  }
  int err = 0;
  auto stored = readKeyFile(path, err, kSecretFile);
  if (stored || err != ENOENT) {
    return stored;
  }
  if (auto r = prepareParent(parentOf(path)); !r) {
    return r.error();
  }
  WgKey fresh;
  if (RAND_priv_bytes(fresh.bytes.data(), static_cast<int>(fresh.bytes.size())) != 1) {
    return terminal("generate " + path + ": the OpenSSL random generator failed");
  }
  // Runs that do not hold the state lock (plan) may make it at the same time: a temporary name
  // of this process (one thread at a time in it), and the first file linked is everyone's. What
  // runs killed while writing left is removed.
  static std::mutex oneAtATime;
  const std::lock_guard<std::mutex> lock(oneAtATime);
  const size_t slash = path.find_last_of('/');
  removeTemporaryFilesOfDeadProcesses(parentOf(path), path.substr(slash + 1));
  auto placed = placeNewKeyFile(path, path + ".tmp." + std::to_string(::getpid()), fresh);
  OPENSSL_cleanse(fresh.bytes.data(), fresh.bytes.size());
  if (!placed) {
    return placed.error();
  }
  return readKeyFile(path, err, kSecretFile);
}

Result<LoadedKey> rotateKey(const std::string& path) {
  const std::string dir = parentOf(path);
  if (auto r = prepareParent(dir); !r) {
    return r.error();
  }
  auto fresh = generatePrivateKey();
  if (!fresh) {
    return fresh.error();
  }
  const std::string tmp = path + ".new";
  ::unlink(tmp.c_str());  // a leftover of a run that died here (one run at a time: a fixed name)
  int err = 0;
  if (auto w = writeNewKeyFile(tmp, *fresh, err); !w) {
    return w.error();
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    err = errno;
    ::unlink(tmp.c_str());
    return terminal("replace key file " + path + ": " + errnoText(err));
  }
  if (auto r = fsyncDir(dir); !r) {
    return r.error();
  }
  return withPublic(*fresh, true);
}

Result<WgKey> readPresharedKeyFile(const std::string& path) {
  int err = 0;
  return readKeyFile(path, err, "preshared key file");
}

}  // namespace edgeplane::sys
