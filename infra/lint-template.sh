#!/usr/bin/env bash
# Lints template.yaml with cfn-lint and `sam validate --lint` (installed by
# sam-tools.sh). Works offline once installed (no AWS account or
# credentials needed).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=infra/sam-tools.sh
. "$root/infra/sam-tools.sh"
ensure_sam_tools

cd "$root"
export SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1
"$sam_venv/bin/cfn-lint" template.yaml
"$sam_venv/bin/sam" validate --lint -t template.yaml
echo "template.yaml: cfn-lint and sam validate --lint passed"
