// Writes the seed corpora of the fuzz targets: `ota_fuzz_seeds DIR` fills DIR/<target>/ with small,
// valid inputs signed by the fixed fuzz keys, so that the fuzzers start past the signature checks.
// The committed tests/fuzz/corpus was made with it; rerun after changing a message.
#include <sys/stat.h>

#include <cstdio>
#include <string>
#include <utility>

#include "fuzz_common.hpp"
#include "mqtt_wire.hpp"
#include "ota/core/codec.hpp"
#include "ota/core/delta.hpp"
#include "ota/core/file.hpp"
#include "ota/v1/ota.pb.h"
#include "ota/v1/state.pb.h"

namespace {

std::string g_dir;

void put(const std::string& target, const std::string& name, const std::string& bytes) {
  const std::string dir = g_dir + "/" + target;
  if (!ota::make_dirs(dir).is_ok() || !ota::atomic_write_file(dir + "/" + name, bytes).is_ok()) {
    std::fprintf(stderr, "cannot write %s/%s\n", dir.c_str(), name.c_str());
    std::exit(1);
  }
}

struct StringSink : ota::ByteSink {
  std::string s;
  ota::Status write(const uint8_t* p, size_t n) override {
    s.append(reinterpret_cast<const char*>(p), n);
    return ota::Status::ok();
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  g_dir = argv[1];
  ota_fuzz::init();
  using namespace trust_test;
  const Keys& k = Keys::get();

  // Trust metadata.
  const std::string root1 = signed_by(root_body(default_root()), {k.root1, k.root2});
  RootDef r2 = default_root();
  r2.version = 2;
  r2.director = {{k.director2}, 1};
  put("fuzz_root", "root-v1", root1);
  put("fuzz_root", "root-v2-rotation", signed_by(root_body(r2), {k.root1, k.root2}));
  put("fuzz_root", "root-v1-body", root_body(default_root()));

  const std::string image = signed_by(image_body(1, default_images()), {k.image1});
  put("fuzz_image", "image-v1", image);
  put("fuzz_image", "image-v1-body", image_body(1, default_images()));

  const std::string director = signed_by(director_body(1, default_targets()), {k.director1});
  put("fuzz_director", "director-v1", director);
  put("fuzz_director", "director-v1-body", director_body(1, default_targets()));
  put("fuzz_director", "director-2sigs",
      signed_by(director_body(2, default_targets()), {k.director1, k.director2}));

  put("fuzz_report", "report", ota::trust::sign_report("ecu-brake INSTALLED 2.0.0", k.ecu).value());
  put("fuzz_report", "pem", k.ecu.public_pem());
  put("fuzz_report", "sig", k.ecu.sign("fixed message").value());
  put("fuzz_report", "counter", "5 " + std::string(64, 'a') + " 0\n");

  namespace v1 = ota::v1;
  {
    v1::Hello m;
    ota::codec::set_protocol(m.mutable_protocol());
    put("fuzz_wire_hello", "hello", m.SerializeAsString());
  }
  {
    v1::AgentState m;
    ota::codec::set_protocol(m.mutable_protocol());
    put("fuzz_wire_agent_state", "state", m.SerializeAsString());
  }
  {
    v1::Command m;
    ota::codec::set_protocol(m.mutable_protocol());
    m.set_correlation_id("c-1");
    m.set_campaign_id("campaign-1");
    auto* t = m.mutable_start_transfer()->mutable_target();
    t->set_version("2.0.0");
    t->set_size(4096);
    t->set_sha256(digest_bytes('B'));
    t->set_hardware_id("hw-brake-a");
    t->set_signed_target(director);
    t->set_signed_image(image);
    put("fuzz_wire_command", "start-transfer", m.SerializeAsString());
    v1::Command c2;
    ota::codec::set_protocol(c2.mutable_protocol());
    c2.mutable_activate();
    put("fuzz_wire_command", "activate", c2.SerializeAsString());
  }
  {
    v1::Chunk m;
    m.set_transfer_id("t-1");
    m.set_offset(0);
    m.set_data(std::string(256, 'x'));
    m.set_crc32c(0x12345678);
    put("fuzz_wire_chunk", "chunk", m.SerializeAsString());
  }
  {
    v1::ChunkAck m;
    m.set_transfer_id("t-1");
    m.set_next_offset(4096);
    m.mutable_error()->set_message("bad crc");
    put("fuzz_wire_chunk_ack", "ack", m.SerializeAsString());
  }
  {
    v1::DtcList m;
    ota::codec::set_protocol(m.mutable_protocol());
    put("fuzz_wire_dtc_list", "dtcs", m.SerializeAsString());
  }
  {
    v1::Result m;
    ota::codec::set_protocol(m.mutable_protocol());
    m.set_correlation_id("c-1");
    m.set_ecu_id("ecu-brake");
    m.set_active_version("2.0.0");
    m.set_ecu_key_id(k.ecu.key_id());
    m.set_ecu_signature(k.ecu.sign(m.SerializeAsString()).value());
    put("fuzz_wire_result", "signed-result", m.SerializeAsString());
  }
  {
    v1::VehicleReport m;
    ota::codec::set_protocol(m.mutable_protocol());
    m.set_vin("VIN0000000000001");
    m.add_ecus();
    put("fuzz_wire_vehicle_report", "report", m.SerializeAsString());
  }
  {
    v1::CampaignStatus m;
    ota::codec::set_protocol(m.mutable_protocol());
    put("fuzz_wire_campaign_status", "status", m.SerializeAsString());
  }
  {
    v1::Campaign m;
    ota::codec::set_protocol(m.mutable_protocol());
    m.set_campaign_id("campaign-1");
    m.set_vin("VIN0000000000001");
    auto* t = m.add_targets();
    t->set_ecu_id("ecu-brake");
    t->set_sha256(digest_bytes('B'));
    t->mutable_full()->set_uri("payloads/brake-fw-2.0.0.zst");
    t->set_signed_target(director);
    m.add_groups()->set_atomic(true);
    put("fuzz_wire_campaign", "campaign", m.SerializeAsString());
  }
  {
    v1::SignedCampaign m;
    m.set_signed_director(director);
    m.set_signed_image(image);
    auto* loc = m.add_payloads();
    loc->set_sha256(digest_bytes('z'));
    put("fuzz_wire_signed_campaign", "signed-campaign", m.SerializeAsString());
  }
  {
    v1::AgentDiskState m;
    m.set_format(1);
    m.add_banks()->set_version("1.0.0");
    m.add_banks()->set_version("2.0.0");
    put("fuzz_wire_agent_disk_state", "disk", m.SerializeAsString());
  }
  {
    v1::CampaignJournal m;
    put("fuzz_wire_campaign_journal", "journal", m.SerializeAsString());
  }

  {
    const std::string base = ota_fuzz::fuzz_base();
    std::string next = base;
    for (size_t i = 100; i < 300; ++i) next[i] = static_cast<char>(i);
    next += "appended tail";
    StringSink d;
    if (!ota::delta::make_delta(reinterpret_cast<const uint8_t*>(base.data()), base.size(),
                                reinterpret_cast<const uint8_t*>(next.data()), next.size(), d)
             .is_ok())
      return 1;
    put("fuzz_delta", "delta", d.s);
    StringSink f;
    if (!ota::delta::make_delta(nullptr, 0, reinterpret_cast<const uint8_t*>(next.data()), next.size(), f)
             .is_ok())
      return 1;
    put("fuzz_delta", "full", f.s);
  }
  {
    // What a broker sends the native client: one packet per seed, and a stream of them.
    namespace mqtt = ota::mqtt;
    auto publish = [](std::string_view topic, int qos, bool retain, uint16_t id, const std::string& payload) {
      std::string p;
      if (!mqtt::append_publish_header(p, topic, qos, retain, false, id, payload.size()).is_ok())
        std::exit(1);
      return p + payload;
    };
    const std::string connack("\x20\x02\x00\x00", 4);
    const std::string suback("\x90\x05\x00\x01\x00\x01\x80", 7);
    const std::string pingresp("\xd0\x00", 2);
    const std::string unsuback("\xb0\x02\x00\x02", 4);
    const std::string q0 = publish("ota/v1/VIN0000000000001/cmd", 0, false, 0, "hello");
    std::string q1 = publish("ota/v1/VIN0000000000001/chunk", 1, true, 0x1234, std::string(200, 'c'));
    mqtt::set_publish_dup(q1);
    put("fuzz_mqtt", "connack", connack);
    put("fuzz_mqtt", "suback", suback);
    put("fuzz_mqtt", "publish-qos0", q0);
    put("fuzz_mqtt", "publish-qos1-retain-dup", q1);
    put("fuzz_mqtt", "puback", mqtt::puback_packet(7));
    put("fuzz_mqtt", "stream",
        connack + suback + q0 + q1 + mqtt::puback_packet(0x1234) + pingresp + unsuback);
  }
  return 0;
}
