#include "scenario.hpp"

#include <google/protobuf/util/json_util.h>

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <map>

#include "images.hpp"
#include "ota/core/codec.hpp"
#include "ota/core/file.hpp"
#include "ota/platform/campaign_signing.hpp"

namespace ota::sim {
namespace {

const char* kEcuNames[] = {"bcm", "tcu", "adas", "ivi", "brake", "steering", "bms", "gateway"};

std::string ecu_name(int i) {
  if (i < 8) return kEcuNames[i];
  char buf[16];
  std::snprintf(buf, sizeof buf, "ecu-%02d", i + 1);
  return buf;
}

std::string self_dir() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  std::string p(buf, static_cast<size_t>(n));
  return p.substr(0, p.rfind('/'));
}

v1::Campaign campaign_shell(const Options& opt) {
  v1::Campaign campaign;
  codec::set_protocol(campaign.mutable_protocol());
  campaign.set_campaign_id("sim-campaign-1");
  campaign.set_vin("SIMVIN0000000001");
  campaign.set_chunk_size(opt.chunk_size);
  campaign.set_window(opt.window);
  campaign.set_health_timeout_ms(static_cast<uint32_t>(opt.health_timeout_ms));
  campaign.set_require_consent(!opt.consent.empty());
  campaign.mutable_preconditions()->set_require_parked(true);
  campaign.mutable_preconditions()->set_require_ignition_off(true);
  campaign.mutable_preconditions()->set_min_battery_soc_percent(static_cast<uint32_t>(opt.min_soc));
  auto* group = campaign.add_groups();
  group->set_group(1);
  group->set_atomic(!opt.non_atomic);
  return campaign;
}

void set_payload(v1::PayloadRef* ref, v1::PayloadEncoding encoding, const ImageFile& file) {
  ref->set_encoding(encoding);
  ref->set_uri(file.path);
  ref->set_size(file.size);
  ref->set_sha256(digest_to_bytes(file.sha256));
}

// One ECU: version 1.0.0 in both banks, 1.1.0 (and with --delta the delta to it) as its target.
Status add_target(const Options& opt, const Scenario& s, size_t i, v1::Campaign* campaign) {
  const std::string& ecu = s.ecus[i];
  const std::string dir = s.work + "/ecu/" + ecu;
  const std::string pkg = s.work + "/packages/" + ecu;
  OTA_RETURN_IF_ERROR(make_dirs(dir));
  OTA_RETURN_IF_ERROR(make_dirs(pkg));
  auto base = write_base_image(dir + "/bank_a.img", s.image_size, i + 1);
  if (!base) return base.status();
  OTA_RETURN_IF_ERROR(copy_image(*base, dir + "/bank_b.img"));
  auto next = write_next_image(*base, pkg + "/image-1.1.0.bin", i + 1);
  if (!next) return next.status();
  auto* t = campaign->add_targets();
  t->set_ecu_id(ecu);
  t->set_hardware_id(ecu + "-hw1");
  t->set_version("1.1.0");
  t->set_size(next->size);
  t->set_sha256(digest_to_bytes(next->sha256));
  t->set_group(1);
  set_payload(t->mutable_full(), v1::PAYLOAD_ENCODING_RAW, *next);
  if (opt.dtcs > 0) t->add_resolves_dtcs(0xC10000u);
  if (opt.delta) {
    auto d = write_delta(*base, *next, pkg + "/delta-1.0.0-1.1.0.otad");
    if (!d) return d.status();
    set_payload(t->mutable_delta(), v1::PAYLOAD_ENCODING_DELTA, *d);
    t->mutable_delta()->set_base_version("1.0.0");
    t->mutable_delta()->set_base_sha256(digest_to_bytes(base->sha256));
  }
  return Status::ok();
}

// The plain campaign and the vehicle conditions the client reads.
Status write_campaign_and_conditions(const Options& opt, const Scenario& s) {
  std::string campaign_json;
  google::protobuf::util::JsonPrintOptions jo;
  jo.add_whitespace = true;
  jo.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(s.campaign, &campaign_json, jo);
  v1::VehicleConditions cond;
  cond.set_parked(!opt.not_parked);
  cond.set_ignition_off(!opt.ignition_on);
  cond.set_battery_soc_percent(static_cast<uint32_t>(opt.soc));
  std::string cond_json;
  (void)google::protobuf::util::MessageToJsonString(cond, &cond_json);
  OTA_RETURN_IF_ERROR(atomic_write_file(s.work + "/campaign.json", campaign_json));
  return atomic_write_file(s.work + "/vehicle-state.json", cond_json);
}

// By default the campaign travels the whole chain: the platform (ota-cloud-sim) offers it over MQTT
// v5 + TLS and serves the payloads, which the client downloads. Payload tampering attacks alter the
// vehicle's copy, and oversized metadata would already be refused by the cloud broker's packet
// limit, so these skip the platform to reach the client's own checks.
bool through_platform(const Options& opt, Attack attack) {
  const bool payload_attack = attack == Attack::kCorruptPayload || attack == Attack::kTruncatedPayload ||
                              attack == Attack::kOversized;
  return !opt.no_cloud && !opt.unsigned_campaign && !payload_attack;
}

// Local payload path -> its cloud://name in the platform's store.
std::map<std::string, std::string> cloud_names(const v1::Campaign& campaign) {
  std::map<std::string, std::string> names;
  auto name = [&names](const std::string& ecu, const std::string& uri) {
    names[uri] = "cloud://" + ecu + "-" + uri.substr(uri.rfind('/') + 1);
  };
  for (const auto& t : campaign.targets()) {
    name(t.ecu_id(), t.full().uri());
    if (t.has_delta()) name(t.ecu_id(), t.delta().uri());
  }
  return names;
}

// The platform signs the campaign (director and image roles); vehicle and ECUs get the root.
Status sign(const Options& opt, Attack attack, const std::map<std::string, std::string>& names, Scenario& s) {
  auto material = sign_campaign(s.campaign, s.work + "/keys", 1, attack, names, opt.rotate_root);
  if (!material) return material.status();
  s.trust_root = material->root_path;
  s.client_campaign = s.work + "/signed-campaign.json";
  return atomic_write_file(s.client_campaign, material->signed_campaign_json);
}

// The platform's package store: the same files, by their cloud names (hard links, no copies).
Status stock_package_store(const std::map<std::string, std::string>& names, const std::string& store) {
  OTA_RETURN_IF_ERROR(make_dirs(store));
  for (const auto& [path, name] : names) {
    const std::string dest = store + "/" + name.substr(8);
    if (::link(path.c_str(), dest.c_str()) != 0 && errno != EEXIST)
      return errno_status(errno, "link " + dest);
  }
  return Status::ok();
}

}  // namespace

Result<Scenario> prepare_scenario(const Options& opt, uint64_t image_size, const std::string& work) {
  Scenario s;
  s.work = work;
  s.bin = self_dir();
  s.image_size = image_size;
  for (int i = 0; i < opt.agents; ++i) s.ecus.push_back(ecu_name(i));
  if (!opt.quiet) {
    std::fprintf(stderr, "ota-sim: preparing %d ECU(s) with %s images in %s\n", opt.agents,
                 opt.image_size.c_str(), work.c_str());
  }
  s.campaign = campaign_shell(opt);
  for (size_t i = 0; i < s.ecus.size(); ++i) OTA_RETURN_IF_ERROR(add_target(opt, s, i, &s.campaign));
  OTA_RETURN_IF_ERROR(write_campaign_and_conditions(opt, s));
  Attack attack = Attack::kNone;
  if (!parse_attack(opt.attack, &attack)) {
    return Status(Code::kInvalidArgument, "unknown --attack '" + opt.attack + "'");
  }
  s.client_campaign = work + "/campaign.json";
  s.use_cloud = through_platform(opt, attack);
  s.cloud_packages = work + "/cloud-packages";
  const auto names = s.use_cloud ? cloud_names(s.campaign) : std::map<std::string, std::string>();
  if (!opt.unsigned_campaign) OTA_RETURN_IF_ERROR(sign(opt, attack, names, s));
  if (s.use_cloud) OTA_RETURN_IF_ERROR(stock_package_store(names, s.cloud_packages));
  return s;
}

}  // namespace ota::sim
