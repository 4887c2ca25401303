#!/usr/bin/env bash
# scripts/nginx-test.sh: a throwaway loopback nginx for the HTTP integration tests.
#
#   nginx-test.sh start DIR     fresh certificates, seven free ports, nginx started, DIR/env
#   nginx-test.sh stop DIR      stops it; succeeds when nothing runs
#   nginx-test.sh restart DIR   stop, then start again with the SAME ports and certificates
#                               (also starts a stopped one), for "server restarted while
#                               the client's connections were idle" tests
#
# Exit status: 0 ok, 1 error, 2 usage, 77 nginx (or openssl) is not installed, which
# ctest reports as "skipped". Everything nginx writes stays in DIR; only 127.0.0.1 is used.
#
# What it serves (tests rely on this; keep docs/tests in step when changing it):
#   server 1, NGINX_HTTP_PORT: keepalive_timeout 75s, keepalive_requests 1000000
#     /         200, "hello, world\n" (13 bytes, Content-Length, text/plain)
#     /close    the same body with "Connection: close" (keepalive_timeout 0)
#     /status   204, no body
#     /big      1 MiB (1048576 bytes): 65536 lines of 16 bytes, line k = printf("%015d\n", k)
#     /huge     100 MiB (104857600 bytes) of zeros (a sparse file)
#     /ka-hint  the 13-byte body plus "Keep-Alive: timeout=3"; the server really closes
#               that connection after 3 s idle
#     /echo     200 with the request body as the response body (Content-Length), any
#               method, bodies up to 1 MiB (413 beyond), chunked request bodies accepted;
#               each request it answers is logged in DIR/echo.log as its $request_uri
#               (one line each: what the server saw, for at-most-once checks)
#     /chunked  "hello, world\n" in two chunks (Transfer-Encoding: chunked); only when
#               the echo module is installed (NGINX_CHUNKED=1 in DIR/env), else 404
#     /remote   200, the client's address as nginx saw it ($remote_addr; "unix:" over
#               the socket)
#     /redir/301, /redir/302 -> /; /redir/303, /redir/307, /redir/308 -> /echo;
#     /redir/rel -> "../remote" (a relative Location); /redir/loop -> itself;
#     /redir/tls -> https://localhost:NGINX_HTTPS_PORT/auth (another origin)
#     /auth     200, "auth=<Authorization> cookie=<Cookie>" as received (also on server 3,
#               with /redir/same -> /auth there)
#     /gz       /big compressed by nginx itself (gzip on: chunked, Content-Encoding gzip)
#               when the request accepts gzip; /big as it is otherwise
#     /enc/C/F  the file DIR/www/enc/C/F that a test wrote (already encoded) with
#               "Content-Encoding: C" added, for C in gzip, br, zstd, compress (a
#               coding no client offers) and gzip-br ("Content-Encoding: gzip, br")
#     the same server also listens on the Unix socket DIR/nginx.sock (NGINX_UNIX_SOCKET)
#   server 2, NGINX_HTTP_SHORT_KA_PORT: keepalive_timeout 1s; / as above
#   server 3, NGINX_HTTPS_PORT: TLS 1.2 and 1.3, certificate for DNS:localhost,
#     IP:127.0.0.1 and IP:::1 signed by DIR/ca.pem, session cache and tickets on; / and /big
#   server 4, NGINX_HTTPS_WRONG_NAME_PORT: TLS as server 3 but its certificate (signed by
#     the same CA) names only DNS:wrong-name.invalid, so https://127.0.0.1:PORT/ and
#     https://localhost:PORT/ fail host name verification while the chain is trusted
#     (only 127.0.0.1 may be used, so a second address cannot play the wrong host); /
#   server 5, NGINX_HTTPS_MTLS_PORT: TLS as server 3, and a client certificate signed by
#     DIR/ca.pem is required (ssl_verify_client on): / answers 200 with the certificate's
#     subject ("CN=tidepool test client"); without one nginx answers 400. The client's
#     certificate is DIR/client.pem with the key DIR/client.key, and the same key
#     encrypted with the passphrase "tidepool" in DIR/client-enc.key
#   server 6, NGINX_HTTPS_H2_PORT: TLS as server 3 with HTTP/2 (ALPN h2, http/1.1 still
#     offered); keepalive_timeout 75s, keepalive_requests 100 (nginx sends GOAWAY after
#     100 requests on one connection), http2_max_concurrent_streams 128
#     /         200, "hello, world\n" (13 bytes)
#     /big      the 1 MiB body of server 1's /big
#     /uri      200, the request's own $request_uri (each response names its request)
#     /status   204, no body
#     /echo     the request body echoed as on server 1 (up to 1 MiB), but not logged
#               in DIR/echo.log
#   server 7, NGINX_H2C_PORT: cleartext HTTP/2 with prior knowledge only (no HTTP/1.1,
#     no Upgrade: h2c); keepalive_timeout 75s, keepalive_requests 100 (GOAWAY after 100
#     requests), http2_max_concurrent_streams 128; /, /big, /uri, /status, /echo as on
#     server 6
#
# DIR/env holds KEY=VALUE lines, no quotes, no comments: both `. DIR/env` and a
# line-by-line split at the first '=' read it. That is why DIR may only contain
# characters that need no quoting in a shell.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin" # nginx lives in sbin, often missing from a user's PATH

usage() {
    echo "usage: $0 start|stop|restart DIR" >&2
    exit 2
}
die() {
    echo "nginx-test: $*" >&2
    exit 1
}
[[ $# -eq 2 && -n "$2" ]] || usage
cmd=$1
dir=$2
case "$cmd" in start | stop | restart) ;; *) usage ;; esac

# True when something accepts TCP connections on 127.0.0.1:$1 (bash's /dev/tcp; a closed
# loopback port refuses at once, so this never hangs).
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# The running master's pid, if DIR/nginx.pid names a live nginx started on DIR's config.
# Checking the command line protects against a stale pid file whose number was reused, and
# a zombie (a container whose init does not reap) counts as gone.
master_pid() {
    local pid state
    [[ -f "$dir/nginx.pid" ]] || return 1
    pid=$(tr -dc 0-9 2>/dev/null <"$dir/nginx.pid") || return 1
    [[ -n "$pid" && -r "/proc/$pid/stat" ]] || return 1
    state=$(sed 's/^.*) \(.\).*$/\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ "$state" != Z ]] || return 1
    tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$dir/nginx.conf" || return 1
    echo "$pid"
}

# Pids whose parent is $1 (the workers of a master), from /proc so procps is not needed.
children_of() {
    local f stat ppid
    for f in /proc/[0-9]*/stat; do
        { stat=$(<"$f"); } 2>/dev/null || continue
        read -r _ ppid _ <<<"${stat##*) }" # fields after "pid (comm) ": state ppid ...
        if [[ "$ppid" == "$1" ]]; then
            f=${f#/proc/}
            echo "${f%/stat}"
        fi
    done
    return 0
}

# The seven ports recorded in DIR/env by the last start, on one line.
env_ports() {
    local k p found=()
    [[ -f "$dir/env" ]] || return 1
    for k in NGINX_HTTP_PORT NGINX_HTTP_SHORT_KA_PORT NGINX_HTTPS_PORT \
        NGINX_HTTPS_WRONG_NAME_PORT NGINX_HTTPS_MTLS_PORT NGINX_HTTPS_H2_PORT \
        NGINX_H2C_PORT; do
        p=$(sed -n "s/^$k=//p" "$dir/env")
        [[ "$p" =~ ^[0-9]+$ ]] || return 1
        found+=("$p")
    done
    echo "${found[*]}"
}

do_stop() {
    local pid i
    pid=$(master_pid) || return 0
    # TERM is nginx's fast shutdown: idle keep-alive connections are closed at once,
    # which is what a "server went away" test wants to see.
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        master_pid >/dev/null || break
        sleep 0.1
    done
    if master_pid >/dev/null; then
        echo "nginx-test: nginx $pid ignored TERM for 5 s, killing it" >&2
        # Workers outlive a KILLed master and keep the listening sockets: kill them too.
        local workers
        mapfile -t workers < <(children_of "$pid")
        kill -KILL "${workers[@]}" "$pid" 2>/dev/null || true
        sleep 0.2
    fi
    rm -f "$dir/nginx.pid"
    # The master is gone; its workers may take a moment longer to drop the sockets.
    local ports
    ports=$(env_ports) || return 0
    for ((i = 0; i < 50; i++)); do
        local busy=0 p
        for p in $ports; do port_open "$p" && busy=1; done
        ((busy)) || return 0
        sleep 0.1
    done
    echo "nginx-test: warning: a port of $ports still accepts connections after stop" >&2
    return 0
}

# Free ports for the seven servers. Chosen below the kernel's ephemeral range when there
# is room, so that no outgoing connection of a test can take one between stop and
# restart; each candidate is checked by binding it (with SO_REUSEADDR, as nginx binds).
pick_ports() {
    local lo=10000 hi eph_lo
    eph_lo=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    hi=$((eph_lo - 1))
    ((hi - lo >= 1000)) || { lo=0 && hi=0; } # no room: let the kernel choose (port 0)
    if command -v python3 >/dev/null 2>&1 &&
        python3 - "$lo" "$hi" <<'PY'; then
import random, socket, sys
lo, hi = int(sys.argv[1]), int(sys.argv[2])
held = []
for _ in range(500):
    if len(held) == 7:
        break
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", random.randint(lo, hi) if hi else 0))
        held.append(s)
    except OSError:
        s.close()
if len(held) < 7:
    sys.exit(1)
print(" ".join(str(s.getsockname()[1]) for s in held))
PY
        return 0
    fi
    # No python3: probe random candidates; a refused connection means nobody listens. A
    # port bound without listening slips through, and nginx's bind then fails: start
    # retries with new ports.
    ((hi > 0)) || { lo=20000 && hi=29999; }
    local found=() p tries
    for ((tries = 0; tries < 500 && ${#found[@]} < 7; tries++)); do
        p=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo + 1)))
        [[ " ${found[*]} " == *" $p "* ]] && continue
        port_open "$p" || found+=("$p")
    done
    ((${#found[@]} == 7)) || return 1
    echo "${found[*]}"
}

# A test CA and a server certificate signed by it, EC P-256 (fast to generate). Our own
# openssl config, so that the system's openssl.cnf cannot add or veto extensions.
gen_certs() {
    local c="$dir/tls"
    mkdir -p "$c"
    cat >"$c/openssl.cnf" <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1,IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
[client_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
[wrong_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:wrong-name.invalid
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
CNF
    (
        set -e
        exec 2>"$c/openssl.log" >&2
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$c/ca.key"
        openssl req -config "$c/openssl.cnf" -x509 -new -key "$c/ca.key" -days 30 \
            -subj "/CN=tidepool test CA" -extensions ca_ext -out "$dir/ca.pem"
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/server.key"
        openssl req -config "$c/openssl.cnf" -new -key "$dir/server.key" \
            -subj "/CN=localhost" -out "$c/server.csr"
        openssl x509 -req -in "$c/server.csr" -CA "$dir/ca.pem" -CAkey "$c/ca.key" \
            -set_serial "0x$(openssl rand -hex 8)" -days 30 \
            -extfile "$c/openssl.cnf" -extensions server_ext -out "$dir/server.pem"
        openssl verify -CAfile "$dir/ca.pem" "$dir/server.pem"
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$c/wrong.key"
        openssl req -config "$c/openssl.cnf" -new -key "$c/wrong.key" \
            -subj "/CN=wrong-name.invalid" -out "$c/wrong.csr"
        openssl x509 -req -in "$c/wrong.csr" -CA "$dir/ca.pem" -CAkey "$c/ca.key" \
            -set_serial "0x$(openssl rand -hex 8)" -days 30 \
            -extfile "$c/openssl.cnf" -extensions wrong_ext -out "$c/wrong.pem"
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/client.key"
        openssl req -config "$c/openssl.cnf" -new -key "$dir/client.key" \
            -subj "/CN=tidepool test client" -out "$c/client.csr"
        openssl x509 -req -in "$c/client.csr" -CA "$dir/ca.pem" -CAkey "$c/ca.key" \
            -set_serial "0x$(openssl rand -hex 8)" -days 30 \
            -extfile "$c/openssl.cnf" -extensions client_ext -out "$dir/client.pem"
        openssl pkey -in "$dir/client.key" -aes-256-cbc -passout pass:tidepool \
            -out "$dir/client-enc.key"
    ) || die "certificate generation failed: $(tail -n 5 "$c/openssl.log")"
    chmod 600 "$dir/server.key" "$c/ca.key" "$c/wrong.key" "$dir/client.key" "$dir/client-enc.key"
}

# The static files behind the locations (see the header comment).
gen_files() {
    mkdir -p "$dir/www" "$dir/tmp"
    printf 'hello, world\n' >"$dir/www/body"
    awk 'BEGIN { for (i = 0; i < 65536; i++) printf "%015d\n", i }' >"$dir/www/big"
    [[ $(wc -c <"$dir/www/big") -eq 1048576 ]] || die "could not write $dir/www/big"
    truncate -s 104857600 "$dir/www/huge" # sparse: 100 MiB of zeros, no disk
    mkdir -p "$dir/www/enc/gzip" "$dir/www/enc/br" "$dir/www/enc/zstd" \
        "$dir/www/enc/compress" "$dir/www/enc/gzip-br"
}

write_conf() {
    local p1=$1 p2=$2 p3=$3 p4=$4 p5=$5 p6=$6 p7=$7 user="" echo_mod="" chunked=""
    # As root, nginx's workers drop to "nobody", who may not be able to read DIR (a build
    # tree under /root, say). Keep them root: this nginx only ever listens on loopback.
    [[ $EUID -eq 0 ]] && user="user root;"
    # Debian's nginx-light depends on the echo module; it is the only way to get a chunked
    # response out of stock nginx. Optional elsewhere.
    local m=/usr/lib/nginx/modules/ngx_http_echo_module.so
    if [[ -f "$m" ]]; then
        echo_mod="load_module $m;"
        chunked='location = /chunked { default_type text/plain; echo -n "hello, "; echo_flush; echo "world"; }'
        NGINX_CHUNKED=1
    else
        NGINX_CHUNKED=0
    fi
    # Stock nginx cannot echo a body directly: proxying makes it read the body into
    # \$request_body, the upstream (server 1's /echo-teapot) answers 418, and error_page
    # hands the request with its body to the server's own @echo.
    local echo_proxy
    echo_proxy=$(
        cat <<ECHO
    location = /echo {
      client_max_body_size 1m;
      client_body_buffer_size 1m;
      client_body_in_single_buffer on;
      proxy_pass http://127.0.0.1:$p1/echo-teapot;
      proxy_intercept_errors on;
      error_page 418 = @echo;
    }
ECHO
    )
    # What both HTTP/2 servers (6 and 7) serve. /echo is as on server 1 (whose
    # /echo-teapot answers 418), but not logged.
    local h2_common
    h2_common=$(
        cat <<H2
    keepalive_timeout 75s;
    keepalive_requests 100;
    http2_max_concurrent_streams 128;
    location = / { try_files /body =404; }
    location = /big { try_files /big =404; }
    location = /uri { return 200 "\$request_uri"; }
    location = /status { return 204; }
$echo_proxy
    location @echo {
      default_type application/octet-stream;
      return 200 \$request_body;
    }
H2
    )
    cat >"$dir/nginx.conf" <<CONF
# Generated by scripts/nginx-test.sh; rewritten at every start.
$echo_mod
$user
worker_processes 1;
daemon on;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
worker_rlimit_nofile 8192;
events { worker_connections 4096; }
http {
  access_log off;
  log_format request_uri '\$request_uri';
  server_tokens off;
  keepalive_requests 1000000;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  root $dir/www;
  default_type text/plain;
  server {
    listen 127.0.0.1:$p1;
    listen unix:$dir/nginx.sock;
    keepalive_timeout 75s;
    location = / { try_files /body =404; }
    location = /remote { return 200 "\$remote_addr"; }
    location = /close { keepalive_timeout 0; try_files /body =404; }
    location = /status { return 204; }
    location = /big { try_files /big =404; }
    location = /huge { try_files /huge =404; }
    location = /gz {
      gzip on; gzip_min_length 0; gzip_types text/plain; gzip_comp_level 6;
      try_files /big =404;
    }
    # Bodies the tests encoded: nginx frames them (Content-Length) and names the coding.
    location /enc/gzip/ { add_header Content-Encoding gzip; }
    location /enc/br/ { add_header Content-Encoding br; }
    location /enc/zstd/ { add_header Content-Encoding zstd; }
    location /enc/compress/ { add_header Content-Encoding compress; }
    location /enc/gzip-br/ { add_header Content-Encoding "gzip, br"; }
    location = /ka-hint { keepalive_timeout 3s; add_header Keep-Alive "timeout=3"; try_files /body =404; }
    # /echo: see echo_proxy above.
$echo_proxy
    location = /echo-teapot { return 418; }
    # Redirects (the client follows them only with max_redirects).
    location = /redir/301 { return 301 /; }
    location = /redir/302 { return 302 /; }
    location = /redir/303 { return 303 /echo; }
    location = /redir/307 { return 307 /echo; }
    location = /redir/308 { return 308 /echo; }
    location = /redir/rel { absolute_redirect off; return 302 ../remote; }
    location = /redir/loop { return 302 /redir/loop; }
    location = /redir/tls { return 302 https://localhost:$p3/auth; }
    location = /auth { return 200 "auth=\$http_authorization cookie=\$http_cookie"; }
    # The request ends here, so here it is logged (as the client sent it, /echo?...).
    location @echo {
      access_log $dir/echo.log request_uri;
      default_type application/octet-stream;
      return 200 \$request_body;
    }
    $chunked
  }
  server {
    listen 127.0.0.1:$p2;
    keepalive_timeout 1s;
    location = / { try_files /body =404; }
  }
  server {
    listen 127.0.0.1:$p3 ssl;
    keepalive_timeout 75s;
    ssl_certificate $dir/server.pem;
    ssl_certificate_key $dir/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:1m;
    ssl_session_timeout 10m;
    ssl_session_tickets on;
    location = / { try_files /body =404; }
    location = /big { try_files /big =404; }
    location = /redir/same { return 302 /auth; }
    location = /auth { return 200 "auth=\$http_authorization cookie=\$http_cookie"; }
  }
  server {
    listen 127.0.0.1:$p4 ssl;
    ssl_certificate $dir/tls/wrong.pem;
    ssl_certificate_key $dir/tls/wrong.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    location = / { try_files /body =404; }
  }
  server {
    listen 127.0.0.1:$p5 ssl;
    keepalive_timeout 75s;
    ssl_certificate $dir/server.pem;
    ssl_certificate_key $dir/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_client_certificate $dir/ca.pem;
    ssl_verify_client on;
    location = / { return 200 "\$ssl_client_s_dn"; }
  }
  # HTTP/2 over TLS. keepalive_requests 100 (not the http-wide 1000000): after 100
  # requests on a connection nginx sends GOAWAY, which the tests rely on.
  server {
    listen 127.0.0.1:$p6 ssl http2;
    ssl_certificate $dir/server.pem;
    ssl_certificate_key $dir/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:1m;
    ssl_session_timeout 10m;
    ssl_session_tickets on;
$h2_common
  }
  # Cleartext HTTP/2 with prior knowledge (h2c), the same locations as above.
  server {
    listen 127.0.0.1:$p7 http2;
$h2_common
  }
}
CONF
}

# Starts nginx on the current config. Returns 0 when it runs and all seven ports accept,
# 3 when a port was taken (the caller may pick others), 1 on any other failure.
launch() {
    local out i
    rm -f "$dir/nginx.sock" # a socket file left by a killed nginx would fail the bind
    if ! out=$(nginx -c "$dir/nginx.conf" -p "$dir/" -e "$dir/error.log" 2>&1); then
        [[ "$out" == *"Address already in use"* ]] && return 3
        echo "nginx-test: nginx failed to start: $out" >&2
        return 1
    fi
    # The launching process returns after binding the ports but before the daemonized
    # master writes its pid file: wait for both.
    for ((i = 0; i < 50; i++)); do
        if master_pid >/dev/null && port_open "$P1" && port_open "$P2" && port_open "$P3" &&
            port_open "$P4" && port_open "$P5" && port_open "$P6" && port_open "$P7"; then
            return 0
        fi
        sleep 0.1
    done
    echo "nginx-test: nginx did not accept on 127.0.0.1 ports $P1 $P2 $P3 $P4 $P5 $P6 $P7 within 5 s;" \
        "error log $dir/error.log:" >&2
    tail -n 20 "$dir/error.log" >&2 || true
    do_stop
    return 1
}

write_env() {
    cat >"$dir/env.tmp" <<ENV
NGINX_HTTP_PORT=$P1
NGINX_HTTP_SHORT_KA_PORT=$P2
NGINX_HTTPS_PORT=$P3
NGINX_HTTPS_WRONG_NAME_PORT=$P4
NGINX_HTTPS_MTLS_PORT=$P5
NGINX_HTTPS_H2_PORT=$P6
NGINX_H2C_PORT=$P7
NGINX_CLIENT_CERT=$dir/client.pem
NGINX_CLIENT_KEY=$dir/client.key
NGINX_CLIENT_KEY_ENCRYPTED=$dir/client-enc.key
NGINX_CA_FILE=$dir/ca.pem
NGINX_PID_FILE=$dir/nginx.pid
NGINX_DIR=$dir
NGINX_CHUNKED=$NGINX_CHUNKED
NGINX_UNIX_SOCKET=$dir/nginx.sock
ENV
    mv -f "$dir/env.tmp" "$dir/env" # readers never see a half-written file
}

require_tools() {
    command -v nginx >/dev/null 2>&1 || {
        echo "nginx-test: nginx is not installed (Debian: apt-get install nginx-light," \
            "or scripts/install-deps.sh); skipping the nginx integration tests" >&2
        exit 77
    }
    command -v openssl >/dev/null 2>&1 || {
        echo "nginx-test: the openssl command is not installed (Debian: apt-get install" \
            "openssl); skipping the nginx integration tests" >&2
        exit 77
    }
}

if [[ "$cmd" == stop ]]; then
    [[ -d "$dir" ]] || exit 0
    dir=$(cd "$dir" && pwd -P)
    do_stop
    exit 0
fi

# A start that fails must not leave the env file of an earlier run behind: the tests
# would read its ports and fail instead of skipping.
[[ "$cmd" == start ]] && rm -f "$dir/env"
require_tools
mkdir -p "$dir"
dir=$(cd "$dir" && pwd -P)
[[ "$dir" =~ ^[A-Za-z0-9._/+@%,:-]+$ ]] ||
    die "DIR '$dir' has characters that need shell quoting; DIR/env is written unquoted"
do_stop

if [[ "$cmd" == restart ]]; then
    ports=$(env_ports) || die "$dir/env is missing or incomplete: run '$0 start $dir' first"
    read -r P1 P2 P3 P4 P5 P6 P7 <<<"$ports"
    [[ -f "$dir/nginx.conf" && -f "$dir/server.pem" ]] || die "$dir was not set up by start"
    # The old ports are ours unless someone grabbed one since stop: retry for a while
    # rather than move (the tests' connections point at these ports).
    for ((try = 0; try < 10; try++)); do
        rc=0 && launch || rc=$?
        ((rc == 0)) && exit 0
        ((rc == 3)) || exit 1
        sleep 0.5
    done
    die "ports $P1 $P2 $P3 $P4 $P5 $P6 $P7 stayed in use; restart is not possible"
fi

# start: everything fresh.
rm -rf "$dir/www" "$dir/tmp" "$dir/tls" "$dir/env" "$dir/nginx.conf" "$dir/error.log"
gen_certs
gen_files
for ((try = 0; try < 5; try++)); do
    ports=$(pick_ports) || die "could not find seven free TCP ports on 127.0.0.1"
    read -r P1 P2 P3 P4 P5 P6 P7 <<<"$ports"
    write_conf "$P1" "$P2" "$P3" "$P4" "$P5" "$P6" "$P7"
    rc=0 && launch || rc=$?
    if ((rc == 0)); then
        write_env
        echo "nginx-test: nginx on 127.0.0.1 ports $P1 (http) $P2 (http, 1 s keep-alive)" \
            "$P3 (https) $P4 (https, wrong name) $P5 (https, client certificates)" \
            "$P6 (https, HTTP/2) $P7 (h2c, prior knowledge); $dir/env"
        exit 0
    fi
    ((rc == 3)) || exit 1
done
die "every attempt to bind seven free ports failed (ports taken while starting)"
