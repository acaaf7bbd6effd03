// The ACME external account binding file: its parsing, its refusals and its owner-only check.
#include "schema/acme_eab.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "schema/encoding.h"
#include "tests/support/temp_dir.h"

namespace edgeplane {
namespace {

constexpr std::string_view kKey =
    "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";

std::string eabText(std::string_view key = kKey) {
  return "kid = \"kid-1\"\nhmac_key = \"" + std::string(key) + "\"\n";
}

std::string errorOf(std::string_view text) {
  auto r = parseAcmeEab(text, "/etc/eab.toml");
  return r.ok() ? "<accepted>" : r.error().message;
}

TEST(Base64Url, DecodesTheUrlAlphabetUnpadded) {
  EXPECT_EQ(decodeBase64Url("-__-"), "\xfb\xff\xfe");
  EXPECT_EQ(decodeBase64Url("-_8"), "\xfb\xff");
  EXPECT_EQ(decodeBase64Url("Zg"), "f");
  EXPECT_EQ(decodeBase64Url(encodeBase64Url("any bytes\x01\xff")), "any bytes\x01\xff");
  EXPECT_FALSE(decodeBase64Url("Zg==").has_value());   // padded
  EXPECT_FALSE(decodeBase64Url("+/8").has_value());    // the standard alphabet
  EXPECT_FALSE(decodeBase64Url("Zh").has_value());     // unused bits set
  EXPECT_FALSE(decodeBase64Url("Zg_Zg").has_value());  // one character too many
  EXPECT_FALSE(decodeBase64Url("").has_value());
}

TEST(AcmeEab, ParsesKidAndDecodesTheKey) {
  auto eab = parseAcmeEab(eabText(), "/etc/eab.toml");
  ASSERT_TRUE(eab.ok()) << eab.error().message;
  EXPECT_EQ(eab->kid, "kid-1");
  EXPECT_EQ(eab->macKey, decodeBase64Url(kKey).value());
  EXPECT_EQ(eab->macKey.size(), 48U);
}

TEST(AcmeEab, MalformedFilesNameTheFileAndNeverTheKey) {
  EXPECT_EQ(errorOf("kid = \"kid-1\"\n"),
            "/etc/eab.toml:1:1: error: the external account binding file is missing required "
            "key 'hmac_key'");
  EXPECT_EQ(errorOf("kdi = \"kid-1\"\nhmac_key = \"AAAA\"\n"),
            "/etc/eab.toml:1:1: error: unknown key 'kdi' in the external account binding file; "
            "did you mean 'kid'?");
  EXPECT_EQ(errorOf("kid = 1\nhmac_key = \"AAAA\"\n"),
            "/etc/eab.toml:1:7: error: 'kid' must be a string, not an integer");
  EXPECT_EQ(errorOf("kid = \"\"\nhmac_key = \"AAAA\"\n"),
            "/etc/eab.toml:1:7: error: 'kid' is empty");
  const std::string padded = std::string(kKey) + "==";
  const std::string bad = errorOf(eabText(padded));
  EXPECT_EQ(bad,
            "/etc/eab.toml:2:12: error: 'hmac_key' is not base64url (the key as the CA "
            "hands it out)");
  const std::string syntax = errorOf("kid = \"kid-1\"\nhmac_key = " + std::string(kKey) + "\n");
  EXPECT_EQ(syntax.rfind("/etc/eab.toml:2:", 0), 0U) << syntax;
  EXPECT_NE(syntax.find("not a TOML file of kid and hmac_key"), std::string::npos) << syntax;
  EXPECT_EQ(syntax.find(kKey.substr(0, 8)), std::string::npos) << syntax;
}

TEST(AcmeEab, TheFileMustBeOwnerOnly) {
  testing::TempDir dir;
  const auto file = dir.path() / "eab.toml";
  std::ofstream(file) << eabText();
  ASSERT_EQ(::chmod(file.c_str(), 0644), 0);
  auto open = readAcmeEabFile(file);
  ASSERT_FALSE(open.ok());
  EXPECT_NE(open.error().message.find(file.string() + " has mode 0644"), std::string::npos)
      << open.error().message;
  ASSERT_EQ(::chmod(file.c_str(), 0600), 0);
  auto eab = readAcmeEabFile(file);
  ASSERT_TRUE(eab.ok()) << eab.error().message;
  EXPECT_EQ(eab->kid, "kid-1");
  EXPECT_FALSE(readAcmeEabFile(dir.path() / "missing.toml").ok());
}

}  // namespace
}  // namespace edgeplane
