#!/usr/bin/env bash
# Installs what the tests need and runs the whole test suite.
# The real test model is read from ../shared/models/stories260K (override with TANDEM_TEST_MODELS).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"

# System packages the tests use. Installed when missing, in CI (CI=true) or when running as root; add packages to the list.
apt_packages=(chromium etcd-server nats-server)
missing=()
for package in "${apt_packages[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" = "0" ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    elif [ "${CI:-}" = "true" ] && command -v sudo >/dev/null; then
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    else
        echo "test.sh: warning: missing packages: ${missing[*]} (apt-get install -y ${missing[*]}); tests that need them will be skipped" >&2
    fi
fi

models="${TANDEM_TEST_MODELS:-$root/../shared/models}"
if [ ! -f "$models/stories260K/stories260K.gguf" ]; then
    if [ "${CI:-}" = "true" ]; then
        echo "test.sh: the test model $models/stories260K/stories260K.gguf is missing" >&2
        exit 1
    fi
    echo "test.sh: warning: $models/stories260K/stories260K.gguf is missing; tests that need it will be skipped" >&2
fi
export TANDEM_TEST_MODELS="$models"

dotnet build Tandem.slnx -c Release -nologo -clp:ErrorsOnly
dotnet test --solution Tandem.slnx -c Release --no-build "$@"
