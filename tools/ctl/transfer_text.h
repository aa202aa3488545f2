// What pkramfs-ctl says about an export or an import: rates, I/O modes, the tree, --json.
#pragma once

#include "json.h"
#include "export/node_export.h"

#include <pkramfs/export_format.h>

#include <cstdint>
#include <string>

namespace pkramfs::ctl {

std::string rate_text(uint64_t bytes, double seconds);
// "O_DIRECT, io_uring" and the like.
std::string io_text(const TransferReport &r);
std::string uuid_text(const uint8_t (&u)[16]);
// "N files, N directories, N other inodes, X of data".
std::string tree_text(const pkramfs_export_header &h);
void write_transfer_json(control::JsonWriter &w, const TransferReport &r);

} // namespace pkramfs::ctl
