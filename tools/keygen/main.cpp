// ota-keygen: writes NAME.key (private PEM, mode 0600) and NAME.pub (public PEM) into a directory and
// prints the key id (hex SHA-256 of the DER public key), which root metadata refers to.
#include <sys/stat.h>

#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "ota/core/file.hpp"
#include "ota/core/program_info.hpp"
#include "ota/core/trust.hpp"

int main(int argc, char** argv) {
  CLI::App app{"Make an ECDSA P-256 key pair for OTA signing roles or ECU reports"};
  app.set_version_flag("--version", ota::version_text("ota-keygen"));
  std::string out_dir;
  std::string name;
  bool force = false;
  app.add_option("--out", out_dir, "Directory to write NAME.key and NAME.pub into (created if needed)")
      ->required();
  app.add_option("--name", name, "Base name of the key files, e.g. root-1, director-1, ecu-brake")
      ->required();
  app.add_flag("--force", force, "Overwrite existing key files");
  CLI11_PARSE(app, argc, argv);

  if (name.empty() || name.find('/') != std::string::npos || name[0] == '.') {
    std::fprintf(stderr, "ota-keygen: --name must be a plain file name\n");
    return 2;
  }
  if (ota::Status s = ota::make_dirs(out_dir); !s) {
    std::fprintf(stderr, "ota-keygen: %s\n", s.to_string().c_str());
    return 1;
  }
  const std::string key_path = out_dir + "/" + name + ".key";
  const std::string pub_path = out_dir + "/" + name + ".pub";
  struct stat st;
  if (!force && (::stat(key_path.c_str(), &st) == 0 || ::stat(pub_path.c_str(), &st) == 0)) {
    // Overwriting a private key by accident loses a signing identity for good.
    std::fprintf(stderr, "ota-keygen: %s or %s exists (use --force to overwrite)\n", key_path.c_str(),
                 pub_path.c_str());
    return 1;
  }
  auto key = ota::trust::PrivateKey::generate();
  if (!key) {
    std::fprintf(stderr, "ota-keygen: %s\n", key.status().to_string().c_str());
    return 1;
  }
  ota::Status s = key->save(key_path);
  if (s) s = key->save_public(pub_path);
  if (!s) {
    std::fprintf(stderr, "ota-keygen: %s\n", s.to_string().c_str());
    return 1;
  }
  std::printf("%s\n", key->key_id().c_str());
  return 0;
}
