#!/usr/bin/env bash
# Installs what building and testing MoRAgent needs on a fresh Debian machine, and does nothing
# when it is already there: OpenBLAS (every matrix product), libffi, pkg-config, LuaJIT (the Lua
# binding's tests). Source it or run it; it exits non-zero with a message when it cannot install.
set -euo pipefail
need=()
pkg-config --exists openblas 2>/dev/null || need+=(libopenblas-dev)
[ -e /usr/include/ffi.h ] || [ -e /usr/include/x86_64-linux-gnu/ffi.h ] || need+=(libffi-dev)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v luajit >/dev/null || need+=(luajit)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! command -v swift >/dev/null; then
  if [ -x /opt/swift/usr/bin/swift ]; then
    echo "setup: add /opt/swift/usr/bin to PATH" >&2
  else
    echo "setup: no Swift toolchain found (need Swift 6); see https://swift.org/install" >&2
    exit 1
  fi
fi
