#include "campaign_intake.hpp"

#include <google/protobuf/util/json_util.h>

#include <thread>

#include "ota/core/file.hpp"
#include "ota/core/log.hpp"

namespace ota::client {

Result<CampaignInput> read_campaign_file(const std::string& path) {
  auto content = read_small_file(path, 16 << 20);
  if (!content) return content.status();
  return CampaignInput{std::move(*content), path};
}

Result<CampaignInput> wait_campaign_offer(CloudLink& cloud) {
  for (;;) {
    auto offer = cloud.wait_offer(std::chrono::hours(1));
    if (!offer && offer.status().code() == Code::kTimeout) continue;
    if (!offer) return offer.status().with_context("cloud");
    google::protobuf::util::JsonPrintOptions jo;
    jo.preserve_proto_field_names = true;
    CampaignInput input{"", "the platform's offer"};
    const google::protobuf::Message& m =
        offer->has_signed_campaign() ? static_cast<const google::protobuf::Message&>(offer->signed_campaign())
                                     : offer->campaign();
    if (auto st = google::protobuf::util::MessageToJsonString(m, &input.json, jo); !st.ok()) {
      return Status(Code::kInternal, "the platform's offer: " + st.ToString());
    }
    OTA_LOGI("client", "campaign offered by the platform (%s)",
             offer->has_signed_campaign() ? "signed" : "unsigned");
    return input;
  }
}

void serve_inventory_only() {
  OTA_LOGI("client", "no campaign to run; serving inventory only");
  for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
}

}  // namespace ota::client
