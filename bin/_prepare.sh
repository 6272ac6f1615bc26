# Sourced by the project's commands: installs what they need on a fresh machine, then syncs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

need_apt=()
command -v java >/dev/null || need_apt+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null || need_apt+=(maven)
# The tests also need a PostgreSQL server, promtool and a browser; running the system does not.
if [[ ${PREPARE_FOR_TESTS:-} ]]; then
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need_apt+=(postgresql)
  command -v promtool >/dev/null || need_apt+=(prometheus)
  command -v chromium >/dev/null && command -v chromedriver >/dev/null || need_apt+=(chromium chromium-driver fonts-noto-core)
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
uv sync --frozen --quiet
