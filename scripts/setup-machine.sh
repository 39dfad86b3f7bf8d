#!/usr/bin/env bash
# Installs the Debian packages packchain's tests and demo use, if missing (idempotent, needs root).
# openssl: the tests run the real `openssl verify` / `openssl crl` on issued certificates and CRLs.
# socat: pty pairs for simulated serial BMUs.
# chromium: the web page's tests drive Debian's headless Chromium with playwright-core (ledger/web).
# `setup-machine.sh demo` installs only what `npm run demo` needs (socat), so the README's first
# command works on a fresh machine without waiting for the test tools.
set -euo pipefail
need=()
command -v socat >/dev/null || need+=(socat)
if [ "${1:-all}" != demo ]; then
  command -v openssl >/dev/null || need+=(openssl)
  command -v chromium >/dev/null || need+=(chromium)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "setup-machine: please install: ${need[*]}" >&2; exit 1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
