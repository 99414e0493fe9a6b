// The trust layer: ECDSA P-256 keys, Uptane-style signed metadata (root, image, director roles), the
// vehicle-side verifier (TrustStore), the agent-side per-ECU target check, and ECU-signed reports.
//
// Wire format: proto/ota/v1/trust.proto. This header exposes no mbedTLS or protobuf types: metadata
// travels as serialized bytes (std::string), verified results come back as plain structs.
//
// Contract for every verify function: the input is untrusted. Its size is checked against a cap
// before anything is parsed; signatures are checked before the body is interpreted; every failure is
// a Status with a specific Code (kSignatureInvalid, kRejected, kCorrupt, kUnsupported) and a message
// that names the reason.
//
// How the pieces fit end to end (client = vehicle orchestrator, agent = one per ECU):
//   Platform: ota-keygen makes role keys; make_root_body + sign() with a threshold of root keys gives
//     the provisioned root (root.signed on the vehicle and on each agent). Per release,
//     make_image_body + sign(image keys); per vehicle campaign, make_director_body + sign(director
//     keys). The cloud ships both signed blobs with the campaign.
//   Client: TrustStore::open(root file, state dir, clock) at start-up; update_root() for each newer
//     root the cloud sends (SignedCampaign.root_updates), in order; verify_campaign(director, image,
//     vehicle inventory) before any byte reaches an agent, and run the campaign only from the
//     VerifiedCampaign it returns (sizes, hashes, payload hashes, groups, pre-conditions);
//     check_payload() on each downloaded payload; verify_result_signature() on each agent result
//     when the ECU key is known;
//     mark_campaign_finished() once the campaign has ended (success, failure, rollback or cancel).
//   Agent: AgentVerifier::from_root(provisioned root, or the newer one it accepted) at start-up; on
//     StartTransfer, update_root() for each of its root_updates above root_version(), then
//     verify_target(Target.signed_target = the director SignedMetadata bytes, "", identity, clock)
//     and refuse the transfer if it fails or if the wire Target's size/sha256 differ from the
//     signed one; after writing the inactive bank, check_installed(); sign_result() on its Results.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ota/core/sha256.hpp"
#include "ota/core/status.hpp"

namespace ota::trust {

// ------------------------------------------------------------------------------------------------
// Keys
// ------------------------------------------------------------------------------------------------

// An ECDSA P-256 public key. Copyable (shared immutable state).
class PublicKey {
 public:
  // Accepts PEM (SubjectPublicKeyInfo). Fails with kCorrupt on anything else, kUnsupported for a
  // key that is not ECDSA P-256.
  static Result<PublicKey> from_pem(std::string_view pem);
  static Result<PublicKey> load(const std::string& path);

  // Lowercase hex SHA-256 of the DER SubjectPublicKeyInfo.
  const std::string& key_id() const;
  const std::string& pem() const;
  // True iff der_sig is a valid ECDSA signature over SHA-256(message) by this key.
  bool verify(std::string_view message, std::string_view der_sig) const;

  struct Impl;
  explicit PublicKey(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  const Impl& impl() const { return *impl_; }

 private:
  std::shared_ptr<const Impl> impl_;
};

// An ECDSA P-256 private key. Copyable (shared immutable state).
class PrivateKey {
 public:
  static Result<PrivateKey> generate();
  // Accepts an unencrypted PEM private key (SEC1 or PKCS#8).
  static Result<PrivateKey> from_pem(std::string_view pem);
  static Result<PrivateKey> load(const std::string& path);
  // Writes the private PEM with mode 0600 (atomically).
  Status save(const std::string& path) const;
  // Writes the public PEM (mode 0644).
  Status save_public(const std::string& path) const;

  const std::string& key_id() const;
  std::string private_pem() const;
  const std::string& public_pem() const;
  PublicKey public_key() const;
  // DER ECDSA signature over SHA-256(message).
  Result<std::string> sign(std::string_view message) const;

  struct Impl;
  explicit PrivateKey(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

 private:
  std::shared_ptr<const Impl> impl_;
};

// Key id of a PEM public key (see PublicKey::key_id).
Result<std::string> key_id_of_pem(std::string_view public_pem);

// ------------------------------------------------------------------------------------------------
// Signing (platform side: the simulated platform, ota-pack, tests). Defined in ota_signing
// (platform/signing), which vehicle code does not link.
// ------------------------------------------------------------------------------------------------

// Wraps body (a serialized ota.v1 role message) in a serialized ota.v1.SignedMetadata carrying one
// signature per key, in the order given.
Result<std::string> sign(std::string_view body, const std::vector<PrivateKey>& keys);

// Adds one more signature to an existing SignedMetadata (e.g. a second root key holder co-signs).
Result<std::string> add_signature(std::string_view signed_metadata, const PrivateKey& key);

// ------------------------------------------------------------------------------------------------
// Trusted time and limits
// ------------------------------------------------------------------------------------------------

// Source of trusted time (unix seconds). Expiry is checked against it: the freeze defence is only as
// good as this clock, so a vehicle should back it with a time source it trusts.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t now() const = 0;
};

class SystemClock final : public Clock {
 public:
  int64_t now() const override;
};

// For tests and for callers that obtained a trusted time elsewhere.
class FixedClock final : public Clock {
 public:
  explicit FixedClock(int64_t t) : t_(t) {}
  int64_t now() const override { return t_; }
  void set(int64_t t) { t_ = t; }

 private:
  int64_t t_;
};

// Caps on untrusted metadata ("endless data" defence). Input above a cap is rejected (kRejected)
// before any parsing.
struct Limits {
  size_t max_root_bytes = 64 * 1024;
  size_t max_image_bytes = 1024 * 1024;
  size_t max_director_bytes = 256 * 1024;
  size_t max_signatures = 16;                   // more signatures than this: rejected before verifying any
  size_t max_keys = 64;                         // keys in one root
  size_t max_targets = 512;                     // images in image metadata, targets in director metadata
  uint64_t max_image_size = uint64_t{1} << 34;  // 16 GiB: a target claiming more is rejected
  size_t max_root_updates = 16;                 // roots in one rotation chain (root_updates)
};

// ------------------------------------------------------------------------------------------------
// Verified content (plain structs)
// ------------------------------------------------------------------------------------------------

struct PayloadInfo {
  Digest sha256{};
  uint64_t size = 0;
  std::string encoding;
};

struct DeltaInfo {
  std::string base_version;
  uint64_t base_version_number = 0;
  Digest base_sha256{};
  uint64_t base_size = 0;
  PayloadInfo payload;
};

struct ImageInfo {
  std::string name;
  std::string version;
  uint64_t version_number = 0;
  uint64_t size = 0;
  Digest sha256{};
  std::vector<std::string> hardware_ids;
  bool has_full = false;
  PayloadInfo full;  // valid iff has_full
  std::vector<DeltaInfo> deltas;
};

struct VerifiedImages {
  uint64_t version = 0;
  int64_t expires = 0;
  std::vector<ImageInfo> images;
  const ImageInfo* find(const std::string& name, uint64_t version_number) const;
};

struct CampaignTarget {
  std::string ecu_id;
  std::string hardware_id;
  std::string image_name;
  std::string version;
  uint64_t version_number = 0;
  Digest sha256{};
  uint64_t size = 0;
  bool allow_downgrade = false;
  uint32_t group = 0;
  std::vector<uint32_t> clear_dtcs;  // UDS DTC numbers to clear after commit
  ImageInfo image;                   // the matching, verified image metadata entry (payloads, deltas)
};

struct CampaignGroup {
  uint32_t id = 0;
  uint32_t order = 0;
  bool atomic = false;
};

struct Preconditions {
  bool require_parked = false;
  bool require_ignition_off = false;
  uint32_t min_battery_percent = 0;
};

struct VerifiedCampaign {
  std::string vin;
  std::string campaign_id;
  uint64_t version = 0;
  int64_t expires = 0;
  std::vector<CampaignTarget> targets;
  // One entry per group used by a target (defaults filled in), sorted by (order, id).
  std::vector<CampaignGroup> groups;
  Preconditions preconditions;
  // Whether the owner must consent (DirectorMetadata.require_consent). Empty: the metadata was
  // signed before the field existed and does not say; the client then asks.
  std::optional<bool> require_consent;
  Digest director_sha256{};  // SHA-256 of the signed director bytes as received
  // True when this exact director metadata was already accepted and its campaign is not finished:
  // the client is resuming after a restart, not facing a replay.
  bool resumed = false;
};

// What the vehicle knows about itself, from its own configuration and the agents' inventory.
struct VehicleInfo {
  std::string vin;
  std::map<std::string, std::string> ecu_hardware_ids;  // ecu_id -> hardware id reported by its agent
  // Optional: ecu_id -> active version string reported by its agent. When present, a target whose
  // version compares lower (compare_versions) is refused unless allow_downgrade; the agent checks again.
  std::map<std::string, std::string> ecu_active_versions;
};

// ------------------------------------------------------------------------------------------------
// Metadata builders (platform side): plain structs in, serialized role bodies out, ready for sign().
// Defined in ota_signing (platform/signing), which vehicle code does not link.
// ------------------------------------------------------------------------------------------------

struct RoleKeysSpec {
  std::vector<std::string> public_pems;  // ids are computed from the keys
  uint32_t threshold = 1;
};

struct RootSpec {
  uint64_t version = 1;
  int64_t expires = 0;  // unix seconds
  RoleKeysSpec root, image, director;
};

// kCorrupt/kUnsupported for a PEM that is not a P-256 public key; kInvalidArgument for a threshold
// outside 1..keys.
Result<std::string> make_root_body(const RootSpec& spec);
// images: name, version, version_number, size, sha256, hardware_ids, full (if has_full), deltas.
std::string make_image_body(uint64_t version, int64_t expires, const std::vector<ImageInfo>& images);
// From vin, campaign_id, version, expires, targets (all fields but .image), groups, preconditions,
// require_consent (written only when set).
std::string make_director_body(const VerifiedCampaign& campaign);

// ------------------------------------------------------------------------------------------------
// Vehicle-side verifier (used by the client before a byte reaches an agent)
// ------------------------------------------------------------------------------------------------

// Holds the trusted root and the persisted counters. Not thread-safe; one per client process.
//
// State in state_dir (written with atomic_write_file):
//   root.signed      the latest accepted root (SignedMetadata bytes)
//   revoked          key ids dropped from a role by a root rotation, one "role key_id" per line
//   image.counter    "version sha256hex" of the latest accepted image metadata
//   director.counter "version sha256hex done(0|1)" of the latest accepted director metadata
class TrustStore {
 public:
  // root_file: the provisioned root (SignedMetadata bytes), which must be signed by a threshold of
  // its own root keys. If state_dir holds a newer root accepted earlier, that one is used.
  // The clock must outlive the store.
  static Result<std::unique_ptr<TrustStore>> open(const std::string& root_file, const std::string& state_dir,
                                                  const Clock& clock, Limits limits = {});
  ~TrustStore();

  // Applies one root rotation: the new root's version must be current + 1, it must be signed by a
  // threshold of the current root keys and a threshold of its own root keys. Persisted on success.
  // Call once per version, in order, to walk a chain.
  Status update_root(std::string_view signed_root);

  // Verifies image metadata (signatures by the root's image role, not expired, version not below the
  // persisted one and equal only for identical bytes) and persists its version.
  Result<VerifiedImages> verify_image_metadata(std::string_view signed_image);

  // Full verification of a campaign: the image metadata as above; the director metadata signed by
  // the director role, not expired, for vehicle.vin, version strictly above the persisted counter
  // (or the same bytes as an accepted, unfinished campaign: resumed = true); every target's ECU is in
  // vehicle.ecu_hardware_ids with the same hardware id, the image exists in the image metadata with
  // that hardware id allowed, and name/version/sha256/size agree (mix-and-match). Persists the
  // counters on success.
  Result<VerifiedCampaign> verify_campaign(std::string_view signed_director, std::string_view signed_image,
                                           const VehicleInfo& vehicle);

  // Records that the campaign with this director version is finished (success, failure or cancel):
  // its metadata can no longer be "resumed", only replaced by a higher version.
  Status mark_campaign_finished(uint64_t director_version);

  // The director version of the accepted, unfinished campaign whose signed director metadata is
  // exactly `signed_director` (SignedMetadata bytes, as the journal keeps them in every target):
  // how a campaign resumed after a restart, without being verified again, finds the counter it
  // must mark finished. kNotFound when the counter holds another campaign or a finished one;
  // kCorrupt/kRejected when the bytes are not a director envelope under the caps.
  Result<uint64_t> unfinished_campaign(std::string_view signed_director) const;

  uint64_t root_version() const;
  uint64_t director_version() const;  // 0 if none accepted yet
  uint64_t image_version() const;
  // The current root as SignedMetadata bytes (to provision agents or hand them a rotation).
  const std::string& signed_root() const;

  struct Impl;

 private:
  explicit TrustStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// ------------------------------------------------------------------------------------------------
// Agent-side verifier: checks the target handed to one ECU with only the keys it was provisioned with
// ------------------------------------------------------------------------------------------------

// The agent receives the director's SignedMetadata (the whole campaign, capped by
// Limits::max_director_bytes, so memory is bounded) and, optionally, the image SignedMetadata; it
// picks its own target by ecu_id. Without image metadata this is Uptane "partial verification"; with
// it, the image role's signatures and the hash/size agreement are checked too.
struct AgentIdentity {
  std::string ecu_id;
  std::string hardware_id;
  std::string vin;                     // empty: not checked (agent not told its VIN)
  uint64_t active_version_number = 0;  // version_number of the image in the active bank (0: unknown)
  std::string active_version;          // its version string, compared when the number is unknown
  uint64_t min_director_version = 0;   // agent's own persisted counter (0: none); the campaign's
                                       // version must be >= this (equal = same campaign re-sent)
};

struct AgentTarget {
  std::string vin;
  std::string campaign_id;
  uint64_t director_version = 0;
  CampaignTarget target;  // target.image is filled only when image metadata was verified
  bool image_verified = false;
};

class AgentVerifier {
 public:
  // From the root (SignedMetadata bytes) the agent was provisioned with; the root must be signed by a
  // threshold of its own root keys. The director and image keys and thresholds are taken from it.
  static Result<AgentVerifier> from_root(std::string_view signed_root, Limits limits = {});
  // From bare PEM keys and thresholds (agents that are given only the role keys).
  static Result<AgentVerifier> from_keys(const std::vector<std::string>& director_pems,
                                         uint32_t director_threshold,
                                         const std::vector<std::string>& image_pems, uint32_t image_threshold,
                                         Limits limits = {});
  ~AgentVerifier();
  AgentVerifier(AgentVerifier&&) noexcept;
  // Root rotation as TrustStore::update_root (version + 1, thresholds of the old and the new root
  // keys); only for a verifier made from_root. The caller persists signed_root() when it returns OK.
  Status update_root(std::string_view signed_root);
  // The root in force (empty for a verifier made from_keys) and its version (0 for from_keys).
  const std::string& signed_root() const;
  uint64_t root_version() const;
  AgentVerifier& operator=(AgentVerifier&&) noexcept;

  // Verifies the director signatures (threshold), VIN (if known), expiry (if clock given), counter,
  // and finds this ECU's target: hardware id must match, and a version_number below the active one is
  // refused (kRejected) unless allow_downgrade. signed_image may be empty.
  Result<AgentTarget> verify_target(std::string_view signed_director, std::string_view signed_image,
                                    const AgentIdentity& me, const Clock* clock = nullptr) const;

  struct Impl;

 private:
  explicit AgentVerifier(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The version a signed root claims, read WITHOUT checking a signature: only to skip the roots of a
// rotation chain (SignedCampaign.root_updates) at or below the version already in force. Every root
// above it goes through update_root, which verifies it. kCorrupt/kRejected as for any root.
Result<uint64_t> claimed_root_version(std::string_view signed_root, const Limits& limits = {});

// A downloaded payload (full or delta) against the verified PayloadInfo: kHashMismatch naming both
// values when size or SHA-256 differ. The downloader must also stop reading at payload.size bytes
// (endless data) rather than rely on this check after the fact.
Status check_payload(const PayloadInfo& payload, const Digest& sha256, uint64_t size,
                     const std::string& what);

// After writing the image to the inactive bank: its hash and size must be the target's
// (kHashMismatch otherwise, naming expected and actual).
Status check_installed(const CampaignTarget& target, const Digest& sha256, uint64_t size);

// Downgrade rule alone (also applied by verify_target): kRejected if target.version_number is below
// active_version_number and !target.allow_downgrade. When active_version_number is 0 (unknown) and
// active_version is given, the version strings are compared with compare_versions instead.
Status check_downgrade(const CampaignTarget& target, uint64_t active_version_number,
                       std::string_view active_version = {});

// Orders version strings the semver way ("1.10.0" > "1.9.3", "2.0.0-rc.1" < "2.0.0", build metadata
// after '+' ignored; a leading 'v' ignored). Components that are not numbers compare as text, so any
// two strings are ordered. Returns <0, 0 or >0.
int compare_versions(std::string_view a, std::string_view b);

// ------------------------------------------------------------------------------------------------
// ECU-signed reports
// ------------------------------------------------------------------------------------------------

// Signs a serialized report (e.g. an ota.v1 status/result message) with the ECU's own key; returns
// SignedMetadata bytes.
Result<std::string> sign_report(std::string_view report, const PrivateKey& ecu_key);

// Verifies a signed report against the ECU's public key and returns the report bytes. The client
// cannot forge it without the ECU's private key.
Result<std::string> verify_report(std::string_view signed_report, const PublicKey& ecu_key,
                                  size_t max_bytes = 64 * 1024);

// The wire's own form (ota.v1.Result, fields ecu_signature and ecu_key_id): the agent signs the
// Result serialized with ecu_key_id set and ecu_signature empty. sign_result takes a serialized
// Result and returns it serialized with both fields set; verify_result_signature checks a received
// one (kSignatureInvalid when unsigned, signed by another key, or altered; kCorrupt if undecodable).
Result<std::string> sign_result(std::string_view result, const PrivateKey& ecu_key);
Status verify_result_signature(std::string_view result, const PublicKey& ecu_key,
                               size_t max_bytes = 64 * 1024);

}  // namespace ota::trust
