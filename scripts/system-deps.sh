#!/usr/bin/env bash
# Debian packages kwslib uses: the TTS engines behind `kws synth`, and Chromium for the browser tests (reports, app).
# As root: installs what is missing. Otherwise: prints the exact command to run, and carries on
# (kws synth skips a missing engine with a warning; the tests that need one are skipped with the reason).
set -euo pipefail
packages=(espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts chromium)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: no apt-get here. Install the TTS engines yourself, e.g. on macOS: brew install espeak-ng flite festival" >&2
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  echo "system-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "system-deps: missing Debian packages. Run: sudo apt-get install -y ${missing[*]}" >&2
fi
