# Sourced by the project's commands: installs what they need on a fresh machine, then syncs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

need_apt=()
command -v java >/dev/null || need_apt+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null || need_apt+=(maven)
# Prometheus (and promtool) evaluates the alert rules on the running system and in the tests.
command -v prometheus >/dev/null && command -v promtool >/dev/null || need_apt+=(prometheus)
# Alertmanager (and amtool): where the alerts go, grouped by province; the tests check its routing.
command -v prometheus-alertmanager >/dev/null && command -v amtool >/dev/null || need_apt+=(prometheus-alertmanager)
# The tests also need a PostgreSQL server and a browser; running the system does not.
if [[ ${PREPARE_FOR_TESTS:-} ]]; then
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need_apt+=(postgresql)
  command -v chromium >/dev/null && command -v chromedriver >/dev/null || need_apt+=(chromium chromium-driver fonts-noto-core)
  command -v go >/dev/null || need_apt+=(golang-go) # builds toxiproxy, below
  command -v pdftoppm >/dev/null || need_apt+=(poppler-utils) # the token sheets, as images
fi
if ((${#need_apt[@]})); then
  echo "installing ${need_apt[*]} from Debian's packages" >&2
  # Noninteractive: postgresql pulls in tzdata, whose debconf question would wait on a fresh box.
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if ! command -v uv >/dev/null; then
  echo "installing uv from PyPI" >&2
  python3 -m pip install --quiet uv
fi
# The fault tests' TCP proxy (tests/fault/toxiproxy.py), built from the Go module proxy into .cache:
# nothing outside the repo but Go's build cache. Debian 12's Go (1.19) cannot read the go line of
# v2.9.0 and later, so there it gets v2.8.0, the newest it can, whose API the client also speaks.
if [[ ${PREPARE_FOR_TESTS:-} ]]; then
  toxiproxy=v2.12.0
  (($(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/') >= 23)) || toxiproxy=v2.8.0
  # The version check (not mere presence) makes a changed pin rebuild; it costs a few ms.
  if [[ $(.cache/bin/toxiproxy-server -version 2>/dev/null) != *" $toxiproxy" ]]; then
    echo "building toxiproxy-server $toxiproxy from the Go module proxy (a minute cold)" >&2
    # -modcacherw: Go's read-only module cache would otherwise make `rm -rf .cache` fail.
    GOPATH="$PWD/.cache/go" GOMODCACHE="$PWD/.cache/go/mod" GOBIN="$PWD/.cache/go/bin" \
      GOFLAGS=-modcacherw go install -ldflags="-X github.com/Shopify/toxiproxy/v2.Version=$toxiproxy" \
      "github.com/Shopify/toxiproxy/v2/cmd/server@$toxiproxy"
    # go install names it after its package; the rename also means a broken build leaves no binary.
    mkdir -p .cache/bin && mv -f .cache/go/bin/server .cache/bin/toxiproxy-server
  fi
fi
# Bytecode compiled once at install: where PYTHONDONTWRITEBYTECODE is set (as on these
# machines) every service process would otherwise compile its libraries from source, 1.6 s of
# CPU each, and a test run starts a great many.
uv sync --frozen --quiet --compile-bytecode
