// backend/node/locate.h: the --backend=auto rule pkramfs-fuse and pkramfs-ctl share.
#include "node/locate.h"

#include <catch2/catch.hpp>

using namespace pkramfs;

TEST_CASE("auto_backend: the backend that holds the node wins, pkram.ko first") {
  for (const bool usable : {false, true})
    for (const bool in_shm : {false, true})
      CHECK(auto_backend({.kmod_usable = usable, .in_kmod = true, .in_shm = in_shm}) ==
            NodeBackend::kKmod);
  for (const bool usable : {false, true})
    CHECK(auto_backend({.kmod_usable = usable, .in_kmod = false, .in_shm = true}) ==
          NodeBackend::kShm);
}

TEST_CASE("auto_backend: a new node goes to pkram.ko when it is usable, else to shm") {
  CHECK(auto_backend({.kmod_usable = true}) == NodeBackend::kKmod);
  CHECK(auto_backend({.kmod_usable = false}) == NodeBackend::kShm);
}
