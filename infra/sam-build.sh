#!/usr/bin/env bash
# Builds the Lambda functions for arm64 exactly as a user deploying them
# does: `sam build --beta-features` at the project root, which runs
# cargo-lambda in functions/lambda and writes
# .aws-sam/build/{Api,Worker,Sweeper}Function/bootstrap. tests/aws/deploy.rs
# then checks those files and runs them (under qemu-user on x86-64).
#
# Installs what it needs, once and idempotently: the SAM CLI, cargo-lambda
# and zig (sam-tools.sh), the aarch64 standard library (rustup) and, on a
# machine that is not arm64, qemu-user with the arm64 C library to run the
# result (apt). Cargo's artefacts go to CARGO_TARGET_DIR when it is set (SAM
# copies the binary from the target directory cargo reports), so repeated
# builds on one machine are incremental.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=infra/sam-tools.sh
. "$root/infra/sam-tools.sh"

log() { printf 'sam-build: %s\n' "$*" >&2; }

ensure_aarch64_std() {
    command -v rustup >/dev/null 2>&1 || {
        log "rustup is needed to add the aarch64-unknown-linux-gnu target"
        return 1
    }
    if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
        log "adding the aarch64-unknown-linux-gnu target (rustup, once)"
        rustup target add aarch64-unknown-linux-gnu
    fi
}

ensure_qemu() {
    [ "$(uname -m)" = aarch64 ] && return 0
    if command -v qemu-aarch64 >/dev/null 2>&1 &&
        [ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ]; then
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 || {
        log "running arm64 executables here needs qemu-user and libc6-arm64-cross (Debian packages)"
        return 1
    }
    local sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo -n)
    log "installing qemu-user and libc6-arm64-cross (apt, once)"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq qemu-user libc6-arm64-cross >/dev/null
}

ensure_sam_tools
ensure_aarch64_std
ensure_qemu

cd "$root"
export PATH="$sam_venv/bin:$PATH" SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1
started=$SECONDS
sam build --beta-features
log "sam build took $((SECONDS - started)) s"

# What would be uploaded (SAM shares one artefact between functions built
# alike), unzipped and zipped: Lambda allows 250 MB and 50 MB;
# tests/aws/deploy.rs asserts the limits.
for f in .aws-sam/build/*/bootstrap; do
    "$sam_venv/bin/python" - "$f" <<'PY'
import io, os, sys, zipfile
path = sys.argv[1]
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
    z.write(path, "bootstrap")
print(f"sam-build: {path}: {os.path.getsize(path) / 2**20:.1f} MiB, zipped {len(buf.getvalue()) / 2**20:.1f} MiB",
      file=sys.stderr)
PY
done
