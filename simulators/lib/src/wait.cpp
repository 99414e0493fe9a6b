#include "ota/sim/wait.hpp"

#include <fstream>
#include <iterator>
#include <thread>

namespace ota::sim {

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds deadline,
                std::chrono::milliseconds poll) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  while (true) {
    if (pred()) return true;
    const auto now = std::chrono::steady_clock::now();
    if (now >= end) return pred();
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(poll, end - now));
  }
}

bool wait_for_file_contains(const std::string& path, const std::string& needle,
                            std::chrono::milliseconds deadline, std::chrono::milliseconds poll) {
  return wait_until(
      [&] {
        std::ifstream in(path, std::ios::binary);
        if (!in) return false;
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        return text.find(needle) != std::string::npos;
      },
      deadline, poll);
}

}  // namespace ota::sim
