// Private keys from PEM text: OpenSSL's EC decoder first, then its generic one.
#include "schema/pem_key.h"

#include <openssl/bio.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include <climits>

namespace edgeplane {
namespace {

int noPassphrase(char*, int, int, void*) {
  return 0;
}

PrivateKey readEcKey(std::string_view pem) {
  EVP_PKEY* key = nullptr;
  CPtr<OSSL_DECODER_CTX, OSSL_DECODER_CTX_free> ctx(OSSL_DECODER_CTX_new_for_pkey(
      &key, "PEM", nullptr, "EC", OSSL_KEYMGMT_SELECT_KEYPAIR, nullptr, nullptr));
  if (!ctx || OSSL_DECODER_CTX_set_pem_password_cb(ctx.get(), noPassphrase, nullptr) != 1) {
    return nullptr;
  }
  auto* data = reinterpret_cast<const unsigned char*>(pem.data());
  size_t len = pem.size();
  if (OSSL_DECODER_from_data(ctx.get(), &data, &len) != 1) {
    EVP_PKEY_free(key);
    return nullptr;
  }
  return PrivateKey(key);
}

}  // namespace

PrivateKey readPrivateKeyPem(std::string_view pem) {
  if (pem.size() > INT_MAX) {
    return nullptr;
  }
  if (PrivateKey ec = readEcKey(pem)) {
    return ec;
  }
  ERR_clear_error();  // the EC attempt's errors are not this key's
  CPtr<BIO, BIO_free_all> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) {
    return nullptr;
  }
  return PrivateKey(PEM_read_bio_PrivateKey(bio.get(), nullptr, noPassphrase, nullptr));
}

}  // namespace edgeplane
