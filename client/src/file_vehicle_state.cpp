#include "file_vehicle_state.hpp"

#include "ota/core/codec.hpp"
#include "ota/core/file.hpp"
#include "strict_json.hpp"

namespace ota::client {

Result<v1::VehicleConditions> FileVehicleState::read() {
  v1::VehicleConditions c;
  if (path_.empty()) {
    c.set_parked(true);
    c.set_ignition_off(true);
    c.set_battery_soc_percent(100);
  } else {
    auto content = read_small_file(path_, 64 * 1024);
    if (!content) return content.status();
    OTA_RETURN_IF_ERROR(parse_strict_json(*content, &c, path_));
  }
  c.set_timestamp_ms(codec::now_ms());
  return c;
}

}  // namespace ota::client
