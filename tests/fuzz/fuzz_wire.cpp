// One libFuzzer target per wire (or on-disk state) message: compiled once per message type with
// -DOTA_WIRE_TYPE=<ota::v1 message> -DOTA_WIRE_CAP_KIND=<0|1|2: the cap the real receiver uses>. Decodes
// through ota::codec exactly as the receivers do, then exercises what a receiver touches first: the protocol
// version, the error mapping, and the trust layer for signed targets and ECU signatures.
#include <cstring>
#include <type_traits>
#include <utility>

#include "fuzz_common.hpp"
#include "internal.hpp"
#include "ota/core/codec.hpp"
#include "ota/core/crc32c.hpp"
#include "ota/core/trust_wire.hpp"
#include "ota/v1/ota.pb.h"
#include "ota/v1/state.pb.h"

#ifndef OTA_WIRE_TYPE
#error "OTA_WIRE_TYPE must name an ota::v1 message"
#endif
// 0: a control message (kMaxControlMessage), 1: a data chunk (kMaxDataMessage), 2: a report,
// campaign or state file (1 MiB).
#ifndef OTA_WIRE_CAP_KIND
#define OTA_WIRE_CAP_KIND 0
#endif

namespace {

using Msg = ota::v1::OTA_WIRE_TYPE;

template <class M, class = void>
struct HasProtocol : std::false_type {};
template <class M>
struct HasProtocol<M, std::void_t<decltype(std::declval<M>().protocol())>> : std::true_type {};
template <class M, class = void>
struct HasError : std::false_type {};
template <class M>
struct HasError<M, std::void_t<decltype(std::declval<M>().error())>> : std::true_type {};

ota::trust::AgentVerifier* g_agent = nullptr;
std::string* g_root = nullptr;
ota::trust::PublicKey* g_ecu = nullptr;
ota::trust::VerifiedCampaign* g_campaign = nullptr;

[[maybe_unused]] void check_signed_target(const std::string& director, const std::string& image,
                                          const ota::v1::Target* wire) {
  if (director.empty()) return;
  ota::trust::AgentIdentity me;
  me.ecu_id = "ecu-brake";
  me.hardware_id = "hw-brake-a";
  auto t = g_agent->verify_target(director, image, me);
  if (t.is_ok() && wire != nullptr) (void)ota::trust::check_target_matches(*wire, *t);
}

// A rotation chain as the client and the agents walk it (trust::apply_root_updates), from the
// provisioned root: a fresh verifier per input, since an accepted rotation changes it.
[[maybe_unused]] void walk_roots(const google::protobuf::RepeatedPtrField<std::string>& chain) {
  if (chain.empty()) return;
  auto agent = ota::trust::AgentVerifier::from_root(*g_root);
  if (agent.is_ok()) (void)ota::trust::apply_root_updates(chain, *agent);
}

[[maybe_unused]] void extra(const ota::v1::Command& m) {
  if (!m.has_start_transfer()) return;
  walk_roots(m.start_transfer().root_updates());
  const ota::v1::Target& t = m.start_transfer().target();
  check_signed_target(t.signed_target(), t.signed_image(), &t);
}
[[maybe_unused]] void extra(const ota::v1::Campaign& m) {
  for (const auto& t : m.targets()) check_signed_target(t.signed_target(), t.signed_image(), nullptr);
  (void)ota::trust::check_campaign_matches(m, *g_campaign);
}
[[maybe_unused]] void extra(const ota::v1::SignedCampaign& m) {
  walk_roots(m.root_updates());
  check_signed_target(m.signed_director(), m.signed_image(), nullptr);
}
[[maybe_unused]] void extra(const ota::v1::Chunk& m) { (void)ota::crc32c(m.data().data(), m.data().size()); }

// The agents decode chunks in place (codec::decode_chunk): whatever protobuf accepts, it accepts
// with the same fields; and what it accepts re-encodes (encode_chunk_header) to bytes protobuf reads.
[[maybe_unused]] void agree_on_chunk(std::string_view in) {
  ota::codec::ChunkView v;
  const bool fast_ok = ota::codec::decode_chunk(in, &v).is_ok();
  ota::v1::Chunk m;
  if (ota::codec::decode(in, &m, ota::codec::kMaxDataMessage, "fuzz").is_ok()) {
    if (!fast_ok || v.transfer_id != m.transfer_id() || v.offset != m.offset() || v.data != m.data() ||
        v.crc32c != m.crc32c() || v.last != m.last()) {
      __builtin_trap();
    }
  }
  if (!fast_ok) return;
  std::string wire(ota::codec::chunk_header_bound(v.transfer_id.size()) + v.data.size(), '\0');
  size_t h = ota::codec::encode_chunk_header(v, reinterpret_cast<uint8_t*>(wire.data()));
  if (!v.data.empty()) std::memcpy(wire.data() + h, v.data.data(), v.data.size());
  wire.resize(h + v.data.size());
  ota::codec::ChunkView back;
  if (!ota::codec::decode_chunk(wire, &back).is_ok() || back.data != v.data || back.offset != v.offset ||
      back.transfer_id != v.transfer_id || back.crc32c != v.crc32c || back.last != v.last) {
    __builtin_trap();
  }
}
[[maybe_unused]] void extra(const ota::v1::Result& m) {
  if (m.ecu_signature().empty()) return;
  ota::v1::Result unsigned_copy = m;
  unsigned_copy.clear_ecu_signature();
  (void)g_ecu->verify(unsigned_copy.SerializeAsString(), m.ecu_signature());
}
template <class M>
void extra(const M&) {}

constexpr size_t kCap = OTA_WIRE_CAP_KIND == 0   ? ota::codec::kMaxControlMessage
                        : OTA_WIRE_CAP_KIND == 1 ? ota::codec::kMaxDataMessage
                                                 : size_t{1} << 20;

template <class M>
void receive(std::string_view in) {
  M m;
  if (!ota::codec::decode(in, &m, kCap, "fuzz").is_ok()) return;
  if constexpr (HasProtocol<M>::value) (void)ota::codec::check_protocol(m.protocol(), "fuzz");
  if constexpr (HasError<M>::value) (void)ota::codec::from_wire(m.error());
  extra(m);
  // What a receiver that forwards or journals the message does: re-encode and decode again.
  std::string again = m.SerializeAsString();
  M m2;
  if (!m2.ParseFromString(again)) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ota_fuzz::init();
  const auto& k = trust_test::Keys::get();
  std::string root =
      trust_test::signed_by(trust_test::root_body(trust_test::default_root()), {k.root1, k.root2});
  g_agent = new ota::trust::AgentVerifier(ota::trust::AgentVerifier::from_root(root).value());
  g_root = new std::string(root);
  g_ecu = new ota::trust::PublicKey(k.ecu.public_key());
  // The signed campaign the default seeds describe, for the wire/signed agreement check.
  namespace d = ota::trust::detail;
  ota::trust::Limits limits;
  auto images = d::decode_image(trust_test::image_body(1, trust_test::default_images()), limits).value();
  g_campaign = new ota::trust::VerifiedCampaign(
      d::decode_director(trust_test::director_body(1, trust_test::default_targets()), limits)
          .value()
          .campaign);
  for (auto& t : g_campaign->targets) (void)d::match_image(&t, images);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  receive<Msg>(std::string_view(reinterpret_cast<const char*>(data), size));
  if constexpr (std::is_same_v<Msg, ota::v1::Chunk>)
    agree_on_chunk(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
