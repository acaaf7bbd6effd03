// Owner-only secret files (see secret_file.h).
#include "schema/secret_file.h"

#include <sys/stat.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include "schema/mode_text.h"

namespace edgeplane {

Result<std::string> readSecretFile(const std::filesystem::path& file, std::string_view what) {
  const std::string name = std::string(what) + " " + file.string();
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    return terminal(name + ": " + errnoText(errno));
  }
  if (!S_ISREG(st.st_mode)) {
    return terminal(name + " is not a regular file");
  }
  if ((st.st_mode & 0077) != 0) {
    return terminal(name + " has mode " + modeText(st.st_mode & 07777) +
                    "; it must be readable by its owner only (chmod 600)");
  }
  std::ifstream in(file, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in) {
    return terminal(name + ": cannot read it");
  }
  std::string secret = text.str();
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) {
    secret.pop_back();
  }
  if (secret.empty()) {
    return terminal(name + " is empty");
  }
  return secret;
}

}  // namespace edgeplane
