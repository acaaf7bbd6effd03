// Escaping of control characters and invalid UTF-8 for human output (see terminal_text.h).
#include "schema/terminal_text.h"

#include <initializer_list>

namespace edgeplane {

namespace {

constexpr char kHex[] = "0123456789abcdef";

// The length of the valid UTF-8 sequence at the start of `s` (2 to 4), or 0 when the first byte
// does not start one (an ASCII byte included). Ranges from RFC 3629, section 4.
size_t utf8Length(std::string_view s) {
  const auto at = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char b = at(0);
  size_t n = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xbf;
  if (b >= 0xc2 && b <= 0xdf) {
    n = 2;
  } else if (b >= 0xe0 && b <= 0xef) {
    n = 3;
    lo = b == 0xe0 ? 0xa0 : 0x80;
    hi = b == 0xed ? 0x9f : 0xbf;
  } else if (b >= 0xf0 && b <= 0xf4) {
    n = 4;
    lo = b == 0xf0 ? 0x90 : 0x80;
    hi = b == 0xf4 ? 0x8f : 0xbf;
  } else {
    return 0;
  }
  if (s.size() < n || at(1) < lo || at(1) > hi) {
    return 0;
  }
  for (size_t i = 2; i < n; ++i) {
    if (at(i) < 0x80 || at(i) > 0xbf) {
      return 0;
    }
  }
  return n;
}

std::string escape(std::string_view s, bool keepNewlines) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    // What needs no escape goes over as a run (a plan of 10k operations is one call).
    size_t run = i;
    while (run < s.size()) {
      const auto c = static_cast<unsigned char>(s[run]);
      if ((c < 0x20 || c >= 0x7f) && !(c == '\n' && keepNewlines)) {
        break;
      }
      ++run;
    }
    out.append(s.data() + i, run - i);
    i = run;
    if (i == s.size()) {
      break;
    }
    const auto b = static_cast<unsigned char>(s[i]);
    const size_t n = b >= 0x80 ? utf8Length(s.substr(i)) : 0;
    if (n == 2 && b == 0xc2 && static_cast<unsigned char>(s[i + 1]) < 0xa0) {
      out += "\\u00";  // a C1 control, U+0080..U+009F
      out.push_back(kHex[(static_cast<unsigned char>(s[i + 1]) >> 4) & 0xf]);
      out.push_back(kHex[s[i + 1] & 0xf]);
    } else if (n != 0) {
      out.append(s.substr(i, n));
    } else {
      out += "\\x";
      out.push_back(kHex[b >> 4]);
      out.push_back(kHex[b & 0xf]);
      i += 1;
      continue;
    }
    i += n;
  }
  return out;
}

}  // namespace

std::string terminalText(std::string_view s) {
  return escape(s, false);
}

std::string terminalLines(std::string_view s) {
  return escape(s, true);
}

size_t incompleteUtf8Tail(std::string_view s) {
  for (size_t back = 1; back <= 3 && back <= s.size(); ++back) {
    const auto b = static_cast<unsigned char>(s[s.size() - back]);
    if (b < 0x80 || b >= 0xc0) {  // not a continuation byte: where a sequence would start
      const size_t want = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc2 ? 2 : 1;
      if (want <= back) {
        return 0;
      }
      // Held back only while what is there can still become valid: pad it with the smallest
      // continuation bytes the lead byte allows and see.
      std::string padded(s.substr(s.size() - back));
      const auto second = static_cast<unsigned char>(b == 0xe0 ? 0xa0 : b == 0xf0 ? 0x90 : 0x80);
      while (padded.size() < want) {
        padded.push_back(static_cast<char>(padded.size() == 1 ? second : 0x80));
      }
      return utf8Length(padded) == want ? back : 0;
    }
  }
  return 0;
}

size_t sgrAt(std::string_view s) {
  for (std::string_view seq : {sgr::kReset, sgr::kRed, sgr::kGreen, sgr::kYellow}) {
    if (s.starts_with(seq)) {
      return seq.size();
    }
  }
  return 0;
}

}  // namespace edgeplane
