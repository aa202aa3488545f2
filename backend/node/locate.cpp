#include "node/locate.h"

namespace pkramfs {

NodeBackend auto_backend(const NodePresence &p) {
  if (p.in_kmod)
    return NodeBackend::kKmod;
  if (p.in_shm)
    return NodeBackend::kShm;
  return p.kmod_usable ? NodeBackend::kKmod : NodeBackend::kShm;
}

} // namespace pkramfs
