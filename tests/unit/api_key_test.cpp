// The API-key text form: generation, id extraction, digests.
#include "schema/api_key.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "schema/encoding.h"

namespace edgeplane {
namespace {

TEST(ApiKey, GeneratedKeysCarryTheirIdAndDigest) {
  std::set<std::string> ids;
  for (int i = 0; i < 50; ++i) {
    auto k = generateApiKey();
    ASSERT_TRUE(k.has_value());
    EXPECT_EQ(k->id.size(), kApiKeyIdLength);
    EXPECT_EQ(k->key.size(), 3 + kApiKeyIdLength + 1 + 64);
    EXPECT_EQ(k->key.rfind("ep_" + k->id + ".", 0), 0u) << k->key;
    auto id = apiKeyId(k->key);
    ASSERT_TRUE(id.has_value()) << k->key;
    EXPECT_EQ(*id, k->id);
    EXPECT_TRUE(digestsEqual(apiKeyDigest(k->key), k->sha256));
    ids.insert(k->id);
  }
  EXPECT_EQ(ids.size(), 50u);  // 62^8 ids: a repeat in 50 would mean a broken generator
}

TEST(ApiKey, DigestIsSha256OfTheWholeText) {
  // printf 'ep_abcd.' + 64 zeros | sha256sum
  const std::string key = "ep_abcd." + std::string(64, '0');
  const ApiKeyDigest d = apiKeyDigest(key);
  EXPECT_EQ(toHex(d.data(), d.size()),
            "b90cc5ac25a113308994e8d3a1680acb9021fa6fba29f0f000156d67cad70452");
  ApiKeyDigest other = apiKeyDigest(key + "0");
  EXPECT_FALSE(digestsEqual(d, other));
  EXPECT_TRUE(digestsEqual(d, apiKeyDigest(key)));
}

TEST(ApiKey, MalformedKeysHaveNoId) {
  const std::string secret(64, 'a');
  EXPECT_TRUE(apiKeyId("ep_k7Hq2xPz." + secret).has_value());
  EXPECT_TRUE(apiKeyId("ep_a_b-." + secret).has_value());
  for (const std::string& bad : std::initializer_list<std::string>{
           std::string(),
           std::string("ep_"),
           "k7Hq2xPz." + secret,    // no prefix
           "ep_k7Hq2xPz" + secret,  // no dot
           "ep_abc." + secret,      // id too short
           "ep_" + std::string(65, 'a') + "." + secret,
           "ep_k7H.q2xPz." + secret,  // a dot in the secret
           "ep_k7Hq2xPz." + std::string(63, 'a'),
           "ep_k7Hq2xPz." + std::string(65, 'a'),
           "ep_k7Hq2xPz." + std::string(64, 'A'),  // upper-case hex
           "ep_k7Hq 2xPz." + secret,
           "ep_k7Hq2xPz." + secret + "\n",
       }) {
    EXPECT_FALSE(apiKeyId(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace edgeplane
