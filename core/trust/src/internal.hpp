// Internals of the trust layer shared by its sources and by the fuzz targets (which include this from
// tests/fuzz to reach the body decoders without valid signatures). Not a public header: it exposes
// protobuf types.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>

#include "ota/core/trust.hpp"
#include "ota/v1/trust.pb.h"

namespace ota::trust::detail {

// SHA-256 through mbedTLS: the same code the ECUs run, independent of the bulk-hashing backend.
Digest sha256(std::string_view data);
std::string hex(const uint8_t* p, size_t n);
inline std::string hex(const Digest& d) { return hex(d.data(), d.size()); }
// First 16 hex characters of a key id, for messages.
std::string short_id(const std::string& key_id);
// "2026-11-22T02:30:00Z"
std::string format_time(int64_t unix_seconds);
// Copies a 32-byte protobuf bytes field into a Digest; false for any other length.
bool to_digest(const std::string& bytes, Digest* out);

// The keys of one role, as the current root defines them.
struct RoleSpec {
  std::string name;                       // "root", "image", "director"
  std::map<std::string, PublicKey> keys;  // key_id -> key
  uint32_t threshold = 0;
  std::set<std::string> revoked;  // key ids that held this role in an older root
};

// A decoded, structurally valid root.
struct RootInfo {
  uint64_t version = 0;
  int64_t expires = 0;
  RoleSpec root, image, director;
};

// Rejects input above cap before parsing, then parses the envelope. what names the document in
// messages ("director metadata").
Result<ota::v1::SignedMetadata> parse_envelope(std::string_view bytes, size_t cap, const Limits& limits,
                                               const std::string& what);

// Counts valid signatures over env.body by distinct keys of role; kSignatureInvalid with the count
// and the reasons keys did not count if fewer than role.threshold.
Status check_threshold(const ota::v1::SignedMetadata& env, const RoleSpec& role, const std::string& what);

// Structural decoding of role bodies. They check types, lengths and caps, not signatures, expiry or
// counters.
Result<RootInfo> decode_root(std::string_view body, const Limits& limits);
Result<VerifiedImages> decode_image(std::string_view body, const Limits& limits);

struct DirectorInfo {
  VerifiedCampaign campaign;  // targets without .image, groups filled and sorted
};
Result<DirectorInfo> decode_director(std::string_view body, const Limits& limits);

// Parses, self-verifies (threshold of its own root keys) and decodes a signed root.
Result<RootInfo> verify_self_signed_root(std::string_view signed_root, const Limits& limits);

// One root rotation from `current`: the next root must be version current + 1 and be signed by a
// threshold of the current root keys (they vouch for the change) and of its own root keys (proof the
// new keys are held). Shared by the client's TrustStore and the agents' AgentVerifier.
Result<RootInfo> verify_root_rotation(const RootInfo& current, std::string_view signed_root,
                                      const Limits& limits);

Status check_expiry(int64_t expires, int64_t now, const std::string& what);

// Counter state file of the TrustStore: "<version> <sha256 hex> <0|1>\n". False on anything else.
bool parse_counter(std::string_view text, uint64_t* version, Digest* sha, bool* done);

// Mix-and-match and hardware checks of one director target against the verified image metadata.
// Fills target->image on success.
Status match_image(CampaignTarget* target, const VerifiedImages& images);

}  // namespace ota::trust::detail
