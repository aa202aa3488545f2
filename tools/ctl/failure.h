// How pkramfs-ctl fails: a Failure thrown by any command and printed by main() as one line
// "pkramfs-ctl: <problem>; <fix>" with the exit code.
#pragma once

#include "settings.h"

#include <string>

namespace pkramfs::ctl {

// An error for the user: printed as one line "pkramfs-ctl: <problem>; <fix>".
struct Failure {
  std::string message;
  int code = kExitFailed;
};

// REQUIRES: `problem` and `fix` are printable (see printable() in text.h).
[[noreturn]] inline void fail(const std::string &problem, const std::string &fix, int code = 0) {
  throw Failure{fix.empty() ? problem : problem + "; " + fix, code};
}

} // namespace pkramfs::ctl
