// Byte encodings with strict decoders (see encoding.h).
//
// The decoders take untrusted text (keys and digests in the config, ACME and webhook input),
// never throw, and accept one spelling per value: anything else is nullopt, not a guess.
#include "schema/encoding.h"

#include <algorithm>

namespace edgeplane {

// Base64

namespace {
constexpr std::string_view kBase64Alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64Value(char c) {
  if (c >= 'A' && c <= 'Z') {
    return c - 'A';
  }
  if (c >= 'a' && c <= 'z') {
    return c - 'a' + 26;
  }
  if (c >= '0' && c <= '9') {
    return c - '0' + 52;
  }
  if (c == '+') {
    return 62;
  }
  if (c == '/') {
    return 63;
  }
  return -1;
}

}  // namespace

bool isBase64Char(char c) {
  return base64Value(c) >= 0;
}

std::optional<std::string> decodeBase64(std::string_view in) {
  if (in.empty() || in.size() % 4 != 0) {
    return std::nullopt;
  }
  size_t pad = 0;
  if (in.back() == '=') {
    pad = in[in.size() - 2] == '=' ? 2 : 1;
  }
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (size_t i = 0; i < in.size(); i += 4) {
    const bool last = i + 4 == in.size();
    int v[4];
    for (size_t j = 0; j < 4; ++j) {
      const bool padSlot = last && j >= 4 - pad;
      v[j] = padSlot ? (in[i + j] == '=' ? 0 : -1) : base64Value(in[i + j]);
      if (v[j] < 0) {
        return std::nullopt;
      }
    }
    const std::uint32_t n =
        (static_cast<std::uint32_t>(v[0]) << 18) | (static_cast<std::uint32_t>(v[1]) << 12) |
        (static_cast<std::uint32_t>(v[2]) << 6) | static_cast<std::uint32_t>(v[3]);
    out.push_back(static_cast<char>((n >> 16) & 0xff));
    if (last && pad == 2) {
      if ((n & 0xffff) != 0) {
        return std::nullopt;
      }
      break;
    }
    out.push_back(static_cast<char>((n >> 8) & 0xff));
    if (last && pad == 1) {
      if ((n & 0xff) != 0) {
        return std::nullopt;
      }
      break;
    }
    out.push_back(static_cast<char>(n & 0xff));
  }
  return out;
}

std::string encodeBase64(std::string_view in, bool pad) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  auto byte = [&](size_t k) {
    return static_cast<std::uint32_t>(static_cast<unsigned char>(in[k]));
  };
  for (; i + 3 <= in.size(); i += 3) {
    const std::uint32_t n = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    out.push_back(kBase64Alphabet[(n >> 18) & 63]);
    out.push_back(kBase64Alphabet[(n >> 12) & 63]);
    out.push_back(kBase64Alphabet[(n >> 6) & 63]);
    out.push_back(kBase64Alphabet[n & 63]);
  }
  if (in.size() - i == 1) {
    const std::uint32_t n = byte(i) << 16;
    out.push_back(kBase64Alphabet[(n >> 18) & 63]);
    out.push_back(kBase64Alphabet[(n >> 12) & 63]);
  } else if (in.size() - i == 2) {
    const std::uint32_t n = (byte(i) << 16) | (byte(i + 1) << 8);
    out.push_back(kBase64Alphabet[(n >> 18) & 63]);
    out.push_back(kBase64Alphabet[(n >> 12) & 63]);
    out.push_back(kBase64Alphabet[(n >> 6) & 63]);
  }
  if (pad) {
    out.append((3 - in.size() % 3) % 3, '=');
  }
  return out;
}

std::string encodeBase64Url(std::string_view bytes) {
  std::string s = encodeBase64(bytes, false);
  for (char& c : s) {
    c = c == '+' ? '-' : c == '/' ? '_' : c;
  }
  return s;
}

std::optional<std::string> decodeBase64Url(std::string_view text) {
  // Mapped onto the standard alphabet and padded, so that one decoder checks every rule.
  std::string s(text);
  for (char& c : s) {
    if (c == '+' || c == '/' || c == '=') {
      return std::nullopt;
    }
    c = c == '-' ? '+' : c == '_' ? '/' : c;
  }
  if (s.size() % 4 == 1) {
    return std::nullopt;
  }
  s.append((4 - s.size() % 4) % 4, '=');
  auto out = decodeBase64(s);
  std::fill(s.begin(), s.end(), '\0');  // the text may be a key
  return out;
}

// Hex

int hexValue(char c) {
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

bool allHex(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return hexValue(c) >= 0; });
}

bool isFullCommitId(std::string_view text) {
  return text.size() == 40 && allHex(text);
}

std::optional<std::array<uint8_t, 32>> parseHex32(std::string_view text) {
  std::array<uint8_t, 32> out{};
  if (text.size() != out.size() * 2) {
    return std::nullopt;
  }
  for (size_t i = 0; i < out.size(); ++i) {
    int hi = hexValue(text[2 * i]);
    int lo = hexValue(text[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return std::nullopt;
    }
    out[i] = static_cast<uint8_t>((hi << 4) | lo);
  }
  return out;
}

std::string toHex(const uint8_t* data, size_t len) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (size_t i = 0; i < len; ++i) {
    out.push_back(kDigits[data[i] >> 4]);
    out.push_back(kDigits[data[i] & 0x0F]);
  }
  return out;
}

// Decimal

std::optional<uint64_t> parseDecimal(std::string_view text, uint64_t max, LeadingZeros zeros) {
  if (text.empty() || text.size() > 20) {
    return std::nullopt;
  }
  if (zeros == LeadingZeros::Refused && text.size() > 1 && text[0] == '0') {
    return std::nullopt;
  }
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    const auto digit = static_cast<uint64_t>(c - '0');
    if (digit > max || value > (max - digit) / 10) {  // value * 10 + digit > max
      return std::nullopt;
    }
    value = value * 10 + digit;
  }
  return value;
}

}  // namespace edgeplane
