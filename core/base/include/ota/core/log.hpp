// Levelled logging. Default sink: one line per record on stderr ("2026-11-22T10:00:00.123Z W agent: ...").
// Embedders (the agent SDK's users) route records elsewhere with set_log_sink.
#pragma once

#include <functional>
#include <string>

namespace ota {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

using LogSink = std::function<void(LogLevel, const std::string& component, const std::string& message)>;

// Thread-safe. A null sink restores the stderr sink.
void set_log_sink(LogSink sink);
void set_log_level(LogLevel level);
LogLevel log_level();
// Parses "debug", "info", "warn", "error", "off"; false on anything else.
bool parse_log_level(const std::string& text, LogLevel* out);

void log_write(LogLevel level, const char* component, const std::string& message);
// printf-style convenience; formats only when the level is enabled.
void logf(LogLevel level, const char* component, const char* fmt, ...) __attribute__((format(printf, 3, 4)));

}  // namespace ota

#define OTA_LOGD(comp, ...) ::ota::logf(::ota::LogLevel::kDebug, comp, __VA_ARGS__)
#define OTA_LOGI(comp, ...) ::ota::logf(::ota::LogLevel::kInfo, comp, __VA_ARGS__)
#define OTA_LOGW(comp, ...) ::ota::logf(::ota::LogLevel::kWarn, comp, __VA_ARGS__)
#define OTA_LOGE(comp, ...) ::ota::logf(::ota::LogLevel::kError, comp, __VA_ARGS__)
