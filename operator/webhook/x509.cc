// X.509 with OpenSSL 3; see x509.h.
#include "operator/webhook/x509.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <ctime>
#include <memory>

#include "operator/webhook/injection_config.h"

namespace modelswap::op {
namespace {

template <class T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;

// The OpenSSL error queue as text (and cleared), for messages naming the failed step.
std::string SslError(std::string_view step) {
  std::string out(step);
  unsigned long e = 0;
  char buf[256];
  while ((e = ERR_get_error()) != 0) {
    ERR_error_string_n(e, buf, sizeof(buf));
    out += std::string(": ") + buf;
  }
  return out;
}

Result<X509Ptr> ParseCert(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) return Fail(Code::kInvalidArgument, SslError("certificate PEM does not parse"));
  return cert;
}

Result<KeyPtr> ParseKey(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  KeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) return Fail(Code::kInvalidArgument, SslError("private key PEM does not parse"));
  return key;
}

std::string BioText(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string ToPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  return BioText(bio.get());
}

std::string ToPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  return BioText(bio.get());
}

bool AddExt(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return false;
  bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

int64_t ToUnix(const ASN1_TIME* t) {
  struct tm tm {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

struct CertSpec {
  std::string cn;
  std::vector<std::pair<int, std::string>> extensions;
  int64_t not_before_unix = 0;
  int64_t not_after_unix = 0;
};

// Builds and signs one certificate for `key`, issued by (issuer, issuer_key) or self-signed.
Result<X509Ptr> MakeCert(const CertSpec& spec, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key) {
  X509Ptr cert(X509_new());
  if (!cert) return Fail(Code::kInternal, SslError("X509_new"));
  X509_set_version(cert.get(), 2);  // v3
  // 127 random bits: positive, unique, and below the 20-octet limit of RFC 5280 4.1.2.2.
  std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>> serial(BN_new());
  if (!serial || BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) == nullptr) {
    return Fail(Code::kInternal, SslError("certificate serial number"));
  }
  ASN1_TIME_set(X509_getm_notBefore(cert.get()), static_cast<time_t>(spec.not_before_unix));
  ASN1_TIME_set(X509_getm_notAfter(cert.get()), static_cast<time_t>(spec.not_after_unix));
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(spec.cn.c_str()), -1, -1, 0);
  X509* signer = issuer != nullptr ? issuer : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(signer));
  X509_set_pubkey(cert.get(), key);
  for (const auto& [nid, value] : spec.extensions) {
    if (!AddExt(cert.get(), signer, nid, value)) {
      return Fail(Code::kInternal, SslError("certificate extension " + value));
    }
  }
  if (X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256()) == 0) {
    return Fail(Code::kInternal, SslError("X509_sign"));
  }
  return cert;
}

Result<KeyPtr> NewKey() {
  KeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return Fail(Code::kInternal, SslError("generate P-256 key"));
  return key;
}

}  // namespace

bool IsIpAddress(std::string_view s) {
  std::string text(s);
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, text.c_str(), buf) == 1 || inet_pton(AF_INET6, text.c_str(), buf) == 1;
}

Status ValidateSubjectAltName(std::string_view name) {
  if (IsIpAddress(name)) return Ok();
  if (name.starts_with('[')) {
    return Fail(Code::kInvalidArgument,
                "\"" + std::string(name) + "\": write an IPv6 address without brackets");
  }
  if (auto st = ValidateDnsSubdomain(name); !st) {
    return Fail(Code::kInvalidArgument,
                "\"" + std::string(name) +
                    "\" is neither an IP address nor a DNS name: " + st.error().message());
  }
  // Per label too (RFC 1123): 1 to 63 characters, a letter or digit at both ends.
  for (size_t start = 0; start <= name.size();) {
    size_t dot = std::min(name.find('.', start), name.size());
    std::string_view label = name.substr(start, dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return Fail(Code::kInvalidArgument, "\"" + std::string(name) +
                                              "\" is not a DNS name: label \"" +
                                              std::string(label) + "\" is malformed");
    }
    start = dot + 1;
  }
  return Ok();
}

Result<CertAndKey> GenerateCa(int64_t now_unix, std::chrono::seconds validity) {
  MS_ASSIGN_OR_RETURN(KeyPtr key, NewKey());
  // The issue time in the CN: two CAs of one Secret (during a rotation) get distinct subjects,
  // so a verifier's issuer lookup by name never picks the wrong one first.
  CertSpec spec{"modelswap-webhook-ca-" + std::to_string(now_unix),
                {{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
                 {NID_key_usage, "critical,keyCertSign,cRLSign"},
                 {NID_subject_key_identifier, "hash"}},
                now_unix - kBackdateSeconds,
                now_unix + validity.count()};
  MS_ASSIGN_OR_RETURN(X509Ptr ca, MakeCert(spec, key.get(), nullptr, nullptr));
  return CertAndKey{ToPem(ca.get()), ToPem(key.get())};
}

Result<CertAndKey> IssueServingCert(const CertAndKey& ca, const std::vector<std::string>& names,
                                    int64_t now_unix, std::chrono::seconds validity) {
  if (names.empty()) return Fail(Code::kInvalidArgument, "certificate needs a DNS name");
  std::string san, cn;
  for (const auto& n : names) {
    MS_RETURN_IF_ERROR(ValidateSubjectAltName(n));
    san += (san.empty() ? "" : ",") + std::string(IsIpAddress(n) ? "IP:" : "DNS:") + n;
    // The CN is legacy (clients match the SAN), and at most 64 characters (RFC 5280
    // ub-common-name).
    if (cn.empty() && n.size() <= 64) cn = n;
  }
  MS_ASSIGN_OR_RETURN(X509Ptr issuer, ParseCert(ca.cert_pem));
  MS_ASSIGN_OR_RETURN(KeyPtr issuer_key, ParseKey(ca.key_pem));
  MS_ASSIGN_OR_RETURN(KeyPtr key, NewKey());
  int64_t not_after =
      std::min(now_unix + validity.count(), ToUnix(X509_get0_notAfter(issuer.get())));
  CertSpec spec{cn.empty() ? "modelswap-webhook" : cn,
                {{NID_basic_constraints, "critical,CA:FALSE"},
                 {NID_key_usage, "critical,digitalSignature,keyEncipherment"},
                 {NID_ext_key_usage, "serverAuth"},
                 {NID_subject_alt_name, san},
                 {NID_authority_key_identifier, "keyid"}},
                now_unix - kBackdateSeconds,
                not_after};
  MS_ASSIGN_OR_RETURN(X509Ptr leaf, MakeCert(spec, key.get(), issuer.get(), issuer_key.get()));
  return CertAndKey{ToPem(leaf.get()), ToPem(key.get())};
}

Result<CertInfo> InspectCertificate(std::string_view pem) {
  MS_ASSIGN_OR_RETURN(X509Ptr cert, ParseCert(pem));
  CertInfo info;
  info.not_before_unix = ToUnix(X509_get0_notBefore(cert.get()));
  info.not_after_unix = ToUnix(X509_get0_notAfter(cert.get()));
  info.is_ca = X509_check_ca(cert.get()) != 0;
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, i);
    if (gn->type == GEN_DNS) {
      const ASN1_IA5STRING* s = gn->d.dNSName;
      info.dns_names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                  static_cast<size_t>(ASN1_STRING_length(s)));
    } else if (gn->type == GEN_IPADD) {
      const ASN1_OCTET_STRING* s = gn->d.iPAddress;
      int len = ASN1_STRING_length(s);
      char text[INET6_ADDRSTRLEN] = {};
      if ((len == 4 || len == 16) &&
          inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(s), text, sizeof(text))) {
        info.ip_addresses.emplace_back(text);
      }
    }
  }
  GENERAL_NAMES_free(names);
  return info;
}

Result<std::vector<std::string>> SplitCertificates(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  std::vector<std::string> out;
  while (bio) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) break;
    out.push_back(ToPem(cert.get()));
  }
  // The loop ends at the end of the text (PEM_R_NO_START_LINE) or at a block that does not
  // parse; only the first is fine.
  unsigned long last = ERR_peek_last_error();
  bool clean_end = ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE;
  if (last != 0 && !clean_end) {
    return Fail(Code::kInvalidArgument, SslError("certificate PEM does not parse"));
  }
  ERR_clear_error();
  if (out.empty()) return Fail(Code::kInvalidArgument, "no certificate in PEM text");
  return out;
}

Status CheckKeyMatches(std::string_view cert_pem, std::string_view key_pem) {
  MS_ASSIGN_OR_RETURN(X509Ptr cert, ParseCert(cert_pem));
  MS_ASSIGN_OR_RETURN(KeyPtr key, ParseKey(key_pem));
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return Fail(Code::kInvalidArgument, "the private key does not match the certificate");
  }
  return Ok();
}

bool IsSignedBy(std::string_view cert_pem, std::string_view ca_pem) {
  auto cert = ParseCert(cert_pem);
  auto ca = ParseCert(ca_pem);
  if (!cert || !ca) return false;
  EVP_PKEY* pub = X509_get0_pubkey(ca->get());
  bool ok =
      pub != nullptr &&
      X509_NAME_cmp(X509_get_issuer_name(cert->get()), X509_get_subject_name(ca->get())) == 0 &&
      X509_verify(cert->get(), pub) == 1;
  ERR_clear_error();
  return ok;
}

Status CheckCovers(std::string_view cert_pem, const std::vector<std::string>& names) {
  MS_ASSIGN_OR_RETURN(X509Ptr cert, ParseCert(cert_pem));
  for (const auto& n : names) {
    bool ok = IsIpAddress(n) ? X509_check_ip_asc(cert.get(), n.c_str(), 0) == 1
                             : X509_check_host(cert.get(), n.data(), n.size(), 0, nullptr) == 1;
    if (!ok) return Fail(Code::kInvalidArgument, "tls.crt does not cover " + n);
  }
  return Ok();
}

}  // namespace modelswap::op
