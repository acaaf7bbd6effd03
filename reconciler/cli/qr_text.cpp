// QR codes for a terminal (see qr_text.h).
#include "reconciler/cli/qr_text.h"

#include <qrencode.h>

#include <cerrno>
#include <memory>

namespace edgeplane::cli {

namespace {

struct QrFree {
  void operator()(QRcode* code) const { QRcode_free(code); }
};

}  // namespace

Result<std::string> qrTerminalText(std::string_view text) {
  const std::string input(text);  // libqrencode reads a NUL-terminated string
  errno = 0;
  std::unique_ptr<QRcode, QrFree> code(
      QRcode_encodeString(input.c_str(), 0, QR_ECLEVEL_L, QR_MODE_8, 1));
  if (!code) {
    const int err = errno;
    return terminal("cannot encode " + std::to_string(text.size()) +
                    " bytes as a QR code: " + errnoText(err));
  }
  const int width = code->width;
  const int side = width + 2 * kQrQuietZone;
  // Whether module (row, col) of the drawn area, quiet zone included, is light.
  auto light = [&](int row, int col) {
    const int r = row - kQrQuietZone;
    const int c = col - kQrQuietZone;
    if (r < 0 || c < 0 || r >= width || c >= width) {
      return true;
    }
    return (code->data[r * width + c] & 1) == 0;
  };
  std::string out;
  for (int row = 0; row < side; row += 2) {
    for (int col = 0; col < side; ++col) {
      const bool top = light(row, col);
      const bool bottom = row + 1 < side && light(row + 1, col);
      out += top && bottom ? "\u2588" : top ? "\u2580" : bottom ? "\u2584" : " ";
    }
    out += "\n";
  }
  return out;
}

}  // namespace edgeplane::cli
