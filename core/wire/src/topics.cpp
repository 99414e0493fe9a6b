#include "ota/core/topics.hpp"

namespace ota::topics {

const char* leaf_name(Leaf leaf) {
  switch (leaf) {
    case Leaf::kHello:
      return "up/hello";
    case Leaf::kState:
      return "up/state";
    case Leaf::kAck:
      return "up/ack";
    case Leaf::kResult:
      return "up/result";
    case Leaf::kDtc:
      return "up/dtc";
    case Leaf::kCmd:
      return "down/cmd";
    case Leaf::kData:
      return "down/data";
    case Leaf::kUnknown:
      break;
  }
  return "unknown";
}

std::string ecu(std::string_view ecu_id, Leaf leaf) {
  std::string t;
  t.reserve(32 + ecu_id.size());
  t.append(kPrefix).append("ecu/").append(ecu_id).append("/").append(leaf_name(leaf));
  return t;
}

std::string all_agents_filter(Leaf leaf) { return std::string(kPrefix) + "ecu/+/" + leaf_name(leaf); }

std::string ecu_down_filter(std::string_view ecu_id) {
  return std::string(kPrefix) + "ecu/" + std::string(ecu_id) + "/down/#";
}

bool parse_ecu_topic(std::string_view topic, std::string* ecu_id, Leaf* leaf) {
  constexpr std::string_view kEcu = "ota/v1/ecu/";
  if (topic.substr(0, kEcu.size()) != kEcu) return false;
  topic.remove_prefix(kEcu.size());
  auto slash = topic.find('/');
  if (slash == std::string_view::npos) return false;
  std::string_view id = topic.substr(0, slash);
  std::string_view rest = topic.substr(slash + 1);
  if (!valid_ecu_id(id)) return false;
  for (Leaf l :
       {Leaf::kHello, Leaf::kState, Leaf::kAck, Leaf::kResult, Leaf::kDtc, Leaf::kCmd, Leaf::kData}) {
    if (rest == leaf_name(l)) {
      *ecu_id = std::string(id);
      *leaf = l;
      return true;
    }
  }
  return false;
}

namespace {
bool alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }
}  // namespace

bool valid_ecu_id(std::string_view ecu_id) {
  if (ecu_id.empty() || ecu_id.size() > 64 || !alnum(ecu_id[0])) return false;
  for (char c : ecu_id) {
    if (!alnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return ecu_id != kClientUser && ecu_id != kObserverUser;
}

}  // namespace ota::topics
