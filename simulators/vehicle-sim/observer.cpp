#include "observer.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "ota/core/codec.hpp"
#include "ota/core/topics.hpp"
#include "ota/v1/ota.pb.h"

namespace ota::sim {

Observer::Observer(const Broker& broker, bool show) : show_(show) {
  TransportOptions o;
  o.uri = broker.uri();
  o.client_id = "ota-sim-observer";
  o.username = "ota-observer";
  o.password = broker.password("ota-observer");
  t_ = make_transport(o);
  t_->on_message([this](const TransportMessage& m) {
    if (m.topic == topics::kVehicleStatus) {
      on_status(m);
    } else {
      on_result(m);
    }
  });
}

Status Observer::start() {
  OTA_RETURN_IF_ERROR(t_->connect(std::chrono::seconds(5)));
  OTA_RETURN_IF_ERROR(t_->subscribe(std::string(topics::kPrefix) + "ecu/+/up/result", 1));
  OTA_RETURN_IF_ERROR(t_->subscribe(std::string(topics::kPrefix) + "ecu/+/up/state", 1));
  return t_->subscribe(topics::kVehicleStatus, 1);
}

std::map<std::string, uint64_t> Observer::acked() const {
  std::lock_guard<std::mutex> lock(mu_);
  return acked_;
}

void Observer::watch_resumes() {
  std::lock_guard<std::mutex> lock(mu_);
  resumes_.clear();
  watch_resumes_ = true;
}

std::map<std::string, uint64_t> Observer::resumes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return resumes_;
}

void Observer::finish_line() {
  if (show_ && printed_) std::fprintf(stderr, "\n");
}

void Observer::on_status(const TransportMessage& m) {
  v1::CampaignStatus s;
  if (!codec::decode(m.payload, &s, codec::kMaxControlMessage, "status").is_ok()) return;
  uint64_t done = 0, total = 0;
  int lowest = 100;
  std::string line = "  " + s.state();
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& e : s.ecus()) {
    done += std::min(e.bytes_done(), e.bytes_total());
    total += e.bytes_total();
    int pct = e.bytes_total()
                  ? static_cast<int>(std::min(e.bytes_done(), e.bytes_total()) * 100 / e.bytes_total())
                  : 0;
    lowest = std::min(lowest, pct);
    acked_[e.ecu_id()] = e.bytes_done();
    line += "  " + e.ecu_id() + " " + std::to_string(pct) + "%";
  }
  if (total > 0) percent_ = static_cast<int>(done * 100 / total);
  min_percent_ = s.ecus().empty() ? 0 : lowest;
  if (show_) {
    std::fprintf(stderr, "\r%-120s", line.c_str());
    printed_ = true;
  }
}

bool Observer::seen_phase(const std::string& ecu, const std::string& phase) const {
  std::lock_guard<std::mutex> lock(mu_);
  return phases_.count({ecu, phase}) > 0;
}

void Observer::on_state(const std::string& ecu, const TransportMessage& m) {
  v1::AgentState s;
  if (!codec::decode(m.payload, &s, codec::kMaxControlMessage, "state").is_ok()) return;
  std::string name = v1::Phase_Name(s.phase());
  if (name.rfind("PHASE_", 0) == 0) name = name.substr(6);
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  std::lock_guard<std::mutex> lock(mu_);
  phases_.emplace(ecu, name);
}

void Observer::on_result(const TransportMessage& m) {
  std::string ecu;
  topics::Leaf leaf = topics::Leaf::kUnknown;
  if (!topics::parse_ecu_topic(m.topic, &ecu, &leaf)) return;
  if (leaf == topics::Leaf::kState) return on_state(ecu, m);
  if (leaf != topics::Leaf::kResult) return;
  v1::Result r;
  if (!codec::decode(m.payload, &r, codec::kMaxControlMessage, "result").is_ok()) return;
  if (!r.has_transfer_ready() || r.outcome() != v1::OUTCOME_OK) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (watch_resumes_) resumes_.emplace(ecu, r.transfer_ready().resume_offset());
}

}  // namespace ota::sim
