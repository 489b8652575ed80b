#!/usr/bin/env bash
# Installs what the tests need and runs the whole test suite.
# The real test model is read from ../shared/models/stories260K (override with TANDEM_TEST_MODELS).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"

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
