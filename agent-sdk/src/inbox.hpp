// Hands the agent's messages to its protocol handler one at a time, in arrival order. Commands go
// through a queue to the worker thread; a data message (a chunk) is handled right on the
// delivering thread (the transport's) when nothing is queued or being handled, which spares the
// data path a hand-over and a copy, and is queued behind anything that is. The client's
// flow-control window bounds the queue.
//
// "The protocol thread" in this SDK's comments means whichever of the two runs the handler: never
// both at once.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace ota::agent_impl {

// A message for the agent, from its transport.
struct Inbound {
  enum class Kind {
    kConnected,  // the transport connected or reconnected (no payload)
    kCommand,    // a Command on down/cmd
    kData,       // a Chunk on down/data
  };
  Kind kind = Kind::kConnected;
  std::string payload;
};

class Inbox {
 public:
  // `handle` runs on the worker or on a delivering thread; it must not throw.
  using Handler = std::function<void(const Inbound&)>;
  explicit Inbox(Handler handle) : handle_(std::move(handle)) {}
  ~Inbox() { stop(); }
  Inbox(const Inbox&) = delete;
  Inbox& operator=(const Inbox&) = delete;

  void start();
  // Thread-safe. Dropped once stop has been requested.
  void deliver(Inbound&& m);
  // Blocks until stop is requested.
  void wait_for_stop();
  // Requests stop (queued messages are dropped), joins the worker, and waits for a message being
  // handled on a delivering thread. Idempotent.
  void stop();

 private:
  void run();

  Handler handle_;
  std::mutex queue_mu_;  // guards queue_, busy_ and stop_requested_
  // Signalled when a message is queued, when handling ends, and on stop.
  std::condition_variable queue_changed_;
  std::condition_variable stop_requested_cv_;
  std::deque<Inbound> queue_;
  bool busy_ = false;  // a message is being handled (by the worker or on a delivering thread)
  bool stop_requested_ = false;
  std::thread worker_;
};

}  // namespace ota::agent_impl
