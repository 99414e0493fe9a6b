/* Example OTA agent in C: an ECU whose two flash banks are two files.
 * A real ECU replaces the bank_* callbacks with its flash driver and activate/rollback with its
 * bootloader's boot selection. Stop it with Ctrl-C (SIGINT) or SIGTERM. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ota/agent.h>

typedef struct device {
  int fd[3]; /* index 1: bank A, 2: bank B (ota_bank_t values) */
  uint64_t bank_size;
  char boot_file[4096]; /* which bank the bootloader starts: "A" or "B" */
} device_t;

static ota_status_t fail(const char* what) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(errno));
  ota_callback_set_error(msg); /* travels with the status into the update report */
  return OTA_ERR_IO;
}

static uint64_t bank_size(void* user) { return ((device_t*)user)->bank_size; }

/* A new transfer starts at 0, a resumed one at the last durable offset: drop what follows. */
static ota_status_t bank_open(void* user, ota_bank_t bank, uint64_t offset) {
  return ftruncate(((device_t*)user)->fd[bank], (off_t)offset) == 0 ? OTA_OK : fail("truncate bank");
}

static ota_status_t bank_write(void* user, ota_bank_t bank, uint64_t off, const uint8_t* data, size_t len) {
  device_t* d = user;
  while (len > 0) {
    ssize_t n = pwrite(d->fd[bank], data, len, (off_t)off);
    if (n < 0) return fail("write bank");
    data += n;
    off += (uint64_t)n;
    len -= (size_t)n;
  }
  return OTA_OK;
}

static ota_status_t bank_sync(void* user, ota_bank_t bank) {
  return fdatasync(((device_t*)user)->fd[bank]) == 0 ? OTA_OK : fail("sync bank");
}

static ota_status_t bank_read(void* user, ota_bank_t bank, uint64_t off, uint8_t* buf, size_t len) {
  device_t* d = user;
  while (len > 0) {
    ssize_t n = pread(d->fd[bank], buf, len, (off_t)off);
    if (n < 0) return fail("read bank");
    if (n == 0) {
      ota_callback_set_error("read past the end of the bank file");
      return OTA_ERR_CORRUPT;
    }
    buf += n;
    off += (uint64_t)n;
    len -= (size_t)n;
  }
  return OTA_OK;
}

static ota_status_t bank_image_size(void* user, ota_bank_t bank, uint64_t* size) {
  struct stat st;
  if (fstat(((device_t*)user)->fd[bank], &st) != 0) return fail("stat bank");
  *size = (uint64_t)st.st_size;
  return OTA_OK;
}

/* Records the boot bank atomically: write a temporary file, fsync, rename over the old one. */
static ota_status_t set_boot(void* user, ota_bank_t bank) {
  device_t* d = user;
  char tmp[sizeof d->boot_file + 8];
  snprintf(tmp, sizeof tmp, "%s.tmp", d->boot_file);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return fail("boot file");
  int ok = write(fd, bank == OTA_BANK_A ? "A\n" : "B\n", 2) == 2 && fsync(fd) == 0;
  close(fd);
  if (!ok || rename(tmp, d->boot_file) != 0) return fail("boot file");
  return OTA_OK;
}

static ota_status_t activate(void* user, ota_bank_t bank, const ota_image_info_t* image) {
  printf("activating bank %c: version %s, %llu bytes\n", bank == OTA_BANK_A ? 'A' : 'B', image->version,
         (unsigned long long)image->size);
  return set_boot(user, bank);
}

static ota_status_t rollback(void* user, ota_bank_t previous) { return set_boot(user, previous); }

static ota_status_t health_check(void* user, ota_bank_t bank, uint32_t timeout_ms) {
  (void)user;
  (void)timeout_ms;
  printf("health check on bank %c: OK\n", bank == OTA_BANK_A ? 'A' : 'B'); /* e.g. ask the app */
  return OTA_OK;
}

static const char* arg(int argc, char** argv, const char* name, const char* fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (strcmp(argv[i], name) == 0) return argv[i + 1];
  return fallback;
}

/* --help and --version: prints and returns 1 when one was asked, else 0. */
static int print_info(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      printf(
          "usage: %s --ecu ID --state-dir DIR [--broker URI] [--password-file FILE]\n"
          "          [--bank-a FILE] [--bank-b FILE] [--bank-size BYTES]\n"
          "          [--trust-root FILE] [--ecu-key FILE] [--connect-timeout-ms MS (0: forever)]\n"
          "OTA agent SDK %s (C ABI %u)\n",
          argv[0], ota_agent_sdk_version(), ota_agent_abi_version());
      return 1;
    }
    if (strcmp(argv[i], "--version") == 0) {
      printf("example-agent-c %s\n", ota_agent_sdk_version());
      return 1;
    }
  }
  return 0;
}

/* The first line of `path` into buf (without its line end); 0 on success. */
static int read_password(const char* path, char* buf, size_t size) {
  FILE* f = fopen(path, "r");
  if (!f || !fgets(buf, (int)size, f)) {
    fprintf(stderr, "cannot read %s\n", path);
    if (f) fclose(f);
    return -1;
  }
  fclose(f);
  buf[strcspn(buf, "\r\n")] = '\0';
  return 0;
}

/* Opens (creating) the two bank files; the boot selection lives beside bank A. 0 on success. */
static int open_device(device_t* dev, const char* bank_a, const char* bank_b) {
  if (snprintf(dev->boot_file, sizeof dev->boot_file, "%s.boot", bank_a) >= (int)sizeof dev->boot_file) {
    fprintf(stderr, "path too long: %s\n", bank_a);
    return -1;
  }
  dev->fd[OTA_BANK_A] = open(bank_a, O_RDWR | O_CREAT, 0644);
  dev->fd[OTA_BANK_B] = open(bank_b, O_RDWR | O_CREAT, 0644);
  if (dev->fd[OTA_BANK_A] < 0 || dev->fd[OTA_BANK_B] < 0) {
    perror("open banks");
    return -1;
  }
  return 0;
}

int main(int argc, char** argv) {
  if (print_info(argc, argv)) return 0;
  const char* state_dir = arg(argc, argv, "--state-dir", NULL);
  const char* pw_file = arg(argc, argv, "--password-file", NULL);
  char password[256] = "";
  if (!state_dir) {
    fprintf(stderr, "--state-dir is required (see --help)\n");
    return 2;
  }
  if (pw_file && read_password(pw_file, password, sizeof password) != 0) return 2;
  device_t dev = {{-1, -1, -1}, strtoull(arg(argc, argv, "--bank-size", "67108864"), NULL, 10), ""};
  if (open_device(&dev, arg(argc, argv, "--bank-a", "bank_a.img"),
                  arg(argc, argv, "--bank-b", "bank_b.img")) != 0)
    return 1;

  ota_agent_config_t cfg;
  ota_agent_config_init(&cfg);
  cfg.ecu_id = arg(argc, argv, "--ecu", NULL);
  cfg.broker_uri = arg(argc, argv, "--broker", "tcp://127.0.0.1:1883");
  cfg.password = password;
  cfg.state_dir = state_dir;
  cfg.hardware_id = "example-hw";
  cfg.bank_sync_concurrent = 1; /* fdatasync may run beside the writes of the same descriptor */
  /* Production: the root the ECU was provisioned with, and its own key to sign its results. */
  cfg.trust_root_file = arg(argc, argv, "--trust-root", NULL);
  cfg.ecu_key_file = arg(argc, argv, "--ecu-key", NULL);
  /* Started at boot, possibly before the broker: wait for it (with backoff) this long. */
  cfg.connect_timeout_ms = (uint32_t)strtoul(arg(argc, argv, "--connect-timeout-ms", "10000"), NULL, 10);

  ota_agent_callbacks_t cb;
  ota_agent_callbacks_init(&cb);
  cb.user = &dev;
  cb.bank_size = bank_size; /* required: bank_size, bank_write, bank_read */
  cb.bank_write = bank_write;
  cb.bank_read = bank_read;
  cb.bank_open = bank_open; /* optional from here on: NULL takes the SDK's default */
  cb.bank_sync = bank_sync;
  cb.bank_image_size = bank_image_size;
  cb.activate = activate;
  cb.rollback = rollback;
  cb.health_check = health_check;

  /* Block SIGINT/SIGTERM before the SDK starts threads (they inherit the mask), then wait for
   * them here: ota_agent_stop is not async-signal-safe, so it cannot run in a handler. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);

  ota_agent_t* agent = NULL;
  if (ota_agent_create(&cfg, &cb, &agent) != OTA_OK) {
    fprintf(stderr, "create: %s\n", ota_agent_last_error(NULL));
    return 1;
  }
  ota_status_t st = ota_agent_start(agent);
  if (st != OTA_OK) {
    fprintf(stderr, "start: %s\n", ota_agent_last_error(agent));
  } else {
    printf("%s running on bank %c\n", cfg.ecu_id, ota_agent_active_bank(agent) == OTA_BANK_A ? 'A' : 'B');
    int sig;
    sigwait(&sigs, &sig);
    ota_agent_stop(agent);
  }
  ota_agent_destroy(agent);
  close(dev.fd[1]);
  close(dev.fd[2]);
  return st == OTA_OK ? 0 : 1;
}
