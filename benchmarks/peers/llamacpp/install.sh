#!/usr/bin/env bash
# Installs the pinned node-llama-cpp (llama.cpp's prebuilt CPU binaries for linux-x64) into this folder's node_modules,
# then checks that the binaries load on this machine. Needs Node.js ≥ 20 and npm. No GPU packages, no source build.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
# --omit=optional skips the CUDA/Vulkan/other-platform binary packages; package.json names the CPU one directly.
# NODE_LLAMA_CPP_SKIP_DOWNLOAD keeps the post-install step (when npm runs it) from building llama.cpp from source.
export NODE_LLAMA_CPP_SKIP_DOWNLOAD=true
# Both packages are pinned exactly in package.json. No lock file: npm 11 cannot `npm ci --omit=optional` from a lock
# that lists the other platforms' binary packages.
npm install --omit=optional --no-package-lock --no-audit --no-fund
node bench.mjs --check
