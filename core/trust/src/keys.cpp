// ECDSA P-256 keys through mbedTLS (the library the ECUs run), and small helpers of the trust layer.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <mutex>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>

#include "internal.hpp"
#include "ota/core/file.hpp"

namespace ota::trust {

namespace detail {

Digest sha256(std::string_view data) {
  Digest d{};
  // mbedtls_sha256_ret only fails on hardware-accelerator errors, which this build does not use.
  (void)mbedtls_sha256_ret(reinterpret_cast<const unsigned char*>(data.data()), data.size(), d.data(), 0);
  return d;
}

std::string hex(const uint8_t* p, size_t n) {
  static const char kDigits[] = "0123456789abcdef";
  std::string s(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    s[2 * i] = kDigits[p[i] >> 4];
    s[2 * i + 1] = kDigits[p[i] & 0xf];
  }
  return s;
}

std::string short_id(const std::string& key_id) {
  // Key ids come from untrusted input too: bound what goes into a message.
  return key_id.size() > 16 ? key_id.substr(0, 16) : key_id;
}

std::string format_time(int64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  if (gmtime_r(&tt, &tm) == nullptr) return std::to_string(t);
  char buf[32];
  if (std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) return std::to_string(t);
  return buf;
}

bool to_digest(const std::string& bytes, Digest* out) {
  if (bytes.size() != out->size()) return false;
  std::memcpy(out->data(), bytes.data(), out->size());
  return true;
}

}  // namespace detail

namespace {

std::string mbed_error(int rc) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "-0x%04x", static_cast<unsigned>(-rc));
  return std::string("mbedTLS error ") + buf;
}

// A DRBG seeded from the OS entropy source, per operation: signing and key generation are rare, and
// per-call state avoids sharing a DRBG across threads.
class Rng {
 public:
  Rng() {
    mbedtls_entropy_init(&entropy_);
    mbedtls_ctr_drbg_init(&drbg_);
    static const unsigned char kPers[] = "ota-trust";
    rc_ = mbedtls_ctr_drbg_seed(&drbg_, mbedtls_entropy_func, &entropy_, kPers, sizeof kPers - 1);
  }
  ~Rng() {
    mbedtls_ctr_drbg_free(&drbg_);
    mbedtls_entropy_free(&entropy_);
  }
  Rng(const Rng&) = delete;
  Rng& operator=(const Rng&) = delete;
  int rc() const { return rc_; }
  mbedtls_ctr_drbg_context* ctx() { return &drbg_; }

 private:
  mbedtls_entropy_context entropy_;
  mbedtls_ctr_drbg_context drbg_;
  int rc_ = 0;
};

// RAII for mbedtls_pk_context.
struct Pk {
  Pk() { mbedtls_pk_init(&ctx); }
  ~Pk() { mbedtls_pk_free(&ctx); }
  Pk(const Pk&) = delete;
  Pk& operator=(const Pk&) = delete;
  mbedtls_pk_context ctx;
};

Status check_p256(mbedtls_pk_context* pk) {
  if (mbedtls_pk_get_type(pk) != MBEDTLS_PK_ECKEY)
    return make_error(Code::kUnsupported, "key is not an EC key");
  if (mbedtls_pk_ec(*pk)->grp.id != MBEDTLS_ECP_DP_SECP256R1)
    return make_error(Code::kUnsupported, "EC key is not on curve P-256");
  return Status::ok();
}

// DER SubjectPublicKeyInfo and PEM of a parsed key.
Status export_public(mbedtls_pk_context* pk, std::string* der, std::string* pem) {
  unsigned char buf[512];
  int n = mbedtls_pk_write_pubkey_der(pk, buf, sizeof buf);
  if (n <= 0) return make_error(Code::kInternal, "write public key DER: " + mbed_error(n));
  // mbedtls writes DER at the end of the buffer.
  der->assign(reinterpret_cast<const char*>(buf + sizeof buf - n), static_cast<size_t>(n));
  unsigned char pbuf[1024];
  int rc = mbedtls_pk_write_pubkey_pem(pk, pbuf, sizeof pbuf);
  if (rc != 0) return make_error(Code::kInternal, "write public key PEM: " + mbed_error(rc));
  pem->assign(reinterpret_cast<const char*>(pbuf));
  return Status::ok();
}

}  // namespace

// ------------------------------------------------------------------------------------------------

struct PublicKey::Impl {
  // mbedtls_pk_verify takes a non-const context and the ECP code caches precomputation in the group,
  // so concurrent verifies with one key are serialised.
  mutable std::mutex mu;
  mutable Pk pk;
  std::string key_id;
  std::string pem;
};

Result<PublicKey> PublicKey::from_pem(std::string_view pem) {
  if (pem.size() > 4096) return make_error(Code::kCorrupt, "public key PEM is too large");
  if (pem.find("-----BEGIN PUBLIC KEY-----") == std::string_view::npos)
    return make_error(Code::kCorrupt, "not a PEM public key");
  auto impl = std::make_shared<Impl>();
  // PEM parsing needs a NUL-terminated buffer whose length includes the NUL.
  std::string buf(pem);
  int rc = mbedtls_pk_parse_public_key(&impl->pk.ctx, reinterpret_cast<const unsigned char*>(buf.c_str()),
                                       buf.size() + 1);
  if (rc != 0) return make_error(Code::kCorrupt, "cannot parse public key: " + mbed_error(rc));
  OTA_RETURN_IF_ERROR(check_p256(&impl->pk.ctx));
  std::string der;
  OTA_RETURN_IF_ERROR(export_public(&impl->pk.ctx, &der, &impl->pem));
  impl->key_id = detail::hex(detail::sha256(der));
  return PublicKey(std::move(impl));
}

Result<PublicKey> PublicKey::load(const std::string& path) {
  auto text = read_small_file(path, 4096);
  if (!text) return text.status().with_context("public key " + path);
  auto k = from_pem(*text);
  if (!k) return k.status().with_context("public key " + path);
  return k;
}

const std::string& PublicKey::key_id() const { return impl_->key_id; }
const std::string& PublicKey::pem() const { return impl_->pem; }

bool PublicKey::verify(std::string_view message, std::string_view der_sig) const {
  // A DER P-256 signature is at most 72 bytes; anything longer is not worth parsing.
  if (der_sig.empty() || der_sig.size() > MBEDTLS_ECDSA_MAX_LEN) return false;
  Digest h = detail::sha256(message);
  std::lock_guard<std::mutex> lock(impl_->mu);
  return mbedtls_pk_verify(&impl_->pk.ctx, MBEDTLS_MD_SHA256, h.data(), h.size(),
                           reinterpret_cast<const unsigned char*>(der_sig.data()), der_sig.size()) == 0;
}

Result<std::string> key_id_of_pem(std::string_view public_pem) {
  auto k = PublicKey::from_pem(public_pem);
  if (!k) return k.status();
  return k->key_id();
}

// ------------------------------------------------------------------------------------------------

struct PrivateKey::Impl {
  mutable std::mutex mu;
  mutable Pk pk;
  std::string key_id;
  std::string public_pem;
};

namespace {

Result<PrivateKey> finish_private(std::shared_ptr<PrivateKey::Impl> impl) {
  OTA_RETURN_IF_ERROR(check_p256(&impl->pk.ctx));
  std::string der;
  OTA_RETURN_IF_ERROR(export_public(&impl->pk.ctx, &der, &impl->public_pem));
  impl->key_id = detail::hex(detail::sha256(der));
  return PrivateKey(std::move(impl));
}

}  // namespace

Result<PrivateKey> PrivateKey::generate() {
  Rng rng;
  if (rng.rc() != 0) return make_error(Code::kInternal, "seed DRBG: " + mbed_error(rng.rc()));
  auto impl = std::make_shared<Impl>();
  int rc = mbedtls_pk_setup(&impl->pk.ctx, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
  if (rc != 0) return make_error(Code::kInternal, "pk setup: " + mbed_error(rc));
  rc = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(impl->pk.ctx), mbedtls_ctr_drbg_random,
                           rng.ctx());
  if (rc != 0) return make_error(Code::kInternal, "generate P-256 key: " + mbed_error(rc));
  return finish_private(std::move(impl));
}

Result<PrivateKey> PrivateKey::from_pem(std::string_view pem) {
  if (pem.size() > 8192) return make_error(Code::kCorrupt, "private key PEM is too large");
  if (pem.find("-----BEGIN") == std::string_view::npos)
    return make_error(Code::kCorrupt, "not a PEM private key");
  auto impl = std::make_shared<Impl>();
  std::string buf(pem);
  int rc = mbedtls_pk_parse_key(&impl->pk.ctx, reinterpret_cast<const unsigned char*>(buf.c_str()),
                                buf.size() + 1, nullptr, 0);
  mbedtls_platform_zeroize(buf.data(), buf.size());
  if (rc != 0) return make_error(Code::kCorrupt, "cannot parse private key: " + mbed_error(rc));
  return finish_private(std::move(impl));
}

Result<PrivateKey> PrivateKey::load(const std::string& path) {
  auto text = read_small_file(path, 8192);
  if (!text) return text.status().with_context("private key " + path);
  auto k = from_pem(*text);
  mbedtls_platform_zeroize(text->data(), text->size());
  if (!k) return k.status().with_context("private key " + path);
  return k;
}

std::string PrivateKey::private_pem() const {
  unsigned char buf[2048];
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (mbedtls_pk_write_key_pem(&impl_->pk.ctx, buf, sizeof buf) != 0) return std::string();
  std::string out(reinterpret_cast<const char*>(buf));
  mbedtls_platform_zeroize(buf, sizeof buf);
  return out;
}

Status PrivateKey::save(const std::string& path) const {
  std::string pem = private_pem();
  if (pem.empty()) return make_error(Code::kInternal, "cannot encode private key");
  Status s = atomic_write_file(path, pem, 0600);
  mbedtls_platform_zeroize(pem.data(), pem.size());
  return s;
}

Status PrivateKey::save_public(const std::string& path) const {
  // A public key is meant to be handed out.
  return atomic_write_file(path, impl_->public_pem, 0644);
}

const std::string& PrivateKey::key_id() const { return impl_->key_id; }
const std::string& PrivateKey::public_pem() const { return impl_->public_pem; }

PublicKey PrivateKey::public_key() const {
  // The PEM was produced by mbedTLS from this key: parsing it back cannot fail.
  return PublicKey::from_pem(impl_->public_pem).value();
}

Result<std::string> PrivateKey::sign(std::string_view message) const {
  Rng rng;
  if (rng.rc() != 0) return make_error(Code::kInternal, "seed DRBG: " + mbed_error(rng.rc()));
  Digest h = detail::sha256(message);
  unsigned char sig[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
  size_t len = 0;
  std::lock_guard<std::mutex> lock(impl_->mu);
  int rc = mbedtls_pk_sign(&impl_->pk.ctx, MBEDTLS_MD_SHA256, h.data(), h.size(), sig, &len,
                           mbedtls_ctr_drbg_random, rng.ctx());
  if (rc != 0) return make_error(Code::kInternal, "ECDSA sign: " + mbed_error(rc));
  return std::string(reinterpret_cast<const char*>(sig), len);
}

// ------------------------------------------------------------------------------------------------

int64_t SystemClock::now() const { return static_cast<int64_t>(std::time(nullptr)); }

}  // namespace ota::trust
