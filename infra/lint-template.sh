#!/usr/bin/env bash
# Lints template.yaml with cfn-lint and `sam validate --lint`, both from PyPI,
# installed once into their own virtualenv under the cache directory. Works
# offline once installed (no AWS account or credentials needed).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${FAILOVER_CACHE:-$HOME/.cache/failover-gateway}"
venv="$cache/sam-venv"
SAM_VERSION=1.170.0

if ! [ -x "$venv/bin/sam" ] || [ "$(cat "$venv/.version" 2>/dev/null)" != "$SAM_VERSION" ]; then
    echo "lint-template: installing aws-sam-cli $SAM_VERSION (brings cfn-lint; once, ~1 min)" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "aws-sam-cli==$SAM_VERSION"
    echo "$SAM_VERSION" >"$venv/.version"
fi

cd "$root"
export SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1
"$venv/bin/cfn-lint" template.yaml
"$venv/bin/sam" validate --lint -t template.yaml
echo "template.yaml: cfn-lint and sam validate --lint passed"
