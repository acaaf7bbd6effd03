// Reading the ACME external account binding file (see acme_eab.h).
#include "schema/acme_eab.h"

#include <algorithm>

#include "schema/encoding.h"
#include "schema/secret_file.h"
#include "schema/toml_reader.h"

namespace edgeplane {

Result<AcmeEab> parseAcmeEab(std::string_view text, const std::string& fileName) {
  const SourceFile file(fileName);
  Diagnostics diags;
  AcmeEab out;
  toml::parse_result parsed = toml::parse(text, fileName);
  if (!parsed) {
    diags.error(detail::locOf(parsed.error().source(), file),
                "not a TOML file of kid and hmac_key");
  } else {
    detail::TableReader r(parsed.table(), "the external account binding file", file, diags);
    auto kid = r.str("kid", true);
    auto key = r.str("hmac_key", true);
    r.finish();
    if (kid && kid->empty()) {
      r.error("kid", "'kid' is empty");
    }
    if (key) {
      auto bytes = decodeBase64Url(*key);
      std::fill(key->begin(), key->end(), '\0');
      if (!bytes || bytes->empty()) {
        r.error("hmac_key", "'hmac_key' is not base64url (the key as the CA hands it out)");
      } else {
        out.macKey = std::move(*bytes);
      }
    }
    out.kid = kid.value_or("");
  }
  if (!diags.empty()) {
    std::fill(out.macKey.begin(), out.macKey.end(), '\0');
    std::string message = diags.format();
    while (!message.empty() && message.back() == '\n') {
      message.pop_back();
    }
    return terminal(message);
  }
  return out;
}

Result<AcmeEab> readAcmeEabFile(const std::filesystem::path& file) {
  auto text = readSecretFile(file, "ACME external account binding file");
  if (!text) {
    return text.error();
  }
  auto eab = parseAcmeEab(*text, file.string());
  std::fill(text->begin(), text->end(), '\0');
  return eab;
}

}  // namespace edgeplane
