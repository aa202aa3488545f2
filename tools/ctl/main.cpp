// pkramfs-ctl: the operator's tool for pkramfs nodes. Talks to a mounted node's daemon over
// <run-dir>/NAME.sock and reads unmounted nodes directly (read-only): shm node files, and
// pkram.ko nodes through /dev/pkram.
#include "commands.h"
#include "failure.h"
#include "progress.h"
#include "settings.h"
#include "text.h"

#include "node_access.h"
#include "storage/node_dirs.h"
#include "util/parse.h"
#include "storage/pkram_device.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <iostream>
#include <set>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace pkramfs;
using namespace pkramfs::ctl;

int main(int argc, char **argv) {
  Settings s;
  CLI::App app{"pkramfs-ctl: list, inspect, preserve, check, destroy, export and import pkramfs "
               "nodes",
               "pkramfs-ctl"};
  app.fallthrough(); // global options are accepted after the command too
  app.require_subcommand(1);
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--shm-dir", s.shm_dir,
                 "where shm nodes live (default /dev/shm/pkramfs, or a hugetlbfs mount with 2 MiB "
                 "pages that holds the node)");
  std::string backend = "auto";
  app.add_option("--backend", backend,
                 "which nodes: kmod (pkram.ko, /dev/pkram), shm (files in --shm-dir) or auto "
                 "(default: a name pkram.ko holds is a kmod node, else an shm node; list shows "
                 "both)")
      ->check(CLI::IsMember({"auto", "kmod", "shm"}));
  app.add_option("--run-dir", s.run_dir,
                 "where daemons keep their locks and control sockets (default /run/pkramfs)");
  app.add_flag("--json", s.json,
               "print JSON instead of a table (list, status, check, export, import)");
  app.add_flag("--debug", s.debug, "log what export and import do (I/O modes) on stderr");
  app.add_option("--timeout", s.timeout_s,
                 "seconds to wait for a daemon's reply (default 10; 600 for preserve)")
      ->check(CLI::PositiveNumber);
  app.footer("Exit status: 0 done; 1 failed (check: problems found); 2 usage error (check: "
             "any error).\nMust run as root.\n");

  auto named = [&](const char *cmd, const char *help) {
    CLI::App *sub = app.add_subcommand(cmd, help);
    sub->add_option("NAME", s.name, "node name")->required();
    return sub;
  };
  app.add_subcommand("list", "every node (pkram.ko and shm dir): backend, mounted or not, pid, "
                             "state, size, files");
  named("status", "a node's state and usage (from its daemon when mounted)");
  named("preserve", "freeze a mounted node (EROFS), sync it, checkpoint it, mark it preserved");
  named("unpreserve", "make a preserved mounted node writable again");
  named("upgrade", "hand a mounted node to another pkramfs-fuse binary without unmounting: "
                   "the daemon checkpoints and its holder starts the binary (applications "
                   "notice nothing)")
      ->add_option("--exec", s.exec_path,
                   "the pkramfs-fuse binary to run (default: the one installed where the "
                   "running daemon was started from)");
  named("destroy", "throw a node away (refused while it is mounted)");
  named("check", "verify an unmounted node: every CRC and the tree; exit 1 if problems");
  CLI::App *exp = app.add_subcommand(
      "export", "write a node's tree and data to FILE, a self-describing image with CRCs (a "
                "mounted node is preserved, read-only, meanwhile)");
  exp->add_option("NAME", s.name, "node name")->required();
  exp->add_option("FILE", s.file, "the image to write (must not exist)")->required();
  exp->add_flag("--verify", s.verify, "read the image back and check every CRC");
  exp->add_flag("--quiet", s.quiet, "no progress bar and no summary line");
  CLI::App *imp = app.add_subcommand(
      "import", "make node NAME from an export image; every CRC is checked before the node "
                "appears (--backend picks where it goes)");
  imp->add_option("FILE", s.file, "the image to read")->required();
  imp->add_option("NAME", s.name, "node name")->required();
  imp->add_flag("--force", s.force, "replace an existing (unmounted) node NAME");
  imp->add_flag("--quiet", s.quiet, "no progress bar and no summary line");

  // CLI11 would take the next argument as the value of "--shm-dir=": refuse it here instead.
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.starts_with("--") && arg.ends_with("=")) {
      std::cerr << "pkramfs-ctl: option " << arg.substr(0, arg.size() - 1)
                << " needs a value; write " << arg << "VALUE\n";
      return kExitUsage;
    }
  }
  // Name the command CLI11 would only call "extra" or "required".
  static const std::set<std::string_view> kCommands = {
      "list", "status", "preserve", "unpreserve", "upgrade", "destroy", "check", "export",
      "import"};
  bool has_command = false, help = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "-h" || arg == "--help" || arg == "--help-all")
      help = true;
    if (arg == "--shm-dir" || arg == "--run-dir" || arg == "--timeout" || arg == "--backend") {
      ++i; // its value follows
      continue;
    }
    if (arg.starts_with("-"))
      continue;
    if (!kCommands.contains(arg)) {
      if (help)
        break;
      std::cerr << "pkramfs-ctl: unknown command '" << printable(arg)
                << "'; the commands are list, status, preserve, unpreserve, upgrade, destroy, "
                   "check, export, import\n";
      return kExitUsage;
    }
    has_command = true;
    break;
  }
  if (!has_command && !help) {
    std::cerr << "pkramfs-ctl: no command given; usage: pkramfs-ctl [--backend=auto|kmod|shm] "
                 "[--shm-dir=DIR] [--run-dir=DIR] [--json] "
                 "list|status|preserve|unpreserve|upgrade|destroy|check [NAME] | export NAME "
                 "FILE | "
                 "import FILE NAME\n";
    return kExitUsage;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp &) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::CallForAllHelp &) {
    std::cout << app.help("", CLI::AppFormatMode::All);
    return 0;
  } catch (const CLI::ParseError &e) {
    std::string what = e.what();
    std::replace(what.begin(), what.end(), '\n', ' ');
    std::cerr << "pkramfs-ctl: " << what << "; see pkramfs-ctl --help\n";
    return kExitUsage;
  }
  s.command = app.get_subcommands().front()->get_name();
  s.backend = backend == "kmod"  ? Backend::kKmod
              : backend == "shm" ? Backend::kShm
                                 : Backend::kAuto;

  // check reserves 1 for "problems found".
  const int error_exit = s.command == "check" ? kExitUsage : kExitFailed;
  try {
    if (s.command != "list" && !valid_node_name(s.name))
      throw Failure{"invalid node name " + in_quotes(s.name) +
                        "; a node name is 1-127 bytes of [A-Za-z0-9._-], not starting with '.'",
                    kExitUsage};
    if (s.run_dir.empty())
      throw Failure{"--run-dir cannot be empty; omit it for the default", kExitUsage};
    if (::geteuid() != 0)
      fail("must run as root (nodes and control sockets belong to root)",
           "run it with sudo or as root");
    if (s.backend == Backend::kKmod && !PkramDevice::present())
      device_failed(ENOENT);
    if (s.command == "list") {
      std::vector<std::string> dirs;
      if (!s.shm_dir.empty())
        dirs.push_back(s.shm_dir);
      else
        // Every default place that holds nodes: /dev/shm/pkramfs and hugetlbfs mounts.
        for (const std::string &dir : default_node_dirs()) {
          struct stat st {};
          if (dir == kDefaultShmDir || ::stat(dir.c_str(), &st) == 0)
            dirs.push_back(dir);
        }
      return cmd_list(s, dirs);
    }
    const bool shm_dir_given = !s.shm_dir.empty();
    if (s.shm_dir.empty())
      s.shm_dir = default_node_dir(s.name, 0);
    if (s.command == "export" || s.command == "import") {
      // Messages of the I/O layer (--debug) go to stderr, like every other message.
      auto logger = spdlog::stderr_logger_mt("pkramfs-ctl");
      logger->set_pattern("pkramfs-ctl: %l: %v");
      spdlog::set_default_logger(logger);
      spdlog::set_level(s.debug ? spdlog::level::debug : spdlog::level::warn);
      catch_interrupts();
      if (s.file.empty())
        throw Failure{"the image file name cannot be empty", kExitUsage};
    }
    if (s.command == "export")
      return cmd_export(s);
    if (s.command == "import")
      return cmd_import(s, shm_dir_given);
    if (s.command == "status")
      return cmd_status(s);
    if (s.command == "preserve")
      return cmd_preserve(s, true);
    if (s.command == "unpreserve")
      return cmd_preserve(s, false);
    if (s.command == "upgrade")
      return cmd_upgrade(s);
    if (s.command == "destroy")
      return cmd_destroy(s);
    if (s.command == "check")
      return cmd_check(s);
    throw Failure{"unknown command '" + s.command + "'; see pkramfs-ctl --help", kExitUsage};
  } catch (const Failure &f) {
    std::cerr << "pkramfs-ctl: " << f.message << "\n";
    return f.code ? f.code : error_exit;
  } catch (const std::exception &e) {
    std::cerr << "pkramfs-ctl: internal error: " << e.what()
              << "; please report it with the command line\n";
    return error_exit;
  }
}
