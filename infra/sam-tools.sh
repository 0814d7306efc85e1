# Sourced by lint-template.sh and sam-build.sh: the SAM CLI (which brings
# cfn-lint), cargo-lambda and zig (the cross linker cargo-lambda uses), all
# from PyPI, installed once into one virtualenv under the cache directory.
# Versions are pinned to the ones verified on these machines
# (../shared/EMULATORS.md); a change of pin reinstalls.
#
#   . infra/sam-tools.sh && ensure_sam_tools   # then "$sam_venv/bin" holds sam, cfn-lint, cargo-lambda

SAM_VERSION=1.170.0
CARGO_LAMBDA_VERSION=1.9.2
ZIGLANG_VERSION=0.17.0

sam_venv="${FAILOVER_CACHE:-$HOME/.cache/failover-gateway}/sam-venv"

ensure_sam_tools() {
    local pins="aws-sam-cli==$SAM_VERSION cargo-lambda==$CARGO_LAMBDA_VERSION ziglang==$ZIGLANG_VERSION"
    if [ -x "$sam_venv/bin/sam" ] && [ -x "$sam_venv/bin/cargo-lambda" ] &&
        [ "$(cat "$sam_venv/.version" 2>/dev/null)" = "$pins" ]; then
        return 0
    fi
    command -v python3 >/dev/null 2>&1 || { echo "sam-tools: python3 is needed to install $pins" >&2; return 1; }
    echo "sam-tools: installing $pins (once, ~2 min)" >&2
    rm -rf "$sam_venv"
    python3 -m venv "$sam_venv"
    # shellcheck disable=SC2086 # $pins is a list
    "$sam_venv/bin/pip" install --quiet --disable-pip-version-check $pins
    echo "$pins" >"$sam_venv/.version"
}
