// The client's signals: SIGUSR1 cancels the running campaign; SIGTERM and SIGINT stop the client at
// once (the journal keeps the campaign for the next start, docs/CLIENT.md section 4).
#pragma once

#include <functional>

namespace ota::client {

// Blocks SIGTERM, SIGINT and SIGUSR1 in the calling thread, and so in every thread it starts later:
// call it before any other thread exists. A detached thread then waits for them: SIGUSR1 calls
// `on_cancel` (on that thread; it must be thread-safe), SIGTERM and SIGINT end the process with
// status 128 + the signal, without unwinding.
void watch_signals(std::function<void()> on_cancel);

}  // namespace ota::client
