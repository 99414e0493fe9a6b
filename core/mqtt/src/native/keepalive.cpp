// NativeTransport's keeper thread: PINGREQ on an idle connection, and the socket shut down when the
// broker has been silent for twice the keepalive (the reader then reports the loss and reconnects).
#include "native_transport.hpp"
#include "ota/core/log.hpp"

namespace ota::native {

using std::chrono::milliseconds;

void NativeTransport::keeper_main() {
  const int64_t keepalive =
      std::max<int64_t>(1000, std::chrono::duration_cast<milliseconds>(o_.keepalive).count());
  int64_t last_ping_ms = 0;
  while (pause(milliseconds(std::min<int64_t>(keepalive / 4, 500)))) {
    if (!connected_) continue;
    const int64_t now = now_ms();
    // Idle either way for half the keepalive: a client that only publishes QoS 0 hears nothing
    // back but PINGRESPs, and a broker with nothing to send must still be heard from.
    const bool idle = now - last_sent_ms_ >= keepalive / 2 || now - last_received_ms_ >= keepalive / 2;
    if (idle && now - last_ping_ms >= keepalive / 2) {
      std::unique_lock<std::mutex> send(send_mu_, std::try_to_lock);
      if (send.owns_lock() && connected_) {
        (void)send_locked(Packet{mqtt::pingreq_packet(), nullptr, 0});
        last_ping_ms = now;
      }
    }
    if (!in_callback_ && now - last_received_ms_ > 2 * keepalive) {
      const int64_t silent = now - last_received_ms_.load();
      OTA_LOGW(kLog, "%s: no packet from the broker for %lld ms", o_.client_id.c_str(),
               static_cast<long long>(silent));
      silent_ms_ = silent;      // the reader's reason for the loss
      last_received_ms_ = now;  // once per silence
      shutdown_socket();
    }
  }
}

}  // namespace ota::native
