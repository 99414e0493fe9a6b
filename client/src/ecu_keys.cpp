#include "ecu_keys.hpp"

namespace ota::client {

Result<std::map<std::string, trust::PublicKey>> load_ecu_keys(const std::string& dir,
                                                              const std::vector<std::string>& ecus) {
  std::map<std::string, trust::PublicKey> keys;
  if (dir.empty()) return keys;
  for (const auto& id : ecus) {
    auto key = trust::PublicKey::load(dir + "/" + id + ".pub");
    if (!key) return key.status().with_context("ECU key of " + id);
    keys.emplace(id, std::move(*key));
  }
  return keys;
}

}  // namespace ota::client
