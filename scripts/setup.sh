# Sourced by scripts/serve and scripts/test: installs what a fresh machine lacks.
# A fresh machine has the Rust toolchain and nothing else; RocksDB's bindgen needs libclang.

# Reuse one target dir across clones (CI clones afresh each run): cold RocksDB builds take ~20 min.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/roost/target}"

# The names clang-sys's build script looks for: `libclang.so` or `libclang-<version>.so`. Not a
# wider glob: libclang-cpp (which other packages pull in) matches `libclang*.so*` but isn't it.
roost_have_libclang() {
  [ -n "${LIBCLANG_PATH:-}" ] && return 0
  local f
  for f in /usr/lib/llvm-*/lib/libclang.so /usr/lib/llvm-*/lib/libclang-[0-9]*.so \
    /usr/lib/*-linux-gnu/libclang.so /usr/lib/*-linux-gnu/libclang-[0-9]*.so; do
    [ -e "$f" ] && return 0
  done
  return 1
}

if ! roost_have_libclang; then
  echo "[setup] installing libclang-dev (needed by RocksDB's bindgen)" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libclang-dev >/dev/null
fi
