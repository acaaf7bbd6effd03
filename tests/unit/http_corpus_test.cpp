// Replays every case of tests/unit/http_corpus/ (format in its README.md) through the codec
// as the proxy would: head, then body, request after request, until an error or a close.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "proxy/http/chunked.h"
#include "proxy/http/message.h"

namespace edgeplane::proxy::http {
namespace {

struct CorpusCase {
  std::string name;
  std::string description;
  std::vector<std::string> expect;
  bool close = false;
  std::string bytes;
};

int hexDigit(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

// Decodes the escaped bytes of a case; nullopt on a malformed escape.
std::optional<std::string> unescape(std::string_view in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '\\') {
      out.push_back(in[i]);
      continue;
    }
    if (++i == in.size()) {
      return std::nullopt;
    }
    switch (in[i]) {
      case 'r':
        out.push_back('\r');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 't':
        out.push_back('\t');
        break;
      case '0':
        out.push_back('\0');
        break;
      case '\\':
        out.push_back('\\');
        break;
      case 'x': {
        if (i + 2 >= in.size() || hexDigit(in[i + 1]) < 0 || hexDigit(in[i + 2]) < 0) {
          return std::nullopt;
        }
        out.push_back(static_cast<char>(hexDigit(in[i + 1]) * 16 + hexDigit(in[i + 2])));
        i += 2;
        break;
      }
      case 'R': {
        size_t countEnd = in.find("}{", i);
        size_t textEnd = in.find('}', countEnd + 2);
        if (i + 1 >= in.size() || in[i + 1] != '{' || countEnd == std::string_view::npos ||
            textEnd == std::string_view::npos) {
          return std::nullopt;
        }
        int count = std::stoi(std::string(in.substr(i + 2, countEnd - i - 2)));
        std::optional<std::string> text = unescape(in.substr(countEnd + 2, textEnd - countEnd - 2));
        if (!text) {
          return std::nullopt;
        }
        for (int n = 0; n < count; ++n) {
          out += *text;
        }
        i = textEnd;
        break;
      }
      default:
        return std::nullopt;
    }
  }
  return out;
}

CorpusCase loadCase(const std::filesystem::path& path) {
  CorpusCase c;
  c.name = path.filename().string();
  std::ifstream file(path, std::ios::binary);
  std::string line;
  bool inBytes = false;
  std::string escaped;
  while (std::getline(file, line)) {
    if (inBytes) {
      escaped += line;  // literal newlines are not part of the bytes
    } else if (line == "--") {
      inBytes = true;
    } else if (line.starts_with("# ")) {
      c.description = line.substr(2);
    } else if (line.starts_with("expect: ")) {
      std::istringstream verdicts(line.substr(8));
      for (std::string v; verdicts >> v;) {
        c.expect.push_back(v);
      }
    } else if (line == "close: yes" || line == "close: no") {
      c.close = line == "close: yes";
    } else {
      ADD_FAILURE() << c.name << ": unknown header line: " << line;
    }
  }
  std::optional<std::string> bytes = unescape(escaped);
  EXPECT_TRUE(bytes.has_value()) << c.name << ": malformed escape";
  c.bytes = bytes.value_or("");
  return c;
}

struct Replay {
  std::vector<std::string> verdicts;
  bool close = false;
  bool stalled = false;  // the bytes ended inside a request: the proxy would wait
};

// The proxy's reading loop over one connection's bytes, verdict by verdict.
Replay replay(std::string_view bytes) {
  Replay r;
  while (!bytes.empty()) {
    RequestHead head;
    ParseResult p = parseRequestHead(bytes, head, Limits{});
    if (p.status == ParseStatus::NeedMore) {
      r.stalled = true;
      return r;
    }
    if (p.status == ParseStatus::Error) {
      r.verdicts.push_back(std::to_string(p.code));
      r.close = true;
      return r;
    }
    bytes.remove_prefix(p.length);
    if (head.framing == BodyFraming::ContentLength) {
      if (bytes.size() < head.contentLength) {
        r.stalled = true;
        return r;
      }
      bytes.remove_prefix(head.contentLength);
    } else if (head.framing == BodyFraming::Chunked) {
      ChunkedDecoder decoder;
      size_t used = 0;
      ChunkedDecoder::Step s;
      do {
        s = decoder.feed(bytes.substr(used));
        used += s.consumed;
      } while (s.status == ChunkedDecoder::Status::Ok && used < bytes.size());
      if (s.status == ChunkedDecoder::Status::Error) {
        r.verdicts.push_back("400");
        r.close = true;
        return r;
      }
      if (s.status != ChunkedDecoder::Status::Done) {
        r.stalled = true;
        return r;
      }
      bytes.remove_prefix(used);
    }
    r.verdicts.push_back("ok");
    if (!head.keepAlive) {
      r.close = true;
      return r;
    }
  }
  return r;
}

TEST(HttpCorpus, EveryCaseGetsItsVerdict) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(EDGEPLANE_HTTP_CORPUS_DIR)) {
    if (entry.path().extension() == ".http") {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  ASSERT_GE(files.size(), 35u);
  for (const auto& path : files) {
    CorpusCase c = loadCase(path);
    ASSERT_FALSE(c.description.empty()) << c.name;
    ASSERT_FALSE(c.expect.empty()) << c.name;
    Replay r = replay(c.bytes);
    EXPECT_FALSE(r.stalled) << c.name << ": the bytes end inside a request";
    EXPECT_EQ(r.verdicts, c.expect) << c.name << ": " << c.description;
    EXPECT_EQ(r.close, c.close) << c.name << ": " << c.description;
  }
}

TEST(HttpCorpus, EscapesDecode) {
  EXPECT_EQ(unescape("a\\r\\n\\t\\0\\\\\\x41"), std::string("a\r\n\t\0\\A", 7));
  EXPECT_EQ(unescape("\\R{3}{ab\\x7d}"), "ab}ab}ab}");
  EXPECT_FALSE(unescape("\\q").has_value());
  EXPECT_FALSE(unescape("\\x4").has_value());
}

}  // namespace
}  // namespace edgeplane::proxy::http
