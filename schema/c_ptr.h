// std::unique_ptr for objects of C libraries (OpenSSL's X509, EVP_PKEY, BIO, …) that a
// function frees: CPtr<X509, X509_free>.
#pragma once

#include <memory>

namespace edgeplane {

template <typename T, void (*Free)(T*)>
struct FreeWith {
  void operator()(T* p) const { Free(p); }
};

template <typename T, void (*Free)(T*)>
using CPtr = std::unique_ptr<T, FreeWith<T, Free>>;

}  // namespace edgeplane
