// The chunks an earlier run loaded (see chunk_memo.h).
#include "schema/chunk_memo.h"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <tuple>
#include <utility>

#include "schema/desired_codec.h"
#include "schema/loader.h"

namespace edgeplane {
namespace {

// Each of an entry's three parts: its length (8 bytes, little-endian), then its bytes.
void appendSized(std::string& out, std::string_view s) {
  const uint64_t n = s.size();
  for (int i = 0; i < 8; ++i) {
    out.push_back(static_cast<char>(n >> (8 * i)));
  }
  out += s;
}

std::optional<std::string_view> takeSized(std::string_view& in) {
  if (in.size() < 8) {
    return std::nullopt;
  }
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) {
    n |= static_cast<uint64_t>(static_cast<uint8_t>(in[i])) << (8 * i);
  }
  in.remove_prefix(8);
  if (n > in.size()) {
    return std::nullopt;
  }
  const std::string_view s = in.substr(0, n);
  in.remove_prefix(n);
  return s;
}

}  // namespace

ChunkMemo::ChunkMemo(std::string root, std::string earlier, size_t offset)
    : root_(std::move(root)), earlier_(std::move(earlier)) {
  std::string_view in = std::string_view(earlier_).substr(std::min(offset, earlier_.size()));
  while (!in.empty()) {
    auto file = takeSized(in);
    auto text = takeSized(in);
    auto elements = takeSized(in);
    if (!file || !text || !elements) {
      byKey_.clear();
      return;
    }
    byKey_.insert_or_assign(Key{*file, *text}, Earlier{*elements});
  }
}

size_t ChunkMemo::KeyHash::operator()(const Key& k) const {
  const std::hash<std::string_view> h;
  return h(k.text) ^ (h(k.file) * 31);
}

std::string_view ChunkMemo::relative(std::string_view file) const {
  return relativeToRoot(file, root_);
}

std::optional<Desired> ChunkMemo::recall(std::string_view relativeFile, std::string_view text,
                                         uint32_t linesBefore) {
  auto it = byKey_.find(Key{relativeFile, text});
  if (it == byKey_.end()) {
    return std::nullopt;
  }
  std::optional<Desired> d = decodeDesired(it->second.elements, root_, linesBefore);
  if (!d) {
    return std::nullopt;  // parsed instead: keep() then marks the file for replacement
  }
  const std::lock_guard lock(mutex_);
  if (!it->second.used) {  // the same text twice in a file is kept once
    it->second.used = true;
    kept_.push_back(Chunk{it->first.file, it->first.text, it->second.elements});
  }
  return d;
}

void ChunkMemo::keep(std::string relativeFile, std::string text, std::string elements) {
  // A chunk parsed although the earlier run kept it: its entry did not decode, and that file is
  // to be replaced.
  const bool undecodable = byKey_.count(Key{relativeFile, text}) != 0;
  const std::lock_guard lock(mutex_);
  undecodable_ = undecodable_ || undecodable;
  owned_.push_back(std::move(relativeFile));
  const std::string_view file = owned_.back();
  owned_.push_back(std::move(text));
  const std::string_view t = owned_.back();
  if (!parsed_.insert(Key{file, t}).second) {  // the same text earlier in the file, loaded alike
    owned_.pop_back();
    owned_.pop_back();
    return;
  }
  owned_.push_back(std::move(elements));
  kept_.push_back(Chunk{file, t, owned_.back()});
}

size_t ChunkMemo::keptCount() {
  const std::lock_guard lock(mutex_);
  return kept_.size();
}

size_t ChunkMemo::recalledCount() {
  const std::lock_guard lock(mutex_);
  return kept_.size() - parsed_.size();
}

bool ChunkMemo::worthStoring() {
  const std::lock_guard lock(mutex_);
  if (byKey_.empty()) {
    return !kept_.empty();
  }
  if (undecodable_) {
    return true;
  }
  const size_t parsed = parsed_.size();
  const size_t unused = byKey_.size() - (kept_.size() - parsed);
  return (parsed + unused) * 16 > kept_.size();
}

std::string ChunkMemo::encodeKept(std::string prefix, size_t spare) {
  const std::lock_guard lock(mutex_);
  // In a fixed order (the threads keep chunks in any), so that equal loads write equal bytes.
  std::sort(kept_.begin(), kept_.end(), [](const Chunk& a, const Chunk& b) {
    return std::tie(a.file, a.text) < std::tie(b.file, b.text);
  });
  size_t size = prefix.size() + spare;
  for (const Chunk& c : kept_) {
    size += 24 + c.file.size() + c.text.size() + c.elements.size();
  }
  std::string out = std::move(prefix);
  out.reserve(size);
  for (const Chunk& c : kept_) {
    appendSized(out, c.file);
    appendSized(out, c.text);
    appendSized(out, c.elements);
  }
  return out;
}

}  // namespace edgeplane
