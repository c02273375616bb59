#!/usr/bin/env bash
# Idempotent set-up of everything pilotfish needs on a Debian machine, as root:
# system packages (capture libraries, reference tools, the real servers the testbed runs),
# uv, and the project's virtualenv with the pinned Python packages.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  libpcap-dev libpcap0.8 tcpdump tshark iproute2 ethtool procps
  libxdp-dev libbpf-dev xdp-tools clang llvm gcc make
  nginx-light redis-server dnsmasq-base dnsutils curl
  wrk iperf3 netsniff-ng tcpreplay
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "bootstrap: installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PY=${PYTHON:-python3}
if ! command -v uv >/dev/null 2>&1; then
  echo "bootstrap: installing uv"
  "$PY" -m pip install -q uv
fi

if [ ! -x .venv/bin/python ]; then
  uv venv -q --python "$(command -v "$PY")" .venv
fi
# Install exactly the pinned set, then the project itself (editable).
stamp=.venv/.pilotfish-lock
if [ ! -f "$stamp" ] || ! cmp -s requirements.lock "$stamp"; then
  # Bytecode compiled once here: uv does not by default, and where PYTHONDONTWRITEBYTECODE
  # is set every command would otherwise compile all it imports on each start (0.3 s more).
  uv pip sync -q --compile-bytecode --python .venv/bin/python requirements.lock
  cp requirements.lock "$stamp"
  rm -f .venv/.pilotfish-compiled  # sync removed the project itself: install it again
fi
# The hot path is compiled (setup.py): build when the compiled source changed since the last
# build, or always with nothing to compare.  PILOTFISH_PURE=1 runs it all interpreted.
if [ "${PILOTFISH_PURE:-}" = 1 ]; then
  find src -name '*.cpython-*.so' -delete
  rm -f .venv/.pilotfish-compiled
  PILOTFISH_PURE=1 uv pip install -q --python .venv/bin/python --no-deps --no-build-isolation \
    --reinstall-package pilotfish -e .
  .venv/bin/python scripts/compiled.py stamp
elif [ ! -x .venv/bin/pilotfish ] || ! .venv/bin/python scripts/compiled.py check; then
  echo "bootstrap: compiling the hot path (about a minute)"
  uv pip install -q --python .venv/bin/python --no-deps --no-build-isolation \
    --reinstall-package pilotfish -e .
  .venv/bin/python scripts/compiled.py stamp
fi
# The project's own modules too (quick when nothing changed; an edited module is recompiled in
# memory until the next install).
.venv/bin/python -m compileall -q src
