// What chunks of large config files loaded in an earlier run, so that a file with a few changed
// lines is parsed only where it changed (chunks: schema/toml_chunks.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "schema/model.h"

namespace edgeplane {

// A chunk after a document's first one that parsed on its own, only appended elements and
// loaded without diagnostics is kept: its file (relative to the config root), its exact text and
// its elements (encodeDesired with the root and the lines before the chunk, so they decode for
// the same text anywhere in the file, under any root). A chunk of the same file with the same
// text is then decoded instead of parsed: loading it again would give the same.
class ChunkMemo {
 public:
  // `root`: the config root files are named under ("root/relative"). `earlier` from `offset`:
  // what encodeKept() gave in an earlier run; malformed, it is taken for nothing.
  ChunkMemo(std::string root, std::string earlier = {}, size_t offset = 0);
  ChunkMemo(const ChunkMemo&) = delete;
  ChunkMemo& operator=(const ChunkMemo&) = delete;

  const std::string& root() const { return root_; }
  // `file` ("root/relative") relative to the root.
  std::string_view relative(std::string_view file) const;
  size_t earlierCount() const { return byKey_.size(); }
  size_t keptCount();
  // How many of the earlier run's chunks this load recalled (each once, however often its text
  // recurs).
  size_t recalledCount();
  // Whether what this load kept should replace what the earlier run kept: that was nothing, or
  // the chunks this load parsed and the earlier ones it left unused are together more than a
  // sixteenth of what it kept, or an earlier one did not decode. Below that the earlier chunks
  // still serve: each miss parses again the few they lack, which costs less than writing
  // megabytes.
  bool worthStoring();

  // The elements an earlier run kept for this chunk of `relativeFile`, decoded for a chunk after
  // `linesBefore` lines (its locations under root()), and kept for the next run; nullopt when
  // none was kept or it does not decode (the chunk is then parsed). Safe from several threads.
  std::optional<Desired> recall(std::string_view relativeFile, std::string_view text,
                                uint32_t linesBefore);
  // Keeps a chunk this load parsed, and that loaded without diagnostics: one recall() did not
  // give. When the earlier run kept it (its entry did not decode), that file is marked for
  // replacement. The same text twice in a file is kept once. Safe from several threads.
  void keep(std::string relativeFile, std::string text, std::string elements);

  // The chunks this load kept (recalled and decoded, or parsed), for the next run's `earlier`,
  // after `prefix` and with room for `spare` bytes more (what the caller appends: the file's seal),
  // so that a file of megabytes is not copied again to be written.
  std::string encodeKept(std::string prefix = {}, size_t spare = 0);

 private:
  struct Chunk {
    std::string_view file;
    std::string_view text;
    std::string_view elements;
  };
  struct Key {
    std::string_view file;
    std::string_view text;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const;
  };

  std::string root_;
  std::string earlier_;
  struct Earlier {
    std::string_view elements;  // in earlier_
    bool used = false;          // recalled by this load (under mutex_)
  };
  std::unordered_map<Key, Earlier, KeyHash> byKey_;
  std::mutex mutex_;
  std::vector<Chunk> kept_;  // each earlier chunk used, then each parsed one (in parsed_)
  std::unordered_set<Key, KeyHash> parsed_;
  bool undecodable_ = false;       // a chunk was parsed whose earlier entry did not decode
  std::deque<std::string> owned_;  // what the parsed chunks in kept_ point into
};

}  // namespace edgeplane
