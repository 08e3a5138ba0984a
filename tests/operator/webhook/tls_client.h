// A minimal HTTPS/1.1 client on raw OpenSSL for the webhook's tests and benchmark: it verifies
// the server like the API server does (chain to the given CA, hostname = the Service DNS name
// via SNI + X509 host check) and keeps the connection alive between requests.
// Header-only. Not thread-safe: one client per thread.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <string>

#include "common/status.h"

namespace modelswap::op::testing {

inline std::string ReadFileForBench(const std::string& path) {
  std::string out;
  if (FILE* f = std::fopen(path.c_str(), "rb")) {
    char buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0)
      out.append(buf, n);
    std::fclose(f);
  }
  return out;
}

struct HttpResponse {
  int status = 0;
  std::string body;
};

class TlsClient {
 public:
  ~TlsClient() { Close(); }

  // Connects to ip:port (IPv4 or IPv6 literal) and completes the handshake, trusting only the
  // certificates of ca_pem (every one of a bundle, as the API server reads a caBundle) and
  // checking `host` (a DNS name or an IP address) like the API server does. verify_at_unix
  // (when set) is the time the chain is checked at, for tests that move a fake clock.
  Status Connect(int port, const std::string& ca_pem, const std::string& host,
                 const std::string& ip = "127.0.0.1", int64_t verify_at_unix = 0) {
    // OpenSSL writes with write(2): a server that closes the connection (one refusing the
    // handshake) must be an error here, not a SIGPIPE that kills the test process.
    std::signal(SIGPIPE, SIG_IGN);
    Close();
    ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
    BIO* bio = BIO_new_mem_buf(ca_pem.data(), static_cast<int>(ca_pem.size()));
    int trusted = 0;
    while (X509* ca = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
      X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx_), ca);
      X509_free(ca);
      ++trusted;
    }
    BIO_free(bio);
    ERR_clear_error();
    if (trusted == 0) return Fail(Code::kInvalidArgument, "CA PEM does not parse");
    if (verify_at_unix != 0) {
      X509_VERIFY_PARAM_set_time(SSL_CTX_get0_param(ctx_), static_cast<time_t>(verify_at_unix));
    }
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    sockaddr_storage a{};
    socklen_t len = 0;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&a);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&a);
    if (inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
      v4->sin_family = AF_INET;
      v4->sin_port = htons(static_cast<uint16_t>(port));
      len = sizeof(sockaddr_in);
    } else if (inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
      v6->sin6_family = AF_INET6;
      v6->sin6_port = htons(static_cast<uint16_t>(port));
      len = sizeof(sockaddr_in6);
    } else {
      return Fail(Code::kInvalidArgument, "not an IP address: " + ip);
    }
    fd_ = ::socket(a.ss_family, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    // A safety net only: a server that never answers fails the caller instead of hanging it.
    timeval safety{.tv_sec = 30, .tv_usec = 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &safety, sizeof(safety));
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), len) != 0) {
      return Fail(Code::kUnavailable, "connect to " + ip + ":" + std::to_string(port));
    }
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    unsigned char raw[16];
    bool host_is_ip =
        inet_pton(AF_INET, host.c_str(), raw) == 1 || inet_pton(AF_INET6, host.c_str(), raw) == 1;
    if (host_is_ip) {
      // No SNI for an address (RFC 6066 3); the check is against the IP SANs.
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), host.c_str());
    } else {
      SSL_set_tlsext_host_name(ssl_, host.c_str());
      SSL_set1_host(ssl_, host.c_str());
    }
    if (SSL_connect(ssl_) != 1) {
      long verify = SSL_get_verify_result(ssl_);
      ERR_clear_error();
      return Fail(Code::kPermissionDenied,
                  std::string("TLS handshake failed: ") + X509_verify_cert_error_string(verify));
    }
    return Ok();
  }

  // The serving certificate's subject CN (to tell rotated certificates apart).
  std::string PeerCommonName() const {
    X509* cert = SSL_get1_peer_certificate(ssl_);
    if (cert == nullptr) return "";
    char buf[256] = {};
    X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof(buf));
    X509_free(cert);
    return buf;
  }

  Result<HttpResponse> Request(const std::string& method, const std::string& path,
                               const std::string& body) {
    return RequestRaw(method + " " + path + " HTTP/1.1\r\nHost: webhook\r\n" +
                      "Content-Type: application/json\r\nAccept: application/json, */*\r\n" +
                      "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  }

  // Sends `req` as it is (request line, headers and body) and reads one response.
  Result<HttpResponse> RequestRaw(const std::string& req) {
    MS_RETURN_IF_ERROR(Send(req));
    return ReadResponse();
  }

  // Reads one response (after Send).
  Result<HttpResponse> Receive() { return ReadResponse(); }

  // Sends bytes without waiting for anything (a client that stalls after them).
  Status Send(const std::string& bytes) {
    if (SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size())) <= 0) {
      ERR_clear_error();
      return Fail(Code::kUnavailable, "TLS write failed");
    }
    return Ok();
  }

  void Close() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    if (fd_ >= 0) ::close(fd_);
    if (ctx_ != nullptr) SSL_CTX_free(ctx_);
    ssl_ = nullptr;
    ctx_ = nullptr;
    fd_ = -1;
    buf_.clear();
  }

 private:
  bool Fill() {
    char chunk[16384];
    int n = SSL_read(ssl_, chunk, sizeof(chunk));
    if (n <= 0) return false;
    buf_.append(chunk, static_cast<size_t>(n));
    return true;
  }

  // Parses one response with Content-Length framing (what cpprestsdk sends).
  Result<HttpResponse> ReadResponse() {
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return Fail(Code::kUnavailable, "connection closed before headers");
    }
    std::string head = buf_.substr(0, end);
    HttpResponse r;
    r.status = std::stoi(head.substr(9, 3));
    size_t length = 0;
    for (size_t at = 0; (at = head.find("\r\n", at)) != std::string::npos;) {
      at += 2;
      std::string line = head.substr(at, head.find("\r\n", at) - at);
      for (auto& c : line)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (line.starts_with("content-length:")) length = std::stoul(line.substr(15));
    }
    while (buf_.size() < end + 4 + length) {
      if (!Fill()) return Fail(Code::kUnavailable, "connection closed inside the body");
    }
    r.body = buf_.substr(end + 4, length);
    buf_.erase(0, end + 4 + length);
    return r;
  }

  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  int fd_ = -1;
  std::string buf_;
};

}  // namespace modelswap::op::testing
