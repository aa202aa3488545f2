// Where node NAME lives when the user says --backend=auto: the one rule that pkramfs-fuse
// (which node to open or make) and pkramfs-ctl (which node a command acts on, where import
// puts a new one) share, so that both always mean the same node.
#pragma once

namespace pkramfs {

enum class NodeBackend { kKmod, kShm };

// What is known of NAME: whether pkram.ko is loaded and usable, whether it holds a node NAME,
// whether the shm dir holds a file NAME.
struct NodePresence {
  bool kmod_usable = false;
  bool in_kmod = false;
  bool in_shm = false;
};

// The backend that holds NAME, pkram.ko first (a name both hold is refused by the commands that
// care); else pkram.ko when it is usable, so that a new node survives kexec; else shm.
NodeBackend auto_backend(const NodePresence &p);

} // namespace pkramfs
