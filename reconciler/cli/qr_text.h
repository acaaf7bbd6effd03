// A QR code (libqrencode) drawn for a terminal with UTF-8 half blocks, for `peer-config --qr`.
#pragma once

#include <string>
#include <string_view>

#include "schema/result.h"

namespace edgeplane::cli {

// The quiet zone around the code, in modules (ISO/IEC 18004 asks for 4).
inline constexpr int kQrQuietZone = 4;

// `text` as a QR code (QRcode_encodeString: case-sensitive, 8-bit mode where no denser one
// fits, error correction level L, the smallest version that holds it), two module rows per line:
// light modules are drawn (U+2588 full, U+2580 upper half, U+2584 lower half block), dark ones are
// blank, as `qrencode -t UTF8` does, so the code reads on a terminal with a dark background. The
// quiet zone is light; an odd last module row is drawn over a blank half. An error when the text
// does not fit in a QR code.
Result<std::string> qrTerminalText(std::string_view text);

}  // namespace edgeplane::cli
