#!/bin/bash
# The install (README "Install"), as a user of it would use it:
# cmake --install into a temporary prefix, then a C program built with
# pkg-config and one with find_package(commpress) against it (and run),
# the library's soname, and the Python package imported from the prefix
# with a clean environment (no COMMPRESS_LIB, no LD_LIBRARY_PATH): it must
# load the installed library, not the build tree's.
#
#   tests/install/test_install.sh BUILD_DIR [--deb]
#
# --deb: the same checks on the Debian package (CPack, scripts/package.sh),
# unpacked with dpkg-deb into a temporary root rather than installed with
# dpkg: the test machine's /usr stays as it was (installing it would put
# an installed commpress in front of the build tree's for later tests).
# (No `cmd | grep -q` under pipefail: grep's early exit can kill cmd with
# SIGPIPE and fail the pipe; outputs are captured, then searched.)
set -euo pipefail
build=$(cd "$1" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ "${2:-}" = --deb ]; then
  (cd "$build" && cpack -G DEB >/dev/null)
  debs=("$build"/commpress_*.deb)
  deb=${debs[0]}
  info=$(dpkg-deb -I "$deb")
  grep -q "Depends: libopenmpi3" <<<"$info" || fail_early=1
  dpkg-deb -x "$deb" "$tmp/root"
  p=$tmp/root/usr
  [ -z "${fail_early:-}" ] || { echo "FAIL: $deb does not depend on libopenmpi3" >&2; exit 1; }
else
  p=$tmp/prefix
  cmake --install "$build" --prefix "$p" >/dev/null
fi
libs=("$p"/lib*/)
libdir=${libs[0]%/}
fail() { echo "FAIL: $*" >&2; exit 1; }

real=$(readlink -f "$libdir/libcommpress.so")
dyn=$(objdump -p "$real")
grep -q "SONAME *libcommpress.so.0$" <<<"$dyn" || fail "no soname libcommpress.so.0 on $real"
[ -x "$p/bin/commpress-info" ] || fail "commpress-info not installed"
"$p/bin/commpress-info" --version >/dev/null 2>&1 || "$p/bin/commpress-info" >/dev/null ||
  fail "commpress-info does not run"
for h in commpress.h commpress_fl.h commpress_moe.h; do
  [ -f "$p/include/$h" ] || fail "$h not installed"
done
[ -f "$p/share/doc/commpress/configuration.md" ] || fail "docs not installed"

cat > "$tmp/hello.c" <<'C'
#include <commpress.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
    commpress_config_t c;
    commpress_config_default(&c);
    const char *s = commpress_strerror(0);
    printf("density %g, status 0: %s\n", c.density, s);
    return s && strlen(s) > 0 ? 0 : 1;
}
C
# pkg-config (its prefix found from where the .pc lies)
export PKG_CONFIG_PATH=$libdir/pkgconfig
flags=$(pkg-config --cflags --libs commpress) || fail "pkg-config does not know commpress"
incs=$(pkg-config --cflags-only-I commpress)
inc=${incs%% *}
inc=${inc#-I}
[ "$(readlink -f "$inc")" = "$(readlink -f "$p/include")" ] ||
  fail "pkg-config --cflags gives '$inc', not $p/include"
cc "$tmp/hello.c" $flags -Wl,-rpath,"$libdir" -o "$tmp/hello_pc"
out=$("$tmp/hello_pc") || fail "the pkg-config build does not run"
grep -q "^density 0.01" <<<"$out" || fail "the pkg-config build prints '$out'"
deps=$(ldd "$tmp/hello_pc")
grep -q "$libdir/libcommpress.so.0" <<<"$deps" || fail "hello_pc does not load the installed library"

# find_package(commpress): the imported target commpress::commpress
mkdir "$tmp/fp"
cat > "$tmp/fp/CMakeLists.txt" <<CM
cmake_minimum_required(VERSION 3.25)
project(hello C)
find_package(commpress 0.1 REQUIRED)
add_executable(hello $tmp/hello.c)
target_link_libraries(hello PRIVATE commpress::commpress)
CM
cmake -S "$tmp/fp" -B "$tmp/fp/b" -DCMAKE_PREFIX_PATH="$p" -DCMAKE_BUILD_RPATH="$libdir" >/dev/null ||
  fail "find_package(commpress) failed"
cmake --build "$tmp/fp/b" >/dev/null || fail "the find_package build failed"
out=$("$tmp/fp/b/hello") || fail "the find_package build does not run"
grep -q "^density 0.01" <<<"$out" || fail "the find_package build prints '$out'"

# Python, from the prefix, with nothing else set
py=$p/lib/python3/dist-packages
[ -f "$py/commpress/_install.py" ] || fail "the Python package has no _install.py"
got=$(cd "$tmp" && env -i PATH=/usr/bin:/bin PYTHONPATH="$py" /usr/bin/python3 -c '
import commpress, commpress._lib as L
print(L.lib()._name)
print(commpress.strerror(0))')
loaded=${got%%$'\n'*}
[[ $loaded == "$p/"* ]] || fail "import commpress loaded '$loaded', not the installed library"
echo "install${2:+ ($2)}: pkg-config and find_package builds run, soname libcommpress.so.0, python loads $loaded"
