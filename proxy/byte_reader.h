// A bounds-checked big-endian reader over a span, shared by the proxy's parsers of untrusted
// bytes (TLS ClientHello, DNS queries): every read past the end fails and moves nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace edgeplane::proxy {

class ByteReader {
 public:
  explicit ByteReader(std::span<const uint8_t> data) : data_(data) {}

  size_t remaining() const { return data_.size() - pos_; }
  bool empty() const { return pos_ == data_.size(); }
  size_t pos() const { return pos_; }
  std::span<const uint8_t> data() const { return data_; }

  bool u8(uint8_t& out) {
    if (remaining() < 1) {
      return false;
    }
    out = data_[pos_++];
    return true;
  }
  bool u16(uint16_t& out) {
    if (remaining() < 2) {
      return false;
    }
    out = static_cast<uint16_t>((data_[pos_] << 8) | data_[pos_ + 1]);
    pos_ += 2;
    return true;
  }
  bool u32(uint32_t& out) {
    if (remaining() < 4) {
      return false;
    }
    out = uint32_t{data_[pos_]} << 24 | uint32_t{data_[pos_ + 1]} << 16 |
          uint32_t{data_[pos_ + 2]} << 8 | data_[pos_ + 3];
    pos_ += 4;
    return true;
  }
  bool bytes(size_t n, std::span<const uint8_t>& out) {
    if (remaining() < n) {
      return false;
    }
    out = data_.subspan(pos_, n);
    pos_ += n;
    return true;
  }
  bool skip(size_t n) {
    std::span<const uint8_t> ignored;
    return bytes(n, ignored);
  }
  // A vector with a `lenBytes`-byte length prefix (1 or 2).
  bool vec(size_t lenBytes, std::span<const uint8_t>& out) {
    size_t n = 0;
    if (lenBytes == 1) {
      uint8_t len = 0;
      if (!u8(len)) {
        return false;
      }
      n = len;
    } else {
      uint16_t len = 0;
      if (!u16(len)) {
        return false;
      }
      n = len;
    }
    return bytes(n, out);
  }

 private:
  std::span<const uint8_t> data_;
  size_t pos_ = 0;
};

}  // namespace edgeplane::proxy
