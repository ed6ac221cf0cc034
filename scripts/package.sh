#!/bin/bash
# Builds the Debian package of the install (CPack's DEB generator, prefix
# /usr): build/commpress_<version>_<arch>.deb. Install it with
#   apt-get install ./build/commpress_*.deb
# (or dpkg -i after installing libopenmpi3). tests/install/test_install.sh
# --deb checks its contents the way a user would use them.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/CMakeCache.txt ] || bash scripts/build.sh
cmake --build build -j"$(nproc)" >/dev/null
(cd build && cpack -G DEB >/dev/null)
ls build/commpress_*.deb
