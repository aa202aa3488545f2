// pkramfs-ctl export and import: a node's tree and file data as one self-describing image
// (pkramfs/export_format.h, docs/format.md "Export images"), written and read with image_io.
//
// Export reads a node restored offline (node_inspect.h) and its data blocks with pread(); it
// never writes to the node. Import builds a new node with the daemon's own code: Node,
// Filesystem::load_image, the data copied into the blocks the image names, Node::checkpoint,
// state clean. Every CRC is checked before the caller makes the node visible.
#pragma once

#include "fs/filesystem.h"
#include "node/node.h"
#include "node/node_inspect.h"
#include "pkramfs/export_format.h"
#include "util/result.h"
#include "util/unique_fd.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace pkramfs {

struct TransferHooks {
  std::function<void(uint64_t done, uint64_t total)> progress; // bytes of the image; may be empty
  std::function<bool()> cancelled; // true: stop with ECANCELED; may be empty
};

struct TransferReport {
  pkramfs_export_header header{};
  uint32_t stream_crc32c = 0; // the trailer's
  uint64_t bytes = 0;         // of the image
  double seconds = 0;
  bool direct = false; // O_DIRECT on the image file
  bool uring = false;  // io_uring
};

// ------------------------------------------------------------------ the format --

// The extent records of a tree, in image order: its written data blocks, runs that are
// contiguous in the file and the node joined, cut into records of at most
// PKRAMFS_EXPORT_MAX_EXTENT_BLOCKS blocks, in ascending block order. The same logical tree
// gives the same records however its extent maps happen to be split.
std::vector<Filesystem::DataExtent> export_records(const Filesystem &fs);

// Size of an image with these contents.
uint64_t export_image_bytes(uint64_t checkpoint_bytes, uint64_t nr_extents, uint64_t data_blocks);
// Sets the CRC fields.
void seal(pkramfs_export_header &h);
void seal(pkramfs_export_extent &e);
void seal(pkramfs_export_trailer &t);
// What is wrong with a header, or empty: magic, version, CRC, geometry this build can make,
// sizes that add up.
std::string check_export_header(const pkramfs_export_header &h);
bool crc_ok(const pkramfs_export_extent &e);
bool crc_ok(const pkramfs_export_trailer &t);
// "the checkpoint image (bytes 240-1023)": what of the image holds byte `offset`.
std::string export_part_at(const pkramfs_export_header &h, uint64_t offset);

// ---------------------------------------------------------------- export, import --

// Writes the export image of `node` (restored offline; its data read from `node_fd` with
// pread at block * 4096) to `path`, which must not exist (EEXIST). On failure the file is
// removed and `why` says what failed and where.
Result<TransferReport> export_node(const OfflineNode &node, int node_fd, const std::string &path,
                                   const TransferHooks &hooks, std::string &why);

// The header of the image at `path`, checked (magic, version, CRC, sizes against the file's).
// EINVAL with `why` naming the problem and its byte offset when it is not a valid image.
Result<pkramfs_export_header> read_export_header(const std::string &path, std::string &why);

// The node an import fills.
struct NewNode {
  std::unique_ptr<Node> node; // fresh
  // When valid, file data is written with pwrite() at byte block * 4096 of this fd (a node
  // file opened for writing): no page faults on the node's mapping, which are dear in VMs.
  // Otherwise it is copied through the node's mapping.
  UniqueFd data_fd;
};
// Makes the node an import fills with these parameters, or an error with `why`.
using MakeNode = std::function<Result<NewNode>(const NodeParams &params, std::string &why)>;

// Reads the image at `path` and checks every CRC and that the records are exactly the tree's
// data. With `make`, builds a node from it (called once the header and the checkpoint image
// are valid), writes its checkpoint and marks it clean; without, only verifies (into a
// throwaway tree). EINVAL with `why` naming what and the byte offset when the image is not
// valid; other errors (I/O, ENOSPC, ECANCELED) with `why` saying what failed.
Result<TransferReport> import_image(const std::string &path, const MakeNode *make,
                                    const TransferHooks &hooks, std::string &why);

} // namespace pkramfs
