#include "offer_loader.hpp"

#include <google/protobuf/util/json_util.h>

#include <filesystem>

#include "ota/core/codec.hpp"
#include "ota/core/file.hpp"
#include "ota/core/sha256.hpp"
#include "ota/v1/trust.pb.h"

namespace ota::cloudsim {
namespace {

constexpr const char* kScheme = "cloud://";

std::string raw(const Digest& d) { return std::string(reinterpret_cast<const char*>(d.data()), d.size()); }

// The package file of a cloud:// uri (empty name for other uris).
Result<std::string> package_path(const Config& cfg, const std::string& uri, const std::string& what) {
  if (uri.compare(0, std::string(kScheme).size(), kScheme) != 0) return std::string();
  const std::string name = uri.substr(std::string(kScheme).size());
  if (!valid_name(name, 128))
    return make_error(Code::kInvalidArgument, what + ": bad package name '" + name + "'");
  const std::string path = cfg.packages + "/" + name;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    return make_error(Code::kNotFound, what + ": package file " + path + " not found");
  return path;
}

// Sizes and digests come from the package files when the campaign leaves them out; when it gives
// them they must match (a wrong campaign fails here, not in the vehicle).
Status fill_ref(const Config& cfg, v1::PayloadRef* ref, const std::string& what) {
  auto path = package_path(cfg, ref->uri(), what);
  if (!path) return path.status();
  if (path->empty()) return Status::ok();
  std::error_code ec;
  const uint64_t size = std::filesystem::file_size(*path, ec);
  auto digest = sha256_file(*path);
  if (!digest) return digest.status().with_context(what);
  if (ref->size() == 0) ref->set_size(size);
  if (ref->sha256().empty()) ref->set_sha256(raw(*digest));
  if (ref->size() != size || ref->sha256() != raw(*digest))
    return make_error(Code::kHashMismatch, what + ": size/sha256 in the campaign do not match " + *path);
  return Status::ok();
}

Status load_campaign(const Config& cfg, v1::CampaignOffer* offer) {
  auto text = read_small_file(cfg.campaign, 4u << 20);
  if (!text) return text.status();
  google::protobuf::util::JsonParseOptions opts;
  auto js = google::protobuf::util::JsonStringToMessage(*text, offer->mutable_campaign(), opts);
  if (!js.ok()) return make_error(Code::kCorrupt, "not a Campaign in JSON: " + js.ToString());
  v1::Campaign* c = offer->mutable_campaign();
  if (!c->has_protocol()) codec::set_protocol(c->mutable_protocol());
  for (auto& t : *c->mutable_targets()) {
    OTA_RETURN_IF_ERROR(fill_ref(cfg, t.mutable_full(), "target " + t.ecu_id() + " full"));
    if (t.has_delta())
      OTA_RETURN_IF_ERROR(fill_ref(cfg, t.mutable_delta(), "target " + t.ecu_id() + " delta"));
  }
  offer->set_campaign_id(c->campaign_id());
  return Status::ok();
}

// Only the payload locations of a signed campaign are checked here: that each cloud:// package
// exists and, when the location names a digest, has it.
Status load_signed_campaign(const Config& cfg, v1::CampaignOffer* offer) {
  auto text = read_small_file(cfg.signed_campaign, 16u << 20);
  if (!text) return text.status();
  google::protobuf::util::JsonParseOptions opts;
  auto js = google::protobuf::util::JsonStringToMessage(*text, offer->mutable_signed_campaign(), opts);
  if (!js.ok()) return make_error(Code::kCorrupt, "not a SignedCampaign in JSON: " + js.ToString());
  for (const auto& loc : offer->signed_campaign().payloads()) {
    auto path = package_path(cfg, loc.uri(), "payload " + loc.uri());
    if (!path) return path.status();
    if (path->empty() || loc.sha256().empty()) continue;
    auto digest = sha256_file(*path);
    if (!digest) return digest.status();
    if (loc.sha256() != raw(*digest))
      return make_error(Code::kHashMismatch, *path + " does not have the SHA-256 its payload location names");
  }
  // The platform knows which campaign it signed; the simulator reads it back from the metadata.
  v1::SignedMetadata envelope;
  v1::DirectorMetadata director;
  if (envelope.ParseFromString(offer->signed_campaign().signed_director()) &&
      director.ParseFromString(envelope.body()))
    offer->set_campaign_id(director.campaign_id());
  return Status::ok();
}

}  // namespace

Result<v1::CampaignOffer> load_offer(const Config& cfg) {
  v1::CampaignOffer offer;
  if (!cfg.campaign.empty()) {
    OTA_RETURN_IF_ERROR(load_campaign(cfg, &offer).with_context("campaign " + cfg.campaign));
  } else if (!cfg.signed_campaign.empty()) {
    OTA_RETURN_IF_ERROR(
        load_signed_campaign(cfg, &offer).with_context("signed campaign " + cfg.signed_campaign));
  } else {
    return offer;
  }
  codec::set_protocol(offer.mutable_protocol());
  offer.set_timestamp_ms(codec::now_ms());
  return offer;
}

}  // namespace ota::cloudsim
