#!/usr/bin/env bash
# scripts/install-deps.sh: install the Debian/Ubuntu packages that building and testing
# tidepool need. Idempotent: when every package is installed it does nothing and prints
# nothing. As root it runs apt-get itself; otherwise through `sudo -n` when that works
# without a password, else it prints the apt-get command to run and exits 1.
set -euo pipefail

# Every package the build and the tests need, in one list. When a change needs another
# package (a library, a server the integration tests start), add it here and nowhere else.
PACKAGES=(
    cmake
    make
    gcc
    libc6-dev # gcc only recommends it, and we install without recommends
    pkg-config
    libcmocka-dev
    libssl-dev        # TLS (OpenSSL 3)
    libhttp-parser-dev # HTTP/1.1 response framing
    zlib1g-dev        # Content-Encoding gzip and deflate
    libbrotli-dev     # Content-Encoding br (the tests use its encoder too)
    libzstd-dev       # Content-Encoding zstd
    libnghttp2-dev    # HTTP/2 framing
    nghttp2-server    # nghttpd: the HTTP/2 tests run against a real server
    openssl           # the tests generate their certificates with it
    nginx-light       # the HTTP integration tests run against a real nginx
    tinyproxy-bin     # the proxy tests go through a real proxy (plain and CONNECT)
    libmicrohttpd-dev # the metrics exporter
    prometheus        # promtool validates the exposition; the tests scrape with a real server
    librsvg2-bin      # rsvg-convert renders the CLI's SVG pictures in a test
    libpq-dev         # the PostgreSQL connector
    postgresql        # its tests run against a throwaway cluster on loopback
    libhiredis-dev    # the Redis connector
    redis-server      # its tests run against a throwaway server on loopback
    libjansson-dev    # the fault proxy's JSON schedules and control API
    libbpf-dev        # doctor --trace: loads the eBPF program (CO-RE)
    bpftool           # generates the program's skeleton at build time
    clang             # compiles the eBPF program (-target bpf)
    nftables          # the sidecar test redirects a destination to a local proxy (nft)
    iproute2          # ... inside a network namespace it builds with ip(8)
)

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-deps: not a Debian-like system (no dpkg-query/apt-get);" \
        "make sure these (or their equivalents) are installed: ${PACKAGES[*]}" >&2
    exit 0
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != "install ok installed" ]]; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]} == 0)); then
    exit 0
fi

install_cmd=(apt-get install -y --no-install-recommends "${missing[@]}")

if [[ "$(id -u)" -eq 0 ]]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
    sudo=(sudo -n)
else
    echo "install-deps: missing packages: ${missing[*]}" >&2
    echo "install-deps: not root, and sudo is missing or needs a password; run:" >&2
    echo "  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive ${install_cmd[*]}" >&2
    exit 1
fi

# apt's output is kept out of the way and shown only when something fails.
log=$(mktemp "${TMPDIR:-/tmp}/install-deps.XXXXXX")
trap 'rm -f "$log"' EXIT
if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update </dev/null >"$log" 2>&1 ||
    ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive "${install_cmd[@]}" </dev/null >>"$log" 2>&1; then
    cat "$log" >&2
    echo "install-deps: installing ${missing[*]} failed (output above)" >&2
    exit 1
fi
echo "install-deps: installed ${missing[*]}"
