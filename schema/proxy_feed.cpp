// The files the reconciler publishes for the proxy (see proxy_feed.h).
#include "schema/proxy_feed.h"

#include <Poco/Exception.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/JSON/Stringifier.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <sstream>

#include "schema/file_text.h"
#include "schema/unique_fd.h"

namespace fs = std::filesystem;

namespace edgeplane {
namespace {

constexpr std::string_view kMagic = "edgeplane-snapshot/1 ";
// Enough for the magic, three 20-digit numbers and their separators.
constexpr size_t kHeaderMax = 96;

using Poco::JSON::Array;
using Poco::JSON::Object;

Object::Ptr newObject() {
  return new Object(Poco::JSON_PRESERVE_KEY_ORDER);
}

void setOptional(Object& o, const std::string& key, const std::optional<int64_t>& v) {
  if (v) {
    o.set(key, static_cast<Poco::Int64>(*v));
  }
}

std::optional<int64_t> optionalInt(const Object& o, const std::string& key) {
  if (!o.has(key) || o.isNull(key)) {
    return std::nullopt;
  }
  return o.getValue<Poco::Int64>(key);
}

Object::Ptr acmeJson(const AcmeState& st) {
  Object::Ptr o = newObject();
  o->set("name", st.name);
  o->set("spec", st.spec);
  o->set("failures", static_cast<Poco::Int64>(st.failures));
  o->set("last_error", st.lastError);
  setOptional(*o, "last_attempt", st.lastAttempt);
  setOptional(*o, "next_attempt", st.nextAttempt);
  setOptional(*o, "renew_at", st.renewAt);
  o->set("ari_cert", st.ariCert);
  setOptional(*o, "ari_start", st.ariStart);
  setOptional(*o, "ari_end", st.ariEnd);
  setOptional(*o, "ari_renew_at", st.ariRenewAt);
  setOptional(*o, "ari_next_check", st.ariNextCheck);
  o->set("ari_explanation", st.ariExplanation);
  return o;
}

AcmeState acmeFrom(const Object& o) {
  AcmeState st;
  st.name = o.getValue<std::string>("name");
  st.spec = o.getValue<std::string>("spec");
  st.failures = o.getValue<Poco::Int64>("failures");
  st.lastError = o.getValue<std::string>("last_error");
  st.lastAttempt = optionalInt(o, "last_attempt");
  st.nextAttempt = optionalInt(o, "next_attempt");
  st.renewAt = optionalInt(o, "renew_at");
  st.ariCert = o.getValue<std::string>("ari_cert");
  st.ariStart = optionalInt(o, "ari_start");
  st.ariEnd = optionalInt(o, "ari_end");
  st.ariRenewAt = optionalInt(o, "ari_renew_at");
  st.ariNextCheck = optionalInt(o, "ari_next_check");
  st.ariExplanation = o.getValue<std::string>("ari_explanation");
  return st;
}

// Each element of `key`'s array, as an object; a missing or mistyped one throws.
template <typename F>
void eachObject(const Object& root, const std::string& key, F&& f) {
  Array::Ptr list = root.getArray(key);
  if (list.isNull()) {
    throw Poco::DataFormatException("\"" + key + "\" is not an array");
  }
  for (size_t i = 0; i < list->size(); ++i) {
    Object::Ptr o = list->getObject(static_cast<unsigned>(i));
    if (o.isNull()) {
      throw Poco::DataFormatException("\"" + key + "\" holds something else than an object");
    }
    f(*o);
  }
}

// The file `name` of the published directory, or nullopt when it does not exist.
Result<std::optional<std::string>> readPublished(const fs::path& stateDir, std::string_view name) {
  const fs::path file = publishedDir(stateDir) / name;
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(file, ec))) {
    return std::optional<std::string>();
  }
  auto text = readFileText(file);
  if (!text) {
    return text.error();
  }
  return std::optional(std::move(*text));
}

}  // namespace

std::string encodePublishedSnapshot(const Snapshot& snapshot) {
  std::string out(kMagic);
  out += std::to_string(snapshot.generation) + " " + std::to_string(snapshot.createdAt) + " " +
         std::to_string(snapshot.body.size()) + "\n";
  out += snapshot.body;
  return out;
}

namespace {

// Parses the header at the start of `text`; `bodyAt` is where the body starts, `bodySize` how
// long the header says it is.
Result<Snapshot> parseHeader(std::string_view text, size_t& bodyAt, size_t& bodySize) {
  auto bad = [](std::string_view why) {
    return terminal("published snapshot: " + std::string(why));
  };
  if (text.substr(0, kMagic.size()) != kMagic) {
    return bad("does not start with \"" + std::string(kMagic.substr(0, kMagic.size() - 1)) + "\"");
  }
  const size_t end = text.find('\n');
  if (end == std::string_view::npos || end > kHeaderMax) {
    return bad("its header line is not whole");
  }
  const char* p = text.data() + kMagic.size();
  const char* last = text.data() + end;
  Snapshot s;
  auto gen = std::from_chars(p, last, s.generation);
  if (gen.ec != std::errc() || gen.ptr == last || *gen.ptr != ' ' || s.generation <= 0) {
    return bad("its header has no generation");
  }
  auto at = std::from_chars(gen.ptr + 1, last, s.createdAt);
  if (at.ec != std::errc() || at.ptr == last || *at.ptr != ' ') {
    return bad("its header has no creation time");
  }
  auto size = std::from_chars(at.ptr + 1, last, bodySize);
  if (size.ec != std::errc() || size.ptr != last) {
    return bad("its header has no body length");
  }
  bodyAt = end + 1;
  return s;
}

}  // namespace

Result<Snapshot> decodePublishedSnapshot(std::string_view text) {
  size_t bodyAt = 0;
  size_t bodySize = 0;
  auto s = parseHeader(text, bodyAt, bodySize);
  if (s && text.size() - bodyAt != bodySize) {
    return terminal("published snapshot: its body has " + std::to_string(text.size() - bodyAt) +
                    " bytes where its header says " + std::to_string(bodySize) +
                    " (cut short or damaged)");
  }
  if (s) {
    s->body = std::string(text.substr(bodyAt));
  }
  return s;
}

Result<std::pair<int64_t, size_t>> publishedSnapshotHeader(std::string_view head) {
  size_t bodyAt = 0;
  size_t bodySize = 0;
  auto s = parseHeader(head, bodyAt, bodySize);
  if (!s) {
    return s.error();
  }
  return std::pair(s->generation, bodyAt + bodySize);
}

std::string encodePublishedState(const PublishedState& state) {
  Object::Ptr root = newObject();
  Array::Ptr blocks = new Array;
  for (const ApiKeyBlock& b : state.blocks) {
    Object::Ptr o = newObject();
    o->set("id", b.keyId);
    o->set("blocked_at", static_cast<Poco::Int64>(b.blockedAt));
    blocks->add(o);
  }
  Array::Ptr challenges = new Array;
  for (const AcmeChallenge& c : state.challenges) {
    Object::Ptr o = newObject();
    o->set("token", c.token);
    o->set("domain", c.domain);
    o->set("key_authorization", c.keyAuthorization);
    o->set("created_at", static_cast<Poco::Int64>(c.createdAt));
    o->set("type", std::string(toString(c.type)));
    challenges->add(o);
  }
  Array::Ptr acme = new Array;
  for (const AcmeState& st : state.acme) {
    acme->add(acmeJson(st));
  }
  root->set("blocks", blocks);
  root->set("challenges", challenges);
  root->set("acme", acme);
  std::ostringstream out;
  Poco::JSON::Stringifier::condense(root, out);
  out << '\n';
  return out.str();
}

Result<PublishedState> decodePublishedState(std::string_view text) {
  PublishedState out;
  try {
    Poco::JSON::Parser parser;
    Poco::Dynamic::Var parsed = parser.parse(std::string(text));
    Object::Ptr root = parsed.extract<Object::Ptr>();
    eachObject(*root, "blocks", [&](const Object& o) {
      out.blocks.push_back(
          ApiKeyBlock{o.getValue<std::string>("id"), o.getValue<Poco::Int64>("blocked_at")});
    });
    eachObject(*root, "challenges", [&](const Object& o) {
      AcmeChallenge c{o.getValue<std::string>("token"), o.getValue<std::string>("domain"),
                      o.getValue<std::string>("key_authorization"),
                      o.getValue<Poco::Int64>("created_at")};
      const std::string type = o.getValue<std::string>("type");
      auto parsedType = acmeChallengeTypeFrom(type);
      if (!parsedType) {
        throw Poco::DataFormatException("unknown challenge type \"" + type + "\"");
      }
      c.type = *parsedType;
      out.challenges.push_back(std::move(c));
    });
    eachObject(*root, "acme", [&](const Object& o) { out.acme.push_back(acmeFrom(o)); });
  } catch (const Poco::Exception& e) {
    return terminal("published state: " + e.displayText());
  } catch (const std::exception& e) {  // Poco::Dynamic::Var's bad_cast, among others
    return terminal(std::string("published state: ") + e.what());
  }
  return out;
}

Result<std::optional<Snapshot>> readPublishedSnapshot(const fs::path& stateDir) {
  auto text = readPublished(stateDir, kPublishedSnapshot);
  if (!text) {
    return text.error();
  }
  if (!text->has_value()) {
    return std::optional<Snapshot>();
  }
  auto decoded = decodePublishedSnapshot(**text);
  if (!decoded) {
    return terminal((publishedDir(stateDir) / kPublishedSnapshot).string() + ": " +
                    decoded.error().message);
  }
  return std::optional(std::move(*decoded));
}

Result<PublishedHead> readPublishedHead(const fs::path& stateDir) {
  const fs::path file = publishedDir(stateDir) / kPublishedSnapshot;
  const UniqueFd f(::open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (f.get() < 0) {
    const int err = errno;
    if (err == ENOENT) {
      return PublishedHead{};
    }
    return terminal("cannot read " + file.string() + ": " + errnoText(err));
  }
  std::array<char, kHeaderMax + 1> head{};
  size_t got = 0;
  struct stat st {};
  if (const int err = readFull(f.get(), head.data(), head.size(), got); err != 0) {
    return terminal("cannot read " + file.string() + ": " + errnoText(err));
  }
  if (::fstat(f.get(), &st) != 0) {
    return terminal("cannot read " + file.string() + ": " + errnoText(errno));
  }
  auto parsed = publishedSnapshotHeader(std::string_view(head.data(), got));
  if (!parsed) {
    return terminal(file.string() + ": " + parsed.error().message);
  }
  return PublishedHead{parsed->first, static_cast<size_t>(st.st_size) == parsed->second};
}

Result<int64_t> readPublishedGeneration(const fs::path& stateDir) {
  auto head = readPublishedHead(stateDir);
  if (!head) {
    return head.error();
  }
  return head->generation;
}

Result<PublishedState> readPublishedState(const fs::path& stateDir) {
  auto text = readPublished(stateDir, kPublishedState);
  if (!text) {
    return text.error();
  }
  if (!text->has_value()) {
    return PublishedState{};
  }
  auto decoded = decodePublishedState(**text);
  if (!decoded) {
    return terminal((publishedDir(stateDir) / kPublishedState).string() + ": " +
                    decoded.error().message);
  }
  return decoded;
}

}  // namespace edgeplane
