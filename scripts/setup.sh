# Sourced by scripts/serve and scripts/test: installs what a fresh machine lacks.
# A fresh machine has the Rust toolchain and nothing else; RocksDB's bindgen needs libclang.

# Reuse one target dir across clones (CI clones afresh each run): cold RocksDB builds take ~20 min.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/roost/target}"

roost_have_libclang() {
  ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || ls /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1
}

if ! roost_have_libclang; then
  echo "[setup] installing libclang-dev (needed by RocksDB's bindgen)" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libclang-dev >/dev/null
fi
