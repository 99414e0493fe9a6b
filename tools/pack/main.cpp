// ota-pack: the platform-side tool that makes deltas and update packages, and the support tool that
// applies them to single files with the same code the vehicle runs.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <string>

#include <unistd.h>

#include "ota/core/delta.hpp"
#include "ota/core/file.hpp"
#include "ota/core/program_info.hpp"
#include "ota/core/sha256.hpp"
#include "ota/platform/mapped_file.hpp"
#include "ota/platform/pack.hpp"

namespace {

using ota::Status;
namespace delta = ota::delta;

int fail(const Status& s) {
  std::fprintf(stderr, "ota-pack: %s\n", s.to_string().c_str());
  return 1;
}

using ota::atomic_write_stream;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int cmd_diff(const std::string& base_path, const std::string& new_path, const std::string& out_path,
             int level, bool no_transform, bool verify, bool verbose) {
  auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<ota::pack::MappedFile> base;
  if (!base_path.empty()) {
    auto b = ota::pack::MappedFile::open(base_path);
    if (!b) return fail(b.status());
    base = std::move(b.value());
  }
  auto img = ota::pack::MappedFile::open(new_path);
  if (!img) return fail(img.status());
  delta::EncodeOptions opt;
  opt.level = level;
  opt.exec_transform = !no_transform;
  delta::EncodeStats st;
  Status s = atomic_write_stream(out_path, [&](ota::ByteSink& sink) {
    return delta::make_delta(base ? base->data() : nullptr, base ? base->size() : 0, img.value()->data(),
                             img.value()->size(), sink, opt, &st);
  });
  if (!s.is_ok()) return fail(s);
  if (verify) {
    // Never hand out a delta that does not rebuild the image: apply it once, here.
    s = ota::pack::verify_delta_file(base_path, out_path);
    if (!s.is_ok()) {
      ::unlink(out_path.c_str());
      return fail(s);
    }
  }
  if (verbose) {
    double pct = img.value()->size() ? 100.0 * st.delta_size / img.value()->size() : 0.0;
    std::fprintf(
        stderr,
        "%s -> %s: %llu bytes (%.3f%% of new), kinds %s/%s, transform %s, %llu entries, "
        "copied %llu, new %llu, %llu base bytes suffix-sorted; compressed ctrl %llu diff %llu extra %llu "
        "map %llu (%llu points%s); %.2f s\n",
        base_path.empty() ? "(none)" : base_path.c_str(), new_path.c_str(),
        static_cast<unsigned long long>(st.delta_size), pct, delta::image_kind_name(st.base_kind),
        delta::image_kind_name(st.image_kind), delta::transform_name(st.transform),
        static_cast<unsigned long long>(st.entries), static_cast<unsigned long long>(st.diff_bytes),
        static_cast<unsigned long long>(st.extra_bytes),
        static_cast<unsigned long long>(st.indexed_base_bytes),
        static_cast<unsigned long long>(st.ctrl_compressed),
        static_cast<unsigned long long>(st.diff_compressed),
        static_cast<unsigned long long>(st.extra_compressed),
        static_cast<unsigned long long>(st.map_compressed), static_cast<unsigned long long>(st.map_entries),
        st.data_pointers ? ", data pointers" : "", seconds_since(t0));
  }
  return 0;
}

int cmd_patch(const std::string& base_path, const std::string& delta_path, const std::string& out_path,
              bool verbose) {
  auto t0 = std::chrono::steady_clock::now();
  auto d = ota::FileReader::open(delta_path);
  if (!d) return fail(d.status());
  std::unique_ptr<ota::FileReader> base;
  if (!base_path.empty()) {
    auto b = ota::FileReader::open(base_path);
    if (!b) return fail(b.status());
    base = std::move(b.value());
  }
  delta::ApplyStats st;
  Status s = atomic_write_stream(out_path, [&](ota::ByteSink& sink) {
    return base ? delta::apply_delta(*base, *d.value(), sink, {}, &st)
                : delta::apply_full(*d.value(), sink, &st);
  });
  if (!s.is_ok()) return fail(s.with_context(delta_path));
  if (verbose) {
    std::fprintf(stderr, "%s: %llu bytes written in %.2f s\n", out_path.c_str(),
                 static_cast<unsigned long long>(st.header.image_size), seconds_since(t0));
  }
  return 0;
}

int cmd_info(const std::string& delta_path) {
  auto d = ota::FileReader::open(delta_path);
  if (!d) return fail(d.status());
  auto h = delta::read_delta_header(*d.value());
  if (!h) return fail(h.status().with_context(delta_path));
  const auto& x = h.value();
  std::printf(
      "format_version: %u\nkind: %s\ntransform: %s\nbase_size: %llu\nbase_sha256: %s\n"
      "image_size: %llu\nimage_sha256: %s\ndelta_size: %llu\n",
      x.format_version, x.is_full() ? "full" : "delta", delta::transform_name(x.transform),
      static_cast<unsigned long long>(x.base_size), ota::to_hex(x.base_sha256).c_str(),
      static_cast<unsigned long long>(x.image_size), ota::to_hex(x.image_sha256).c_str(),
      static_cast<unsigned long long>(d.value()->size()));
  for (const auto* list : {&x.base_regions, &x.image_regions}) {
    for (const auto& r : *list) {
      std::printf("%s_region: offset %llu size %llu\n", list == &x.base_regions ? "base" : "image",
                  static_cast<unsigned long long>(r.offset), static_cast<unsigned long long>(r.size));
    }
  }
  return 0;
}

// `ota-pack pack`: the options of ota::pack::make_package.
CLI::App* add_pack_command(CLI::App& app, ota::pack::PackArgs& args) {
  auto* cmd = app.add_subcommand(
      "pack",
      "build an update package: per ECU a full payload and, given a base, a delta; keeps the smaller");
  cmd->add_option("--image", args.images, "ECU_ID=NEW_IMAGE (repeatable)")->required();
  cmd->add_option("--base", args.bases,
                  "ECU_ID=BASE_IMAGE: the image the ECU runs now (repeatable, optional)");
  cmd->add_option("--version", args.versions, "ECU_ID=VERSION of the new image (repeatable, optional)");
  cmd->add_option("-o,--out", args.out_dir, "output directory (manifest.pb and payloads)")->required();
  cmd->add_option("-l,--level", args.level, "zstd level (1-22)")->capture_default_str();
  cmd->add_flag("--keep-full", args.keep_full, "keep the full payload too when the delta is smaller");
  cmd->add_option("--sign-key", args.sign_keys,
                  "image-role private key (PEM): write signed image metadata (repeatable)");
  cmd->add_option("--hardware", args.hardware_ids,
                  "ECU_ID=HARDWARE_ID the image may be installed on (repeatable)");
  cmd->add_option("--base-version", args.base_versions, "ECU_ID=VERSION of the base image (repeatable)");
  cmd->add_option("--metadata-version", args.metadata_version,
                  "version of the image metadata (only goes up)");
  cmd->add_option("--expires-days", args.expires_days, "days until the image metadata expires");
  return cmd;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ota-pack: make and apply OTA deltas and update packages"};
  app.set_version_flag("--version", ota::version_text("ota-pack"));
  app.require_subcommand(1);
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "print sizes, method and timing to stderr");

  std::string base, image, out, delta_path;
  int level = 19;
  bool no_transform = false;
  auto* diff = app.add_subcommand("diff", "make a delta that turns BASE into NEW");
  diff->add_option("BASE", base, "base (old) image")->required()->check(CLI::ExistingFile);
  diff->add_option("NEW", image, "new image")->required()->check(CLI::ExistingFile);
  diff->add_option("DELTA", out, "delta to write")->required();
  diff->add_option("-l,--level", level, "zstd level of the streams (1-22)")->capture_default_str();
  diff->add_flag("--no-transform", no_transform, "disable the executable branch transform");
  bool no_verify = false;
  diff->add_flag("--no-verify", no_verify, "skip applying the new delta once to check it (faster)");

  auto* compress = app.add_subcommand("compress", "make a full payload (a delta from an empty base)");
  compress->add_option("NEW", image, "new image")->required()->check(CLI::ExistingFile);
  compress->add_option("PAYLOAD", out, "payload to write")->required();
  compress->add_option("-l,--level", level, "zstd level (1-22)")->capture_default_str();

  auto* patch = app.add_subcommand("patch", "rebuild the new image from BASE and DELTA");
  patch->add_option("BASE", base, "base (old) image")->required()->check(CLI::ExistingFile);
  patch->add_option("DELTA", delta_path, "delta")->required()->check(CLI::ExistingFile);
  patch->add_option("OUT", out, "image to write (written atomically)")->required();

  auto* unpack = app.add_subcommand("unpack", "rebuild an image from a full payload");
  unpack->add_option("PAYLOAD", delta_path, "full payload")->required()->check(CLI::ExistingFile);
  unpack->add_option("OUT", out, "image to write (written atomically)")->required();

  auto* info = app.add_subcommand("info", "print a delta's header");
  info->add_option("DELTA", delta_path, "delta or full payload")->required()->check(CLI::ExistingFile);

  ota::pack::PackArgs pack_args;
  auto* pack = add_pack_command(app, pack_args);

  CLI11_PARSE(app, argc, argv);
  if (diff->parsed()) return cmd_diff(base, image, out, level, no_transform, !no_verify, verbose);
  if (compress->parsed()) return cmd_diff("", image, out, level, false, true, verbose);
  if (patch->parsed()) return cmd_patch(base, delta_path, out, verbose);
  if (unpack->parsed()) return cmd_patch("", delta_path, out, verbose);
  if (info->parsed()) return cmd_info(delta_path);
  if (pack->parsed()) {
    Status s = ota::pack::make_package(pack_args, verbose);
    if (!s.is_ok()) {
      std::fprintf(stderr, "ota-pack pack: %s\n", s.to_string().c_str());
      return 1;
    }
    return 0;
  }
  return 2;
}
