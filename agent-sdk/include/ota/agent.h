/* OTA agent SDK: the pure C interface (C99 and C++), over the same Agent as ota/agent.hpp.
 *
 * The supplier fills an ota_agent_callbacks_t with functions that reach the ECU's two flash banks
 * (A and B) and an ota_agent_config_t with the ECU's identity and broker, then creates and starts an
 * ota_agent_t. The SDK does everything else: the MQTT session, the protocol, chunked transfer with
 * flow control and resume, CRC and SHA-256 checks, delta reconstruction, the A/B state machine and
 * its durable state file, progress and DTC reporting.
 *
 *   ota_agent_config_t cfg;  ota_agent_config_init(&cfg);   (defaults, then set the fields)
 *   ota_agent_callbacks_t cb; ota_agent_callbacks_init(&cb); (all NULL, then set yours)
 *   ota_agent_t* agent;
 *   if (ota_agent_create(&cfg, &cb, &agent) != OTA_OK) puts(ota_agent_last_error(NULL));
 *   else if (ota_agent_start(agent) != OTA_OK) puts(ota_agent_last_error(agent));
 *   ...                     (the ECU runs; another thread calls ota_agent_stop to end)
 *   ota_agent_destroy(agent);
 *
 * THREADING. Callbacks run one at a time, in protocol order: commands on the agent's worker thread,
 * the writes of a transfer on the transport's thread when nothing else is pending (or on the worker),
 * never two at once. Two exceptions: health_check runs on a thread of its own so that the agent can
 * enforce its timeout (it may therefore overlap nothing but the agent's waiting for it), and with
 * config bank_sync_concurrent set, bank_sync runs on the agent's checkpoint thread, possibly while
 * bank_write runs. A callback must never call ota_agent_stop or ota_agent_destroy (they wait for
 * the thread that runs it). The
 * ota_agent_* functions are thread-safe unless stated otherwise; none is async-signal-safe: to stop
 * on SIGTERM, block the signal and sigwait() for it in a thread, then call ota_agent_stop.
 *
 * ERRORS. Functions return ota_status_t; a failing create or start leaves a message readable with
 * ota_agent_last_error. A callback reports failure by returning a status other than OTA_OK, and may
 * attach a message with ota_callback_set_error() first. The agent fails the current step with that
 * status and message, reports it to the vehicle client, and keeps the ECU on a bootable bank: a
 * failed callback never crashes the agent.
 *
 * OWNERSHIP. Strings and structs passed to the SDK are copied before the call returns, except the
 * callbacks' `user` pointer, which must stay valid until ota_agent_destroy returns. Strings the SDK
 * returns are owned by the SDK (lifetimes stated per function).
 *
 * COMPATIBILITY. Both structs begin with their own size (struct_size); a newer SDK reads only the
 * fields that fit within it and treats missing ones as defaults (config) or NULL (callbacks), so a
 * program built against an older header keeps working. OTA_AGENT_ABI_VERSION grows by one each
 * time fields or functions are added; an incompatible change would change the library's SONAME.
 */
#ifndef OTA_AGENT_H
#define OTA_AGENT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define OTA_AGENT_API __attribute__((visibility("default")))
#else
#define OTA_AGENT_API
#endif

/* Version of the C ABI this header describes. Compare with ota_agent_abi_version() at run time
 * when a program relies on something added after version 1. */
/* 2: ota_agent_config_t.bank_sync_concurrent; 3: booted_bank; 4: trust_root_file, partial_verification,
 * ecu_key_file, connect_timeout_ms */
#define OTA_AGENT_ABI_VERSION 4u

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------- status */

/* Outcome of a call or callback. Same numbering as ota::Code (ota/core/status.hpp) and the wire
 * protocol's error codes. */
typedef enum ota_status {
  OTA_OK = 0,
  OTA_ERR_INVALID_ARGUMENT = 1,  /* something passed was malformed or missing */
  OTA_ERR_NOT_FOUND = 2,         /* a file, bank or key does not exist */
  OTA_ERR_CORRUPT = 3,           /* bytes failed to decode, or a read beyond the end */
  OTA_ERR_IO = 4,                /* read/write/fsync failed (flash error, device gone) */
  OTA_ERR_HASH_MISMATCH = 5,     /* SHA-256 or CRC does not match */
  OTA_ERR_SIGNATURE_INVALID = 6, /* signature or key check failed */
  OTA_ERR_UNSUPPORTED = 7,       /* feature or protocol version not supported */
  OTA_ERR_TIMEOUT = 8,           /* a deadline passed */
  OTA_ERR_REJECTED = 9,          /* refused by policy or by the broker */
  OTA_ERR_ABORTED = 10,          /* cancelled */
  OTA_ERR_UNAVAILABLE = 11,      /* broker or peer not reachable */
  OTA_ERR_INTERNAL = 12,         /* a bug or an unexpected exception */
  OTA_ERR_NO_SPACE = 13          /* not enough space in the bank or staging area */
} ota_status_t;

/* "OK", "INVALID_ARGUMENT", ... "NO_SPACE"; "UNKNOWN" for any other value. Static string. */
OTA_AGENT_API const char* ota_status_str(ota_status_t status);

/* OTA_AGENT_ABI_VERSION of the library actually loaded. */
OTA_AGENT_API uint32_t ota_agent_abi_version(void);

/* SDK version "MAJOR.MINOR.PATCH". Static string. */
OTA_AGENT_API const char* ota_agent_sdk_version(void);

/* ------------------------------------------------------------------------------------- config */

typedef struct ota_agent_config {
  size_t struct_size; /* sizeof(ota_agent_config_t); set by ota_agent_config_init */
  /* Strings: NULL means empty. Copied by ota_agent_create. */
  const char* ecu_id;      /* required: unique in the vehicle, also the MQTT user; [A-Za-z0-9_.-]{1,64} */
  const char* hardware_id; /* what images must be built for */
  const char* serial;
  const char* broker_uri;    /* required: "tcp://127.0.0.1:1883", or "ssl://host:8883" with TLS files */
  const char* password;      /* MQTT password of user ecu_id */
  const char* tls_ca_file;   /* TLS: CA of the broker (required for ssl://) */
  const char* tls_cert_file; /* TLS: this agent's certificate (CN = ecu_id) */
  const char* tls_key_file;
  const char* state_dir; /* required: durable state and delta staging; created if missing */
  /* Fields below may be left out by an older caller (struct_size); they then keep their defaults. */
  const char* factory_version;     /* version in bank A on first start with no state. Default "0.0.0" */
  uint64_t factory_image_size;     /* bytes of the factory image in bank A; 0 (default): the whole bank */
  int delta_capable;               /* nonzero: accept deltas against the active bank. Default 1 */
  uint32_t max_chunk_size;         /* largest chunk to accept, bytes (capped at the protocol's limit).
                                      Default: ota::agent::AgentConfig's */
  uint32_t max_window;             /* chunks in flight. Default 64 */
  uint64_t durable_interval_bytes; /* sync + record the transfer offset at least this often. Default 8 MiB */
  uint32_t health_timeout_ms;      /* used when the client sends none. Default 10000 */
  uint32_t progress_interval_ms;   /* at most one progress report per interval. Default 250 */
  /* ABI 2. Nonzero: bank_sync may run on the agent's checkpoint thread while bank_write runs (true
   * of fdatasync on a file descriptor); the transfer then goes on while a checkpoint syncs. It must
   * make durable every byte whose bank_write returned before it was called. Default 0. */
  int bank_sync_concurrent;
  /* ABI 4: the rest of ota::agent::AgentConfig (docs/SDK.md, section 3). */
  const char* trust_root_file; /* root metadata (SignedMetadata bytes) the ECU was provisioned with:
                                  every target must then be signed. NULL: unchecked (development) */
  int partial_verification;    /* nonzero, with a trust root: the director's signature alone (Uptane
                                  partial verification). Default 0: full verification */
  const char* ecu_key_file;    /* this ECU's private key (PEM, ECDSA P-256): every result is signed */
  uint32_t connect_timeout_ms; /* how long ota_agent_start waits for the broker, retrying with a
                                  backoff of 100 ms doubling to 5 s; 0: forever. Default 10000 */
} ota_agent_config_t;

/* Fills *config with the defaults above, which are those of ota::agent::AgentConfig (strings NULL
 * except factory_version), and sets struct_size. Use the ota_agent_config_init() wrapper: it passes the
 * caller's sizeof, so a library newer than the header never writes past the caller's struct. */
OTA_AGENT_API void ota_agent_config_init_sized(ota_agent_config_t* config, size_t struct_size);

static inline void ota_agent_config_init(ota_agent_config_t* config) {
  ota_agent_config_init_sized(config, sizeof(*config));
}

/* ---------------------------------------------------------------------------------- callbacks */

typedef enum ota_bank { OTA_BANK_A = 1, OTA_BANK_B = 2 } ota_bank_t;

/* What the agent tells the device about the image being installed. Valid during the call only. */
typedef struct ota_image_info {
  const char* version;
  uint64_t size;
  const char* sha256_hex; /* 64 lowercase hex digits */
} ota_image_info_t;

/* A diagnostic trouble code (ISO 14229 style), filled by the read_dtcs callback. */
typedef struct ota_dtc {
  uint32_t code;       /* 3-byte DTC number, e.g. 0xC14187 */
  uint8_t status_mask; /* ISO 14229 status byte */
  uint8_t active;      /* nonzero: currently failing */
  uint8_t confirmed;   /* nonzero: confirmed */
  uint32_t occurrences;
  uint64_t first_seen_ms; /* unix milliseconds */
  uint64_t last_seen_ms;
  char description[128]; /* NUL-terminated (truncated if not) */
} ota_dtc_t;

/* The device: how the agent reaches the ECU's banks. `user` is passed back to every callback.
 * REQUIRED: bank_size, bank_write, bank_read (ota_agent_create fails without them). Every other
 * callback may be NULL and then behaves as stated. On which thread each runs: THREADING above. */
typedef struct ota_agent_callbacks {
  size_t struct_size; /* sizeof(ota_agent_callbacks_t); set by ota_agent_callbacks_init */
  void* user;

  /* Capacity of one bank in bytes; larger images are refused before transfer. */
  uint64_t (*bank_size)(void* user);

  /* Writes len bytes at offset of `bank`, which is never the active bank. Within one transfer the
   * writes are sequential: each starts where the previous one ended, the first at the offset given
   * to bank_open. The bytes need not be durable before bank_sync. */
  ota_status_t (*bank_write)(void* user, ota_bank_t bank, uint64_t offset, const uint8_t* data, size_t len);

  /* Reads exactly len bytes at offset of `bank` (the active bank as the base of a delta, the
   * factory image on first start, read-back checks). The SDK never reads beyond the bank's
   * image size (bank_image_size). */
  ota_status_t (*bank_read)(void* user, ota_bank_t bank, uint64_t offset, uint8_t* buf, size_t len);

  /* Optional. Called before the writes of a transfer: offset 0 for a new image, the last durable
   * offset when a transfer resumes; bytes at and after offset may be discarded (e.g. erased).
   * NULL: nothing to prepare. */
  ota_status_t (*bank_open)(void* user, ota_bank_t bank, uint64_t offset);

  /* Optional. Makes every byte written to `bank` so far durable (fdatasync or the flash
   * equivalent); called before the SDK records a transfer offset as durable and before
   * verification. NULL: bank_write is durable when it returns. Runs between two bank_writes unless
   * the config sets bank_sync_concurrent. */
  ota_status_t (*bank_sync)(void* user, ota_bank_t bank);

  /* Optional. The SDK is done writing `bank` for now (complete, failed or cancelled). */
  void (*bank_close)(void* user, ota_bank_t bank);

  /* Optional. Bytes bank_read may be asked for in `bank` (e.g. the size of the image file).
   * NULL: bank_size. */
  ota_status_t (*bank_image_size)(void* user, ota_bank_t bank, uint64_t* size);

  /* Optional. The image in `bank` is complete and its SHA-256 verified by the SDK: a last
   * device-specific check (secure-boot signature, flash read-back). NULL: OK. */
  ota_status_t (*finish_install)(void* user, ota_bank_t bank, const ota_image_info_t* image);

  /* Optional. Makes `bank` the one the ECU boots (and switches to it on a live system). NULL: OK. */
  ota_status_t (*activate)(void* user, ota_bank_t bank, const ota_image_info_t* image);

  /* Optional. Checks the ECU is healthy on the newly activated bank. Runs on its own thread; if it
   * has not returned after timeout_ms the agent rolls back, and the call is left to finish on its
   * own (ota_agent_destroy waits for it). NULL: healthy. */
  ota_status_t (*health_check)(void* user, ota_bank_t bank, uint32_t timeout_ms);

  /* Optional. Makes the activated bank permanent (e.g. clears the bootloader's trial flag). NULL: OK. */
  ota_status_t (*commit)(void* user, ota_bank_t bank);

  /* Optional. Returns the ECU to `previous`, the bank it ran before activation. Must succeed
   * whenever possible: the agent retries it on its next start if it fails. NULL: OK. */
  ota_status_t (*rollback)(void* user, ota_bank_t previous);

  /* Optional. Writes up to `capacity` current DTCs into dtcs[] and their total number into *count.
   * If the total exceeds capacity, write the first `capacity`, set *count to the total and return
   * OTA_OK: the SDK calls again with room for all. NULL: no DTCs. */
  ota_status_t (*read_dtcs)(void* user, ota_dtc_t* dtcs, size_t capacity, size_t* count);

  /* Optional. Clears the `count` DTC codes given; all DTCs when count is 0. NULL: OK. */
  ota_status_t (*clear_dtcs)(void* user, const uint32_t* codes, size_t count);

  /* Optional. Bytes free for staging (delta payloads are staged in state_dir before
   * reconstruction). NULL: 1 GiB. */
  uint64_t (*free_space)(void* user);

  /* Optional (ABI 3). The bank the ECU actually booted, asked by ota_agent_start when it finds an
   * activated update not yet committed (the client may have decided to commit it already). Store it
   * in *booted. A bootloader falls back to the previous bank only once its boot attempts on the new
   * one are spent: say so here, and only then does the agent record the rollback; otherwise it keeps
   * the trial, runs health_check again and waits for the client's commit or rollback. `activated`
   * is the bank the agent activated. NULL, a failure or a value that is not a bank: `activated`. */
  ota_status_t (*booted_bank)(void* user, ota_bank_t activated, ota_bank_t* booted);
} ota_agent_callbacks_t;

/* Zeroes *callbacks (every callback NULL, user NULL) and sets struct_size. */
static inline void ota_agent_callbacks_init(ota_agent_callbacks_t* callbacks) {
  memset(callbacks, 0, sizeof(*callbacks));
  callbacks->struct_size = sizeof(*callbacks);
}

/* Called by a callback, on the thread that runs it, just before it returns a status other than
 * OTA_OK: attaches `message` (copied) to that failure, e.g. "flash sector 12: erase timeout". The
 * message is dropped if the callback returns OTA_OK. Outside a callback it has no effect. */
OTA_AGENT_API void ota_callback_set_error(const char* message);

/* -------------------------------------------------------------------------------------- agent */

typedef struct ota_agent ota_agent_t;

/* Creates an agent (not yet started). Copies *config and *callbacks. On success stores the new
 * agent in *out; destroy it with ota_agent_destroy. On failure *out is NULL and
 * ota_agent_last_error(NULL) says why on this thread.
 * Errors: OTA_ERR_INVALID_ARGUMENT (a NULL pointer, a struct_size too small for the required
 * fields, a missing required callback, an invalid ecu_id, no broker_uri or state_dir),
 * OTA_ERR_INTERNAL (out of memory). */
OTA_AGENT_API ota_status_t ota_agent_create(const ota_agent_config_t* config,
                                            const ota_agent_callbacks_t* callbacks, ota_agent_t** out);

/* Loads (or creates) the durable state in state_dir, finishes an interrupted activation by rolling
 * back, connects to the broker (waiting for it up to config connect_timeout_ms, with backoff),
 * publishes the retained hello and state, and starts serving commands on the worker thread.
 * Returns once connected; afterwards a lost connection is restored by the SDK on its own. May be called once
 * per agent: after a failure or a stop, destroy the agent and create a new one. Must not run concurrently
 * with ota_agent_stop or ota_agent_destroy of the same agent. Errors: OTA_ERR_INVALID_ARGUMENT, OTA_ERR_IO /
 * OTA_ERR_CORRUPT (state dir), OTA_ERR_UNAVAILABLE (broker not reachable in time), OTA_ERR_REJECTED
 * (credentials refused: at once, not retried), OTA_ERR_NOT_FOUND / OTA_ERR_SIGNATURE_INVALID (trust root or
 * ECU key file), with a message in ota_agent_last_error(agent). */
OTA_AGENT_API ota_status_t ota_agent_start(ota_agent_t* agent);

/* Blocks until ota_agent_stop is called from another thread (returns at once if already stopped). */
OTA_AGENT_API void ota_agent_wait(ota_agent_t* agent);

/* Publishes online=false, disconnects and joins the worker thread. Idempotent; wakes
 * ota_agent_wait. Never call it from a callback. */
OTA_AGENT_API void ota_agent_stop(ota_agent_t* agent);

/* Stops the agent if running, waits for a health_check still running, and frees it. NULL is a
 * no-op. The agent must not be used by any other thread during or after the call. */
OTA_AGENT_API void ota_agent_destroy(ota_agent_t* agent);

/* The bank the ECU boots now (OTA_BANK_A before the first start). */
OTA_AGENT_API ota_bank_t ota_agent_active_bank(const ota_agent_t* agent);

/* Copies the version of the image in the active bank into buf (NUL-terminated, truncated to
 * cap-1 characters; buf may be NULL when cap is 0) and returns its full length, like snprintf.
 * "" (length 0) until ota_agent_start has succeeded. */
OTA_AGENT_API size_t ota_agent_active_version(const ota_agent_t* agent, char* buf, size_t cap);

/* Message of the last failed ota_agent_start of `agent`, or, with agent NULL, of the last failed
 * ota_agent_create on the calling thread. "" if none. Valid until the next create (agent NULL) or
 * start (agent) and until the agent is destroyed. */
OTA_AGENT_API const char* ota_agent_last_error(const ota_agent_t* agent);

/* ---------------------------------------------------------------------------------------- log */

typedef enum ota_log_level {
  OTA_LOG_DEBUG = 0,
  OTA_LOG_INFO = 1,
  OTA_LOG_WARN = 2,
  OTA_LOG_ERROR = 3,
  OTA_LOG_OFF = 4
} ota_log_level_t;

/* Receives the SDK's log records. Called from any SDK thread, possibly concurrently; strings are
 * valid during the call only. */
typedef void (*ota_log_handler_t)(void* user, ota_log_level_t level, const char* component,
                                  const char* message);

/* Process-wide: records below `level` are dropped. Default OTA_LOG_INFO. */
OTA_AGENT_API void ota_log_set_level(ota_log_level_t level);

/* Process-wide: routes log records to `handler` (NULL restores the default, one line per record
 * on stderr). `user` must stay valid until the handler is replaced. */
OTA_AGENT_API void ota_log_set_handler(ota_log_handler_t handler, void* user);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* OTA_AGENT_H */
