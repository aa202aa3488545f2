# CPack pre-build script of a build configured with -DPKRAMFS_FAULT_INJECTION=ON: such binaries
# are for tests only (a root user could make the daemon fail or kill itself on purpose), so no
# package is made of them.
message(FATAL_ERROR "this build has fault injection compiled in (PKRAMFS_FAULT_INJECTION=ON); "
                    "package a build configured with -DPKRAMFS_FAULT_INJECTION=OFF")
