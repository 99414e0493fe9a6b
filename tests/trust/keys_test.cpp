// Keys, signatures and ECU-signed reports.
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "fixture.hpp"
#include "ota/v1/ota.pb.h"

using namespace trust_test;
using ota::Code;
using ota::trust::PrivateKey;
using ota::trust::PublicKey;

TEST_CASE("P-256 keys round-trip through PEM files with a private mode", "[unit][trust]") {
  TempDir dir;
  const PrivateKey& key = Keys::get().root1;
  REQUIRE(key.key_id().size() == 64);

  const std::string kp = dir.path() + "/k.key", pp = dir.path() + "/k.pub";
  REQUIRE(key.save(kp).is_ok());
  REQUIRE(key.save_public(pp).is_ok());
  struct stat st;
  REQUIRE(::stat(kp.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);

  auto loaded = PrivateKey::load(kp);
  REQUIRE(loaded.is_ok());
  CHECK(loaded->key_id() == key.key_id());
  auto pub = PublicKey::load(pp);
  REQUIRE(pub.is_ok());
  CHECK(pub->key_id() == key.key_id());
  CHECK(ota::trust::key_id_of_pem(key.public_pem()).value() == key.key_id());

  // A signature by the loaded key verifies with the saved public key, and only over the same bytes.
  auto sig = loaded->sign("hello");
  REQUIRE(sig.is_ok());
  CHECK(pub->verify("hello", *sig));
  CHECK_FALSE(pub->verify("hellO", *sig));
  CHECK_FALSE(Keys::get().root2.public_key().verify("hello", *sig));
  std::string bad = *sig;
  bad[bad.size() / 2] ^= 1;
  CHECK_FALSE(pub->verify("hello", bad));
  CHECK_FALSE(pub->verify("hello", ""));
  CHECK_FALSE(pub->verify("hello", std::string(4096, 'x')));
}

TEST_CASE("key ids differ per key and malformed keys are refused", "[unit][trust]") {
  const Keys& k = Keys::get();
  CHECK(k.root1.key_id() != k.root2.key_id());
  CHECK(PublicKey::from_pem("garbage").status().code() == Code::kCorrupt);
  CHECK(PublicKey::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n").status().code() ==
        Code::kCorrupt);
  CHECK(PrivateKey::from_pem("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n")
            .status()
            .code() == Code::kCorrupt);
  // A private key PEM is not a public key.
  CHECK_FALSE(PublicKey::from_pem(k.root1.private_pem()).is_ok());
  // An EC key on another curve (P-384) is refused as unsupported.
  const char* p384 =
      "-----BEGIN PUBLIC KEY-----\n"
      "MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAE7orIjy4Yo0mH1wUFPo5+7qNSZvl7mOyn\n"
      "bmxbPFQzGEzVrnYb1dFZwpgWMl7XESA8xbY//ALHOuzkxHzrz89g831x5TW1yAYC\n"
      "kWXVB3/HH8uxcYKLF9lpJn4K9FHJ2geo\n"
      "-----END PUBLIC KEY-----\n";
  auto r = PublicKey::from_pem(p384);
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().code() == Code::kUnsupported);
}

TEST_CASE("ECU-signed reports verify only with the ECU's key", "[unit][trust]") {
  const Keys& k = Keys::get();
  const std::string report = "ecu-brake: INSTALLED 2.0.0";
  auto signed_report = ota::trust::sign_report(report, k.ecu);
  REQUIRE(signed_report.is_ok());

  auto body = ota::trust::verify_report(*signed_report, k.ecu.public_key());
  REQUIRE(body.is_ok());
  CHECK(*body == report);

  SECTION("the client cannot sign for the ECU") {
    auto forged = ota::trust::sign_report(report, k.director1);
    auto r = ota::trust::verify_report(forged.value(), k.ecu.public_key());
    CHECK(r.status().code() == Code::kSignatureInvalid);
  }
  SECTION("a changed report fails") {
    ota::v1::SignedMetadata env;
    REQUIRE(env.ParseFromString(*signed_report));
    env.set_body("ecu-brake: INSTALLED 9.9.9");
    auto r = ota::trust::verify_report(env.SerializeAsString(), k.ecu.public_key());
    CHECK(r.status().code() == Code::kSignatureInvalid);
    CHECK_THAT(r.status().message(), Catch::Contains("is invalid"));
  }
  SECTION("an oversized report is refused before parsing") {
    auto r = ota::trust::verify_report(std::string(100000, 'x'), k.ecu.public_key());
    CHECK(r.status().code() == Code::kRejected);
    CHECK_THAT(r.status().message(), Catch::Contains("endless data"));
  }
  SECTION("garbage is corrupt") {
    auto r = ota::trust::verify_report(std::string("\xff\xff\xff\xff", 4), k.ecu.public_key());
    CHECK(r.status().code() == Code::kCorrupt);
  }
}

TEST_CASE("ota.v1.Result carries an ECU signature the client can check", "[unit][trust]") {
  const Keys& k = Keys::get();
  ota::v1::Result r;
  r.set_ecu_id("ecu-brake");
  r.set_correlation_id("c-7");
  r.set_active_version("2.0.0");
  auto signed_result = ota::trust::sign_result(r.SerializeAsString(), k.ecu);
  REQUIRE(signed_result.is_ok());
  CHECK(ota::trust::verify_result_signature(*signed_result, k.ecu.public_key()).is_ok());

  SECTION("unsigned") {
    auto s = ota::trust::verify_result_signature(r.SerializeAsString(), k.ecu.public_key());
    CHECK(s.code() == Code::kSignatureInvalid);
    CHECK_THAT(s.message(), Catch::Contains("is not signed by the ECU"));
  }
  SECTION("the client claims success for the ECU") {
    ota::v1::Result forged;
    REQUIRE(forged.ParseFromString(*signed_result));
    forged.set_outcome(ota::v1::OUTCOME_OK);
    forged.set_active_version("9.9.9");
    auto s = ota::trust::verify_result_signature(forged.SerializeAsString(), k.ecu.public_key());
    CHECK(s.code() == Code::kSignatureInvalid);
    CHECK_THAT(s.message(), Catch::Contains("forged or altered"));
  }
  SECTION("signed by a process posing as the ECU") {
    auto other = ota::trust::sign_result(r.SerializeAsString(), k.attacker);
    auto s = ota::trust::verify_result_signature(other.value(), k.ecu.public_key());
    CHECK(s.code() == Code::kSignatureInvalid);
    CHECK_THAT(s.message(), Catch::Contains("not by the ECU's key"));
  }
}
