// pkramfs-ctl's commands, one file each (cmd_NAME.cpp); main.cpp parses the command line and
// calls one. Each returns the exit code or throws a Failure (failure.h).
// REQUIRES: s.name is a valid node name (but for list), s.shm_dir is set (list: `dirs`).
#pragma once

#include "settings.h"

#include <string>
#include <vector>

namespace pkramfs::ctl {

// Every node of the shm dirs `dirs` and of pkram.ko, as --backend says.
int cmd_list(const Settings &s, const std::vector<std::string> &dirs);
int cmd_status(const Settings &s);
// preserve and unpreserve: both need a daemon.
int cmd_preserve(const Settings &s, bool preserve);
int cmd_destroy(const Settings &s);
int cmd_check(const Settings &s);
// Hands a mounted node to another pkramfs-fuse binary (s.exec_path; empty: the installed one).
int cmd_upgrade(const Settings &s);
int cmd_export(const Settings &s);
// `shm_dir_given`: --shm-dir was given; else the directory is chosen by the image's size.
int cmd_import(Settings &s, bool shm_dir_given);

} // namespace pkramfs::ctl
