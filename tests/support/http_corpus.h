// Reader of the raw HTTP request corpus (tests/unit/http_corpus/, format in its README.md), for
// replaying its cases through the codec or over a socket.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "schema/encoding.h"

namespace edgeplane::testing {

struct HttpCorpusCase {
  std::string name;
  std::string description;
  std::vector<std::string> expect;  // "ok" or a status code, per request
  bool close = false;
  std::string bytes;
};

// Decodes the escaped bytes of a case; nullopt on a malformed escape.
inline std::optional<std::string> unescapeCorpus(std::string_view in) {
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
      case 'x':
        if (i + 2 >= in.size() || hexValue(in[i + 1]) < 0 || hexValue(in[i + 2]) < 0) {
          return std::nullopt;
        }
        out.push_back(static_cast<char>(hexValue(in[i + 1]) * 16 + hexValue(in[i + 2])));
        i += 2;
        break;
      case 'R': {
        size_t countEnd = in.find("}{", i);
        size_t textEnd = countEnd == std::string_view::npos ? countEnd : in.find('}', countEnd + 2);
        if (i + 1 >= in.size() || in[i + 1] != '{' || textEnd == std::string_view::npos) {
          return std::nullopt;
        }
        int count = std::stoi(std::string(in.substr(i + 2, countEnd - i - 2)));
        std::optional<std::string> text =
            unescapeCorpus(in.substr(countEnd + 2, textEnd - countEnd - 2));
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

inline HttpCorpusCase loadCorpusCase(const std::filesystem::path& path) {
  HttpCorpusCase c;
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
  std::optional<std::string> bytes = unescapeCorpus(escaped);
  EXPECT_TRUE(bytes.has_value()) << c.name << ": malformed escape";
  c.bytes = bytes.value_or("");
  return c;
}

// Every *.http case of `dir`, sorted by name.
inline std::vector<HttpCorpusCase> loadCorpus(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".http") {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  std::vector<HttpCorpusCase> cases;
  for (const auto& f : files) {
    cases.push_back(loadCorpusCase(f));
  }
  return cases;
}

}  // namespace edgeplane::testing
