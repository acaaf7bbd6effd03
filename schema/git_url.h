// Git source urls: their forms (scp-like, ssh) and the redaction of a password in them.
#pragma once

#include <string>
#include <string_view>

namespace edgeplane {

// git's rule: a colon before any slash, and no "://", is scp-like "[user@]host:path".
bool isScpLike(std::string_view url);
// ssh://… or scp-like.
bool isSshUrl(std::string_view url);
// The url with the password of its userinfo ("https://user:TOKEN@host/…", the way libgit2 takes
// https credentials) replaced by "***": what logs, errors, the store, the cache's config and
// argv may show.
std::string redactUrl(std::string_view url);
// `text` with every occurrence of `url` redacted and of its password replaced by "***".
std::string scrubCredentials(std::string text, std::string_view url);
// Whether the url holds a password (what redactUrl hides).
bool hasPassword(std::string_view url);

}  // namespace edgeplane
