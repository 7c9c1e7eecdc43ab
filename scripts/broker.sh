#!/usr/bin/env bash
# A local RabbitMQ 4 with streams for development, tests and CI.
#
#   scripts/broker.sh up|down|restart|status|logs|cut|freeze|thaw|alarm on|off  (npm run broker -- up)
#   scripts/broker.sh cluster up|down|reset|status|logs|stop-node N|start-node N|kill-node N|
#                             freeze-node N|thaw-node N|cut-node N|alarm-node N on|off
#                                                                 (npm run broker -- cluster up)
#   scripts/broker.sh mtls up|down|status|logs                       (npm run broker -- mtls up)
#
# `up` gives a broker on localhost:$RABBITMQ_STREAM_PORT (default 5552), guest/guest, vhost "/",
# stream.advertised_host = localhost, with TLS streams on localhost:$RABBITMQ_STREAM_TLS_PORT
# (default 5551; no client certificate asked for), and returns only once a stream can really be
# declared on both. It tries, in order:
#   1. a stream-capable broker already answering on the port: nothing to do (unless this script
#      started it and its settings are out of date, e.g. it lacks TLS: then it is restarted);
#   2. a working Docker engine: the rabbitmq:4-management image;
#   3. Debian whose apt candidate for rabbitmq-server is >= 3.13 (Debian 13): the native package;
#   4. otherwise (Debian 12 ships 3.10.8, which the client cannot use): a Debian 13 (trixie) root
#      made with debootstrap under $BROKER_ROOT, run under chroot (node rabbit@<short host name>).
#   Only route 4 is tested (on Debian 12 without Docker); routes 2 and 3 get the same settings.
# `down` stops only a broker that `up` started (recorded in $BROKER_STATE_DIR/mode; `mode` prints
#   it: chroot, native or docker, nothing for a broker this script did not start).
# `restart` stops that broker's Erlang VM and starts it again (data kept), returning once a
#   stream can be declared again: for tests of clients that must survive a broker restart.
# `status` says whether streams (plain, and TLS with the test CA) can be declared (exit 1 unless both).
# `cut` closes every client connection of that broker (for fault tests: clients must recover).
# Faults that close nothing, for tests:
#   `freeze` stops the broker's Erlang VM with SIGSTOP (a frozen VM, a partition: connections stay
#   open and nothing answers), `thaw` resumes it with SIGCONT;
#   `alarm on` raises a disk alarm (disk_free_limit above the free space: the broker stops reading
#   from connections that publish and refuses new publishers), `alarm off` clears it (back to the
#   default limit, 50MB); each returns once the broker reports the alarm set or cleared.
#
# TLS: a test CA and certificates made once with openssl in $BROKER_STATE_DIR/tls (made again only
# when missing or about to expire), RSA 2048 / SHA-256, valid 10 years:
#   ca.pem, ca-key.pem          the CA ("effect-stream-offsets test CA"): clients trust ca.pem
#   server.pem, server-key.pem  the brokers' certificate, for the name localhost only (no IP:
#                               connecting to 127.0.0.1 fails verification, on purpose)
#   client.pem, client-key.pem  a client certificate ("effect-stream-offsets test client")
# The brokers read their copies from /etc/rabbitmq/tls (in the root, on the host, in the container).
# These keys are for tests only: never trust this CA anywhere else.
#
# `cluster ...` runs three more RabbitMQ 4 nodes from the same trixie root (built if missing),
# independent of the single broker, which may run at the same time:
#   node rabbit-N@<short host name>, N = 1..3: streams on localhost:556N (advertised as
#   localhost:556N), AMQP on 568N, Erlang distribution on 2568N, no management plugin, no TLS;
#   data, logs, config and pid file under $BROKER_ROOT/var/lib/rabbitmq/cluster/rabbit-N.
#   cluster up            start what is missing, form the cluster the first time (join rabbit-1),
#                         return when all three run clustered and each accepts a stream declaration
#   cluster stop-node N   stop node N's Erlang VM (a node going away); returns when 556N is closed
#   cluster kill-node N   SIGKILL node N's VM and its helpers (a crash: nothing is handed over
#                         cleanly, streams it led wait for a new leader); returns when 556N is closed
#   cluster freeze-node N / thaw-node N   SIGSTOP / SIGCONT node N's VM
#   cluster cut-node N    close every client connection of node N
#   cluster alarm-node N on|off   a disk alarm on node N (publishers are blocked cluster-wide)
#   cluster start-node N  start it again; returns when it is back in the cluster and accepts streams
#   cluster down          stop the three nodes; data is kept, so the next `cluster up` is quick
#   cluster reset         `cluster down` and delete the cluster's data (a fresh cluster next time)
#   cluster status        one line per node (exit 1 unless all three are up)
#   cluster ctl N ARGS    rabbitmqctl on node N; cluster streams N ARGS: rabbitmq-streams on node N
#   cluster logs          the end of each node's log
#
# `mtls ...` runs one more node from the trixie root, on demand, for mutual-TLS tests: node
#   rabbit-mtls@<short host name>, TLS streams only on localhost:$RABBITMQ_STREAM_MTLS_PORT
#   (default 5541, advertised as localhost:5541; no plain stream listener), a client certificate
#   signed by the test CA required (client.pem/client-key.pem), AMQP on 5691, distribution on
#   25691; data, logs and config under $BROKER_ROOT/var/lib/rabbitmq/mtls. SASL EXTERNAL is
#   offered too (rabbitmq_auth_mechanism_ssl): the certificate's CN, "effect-stream-offsets test
#   client", is a user with rights on "/".
#   mtls up       start it unless it runs; return when a TLS connection with the client
#                 certificate can declare a stream
#   mtls down     stop that node only (the single broker and the cluster keep running)
#   mtls status   whether it accepts a stream declaration (exit 1 if not)
#   mtls logs     the end of its log
#
# `prometheus ...` runs Debian's Prometheus server for the metrics tests: the package `prometheus`
#   is downloaded with apt-get and unpacked under $BROKER_STATE_DIR/prometheus the first time (not
#   installed: no service, no user); it listens on localhost:$PROMETHEUS_PORT (default 9090) and
#   scrapes, every second, the targets `prometheus scrape` lists.
#   prometheus up                 start it unless it runs; return when it answers /-/ready
#   prometheus scrape HOST:PORT.. scrape these targets from now on (replaces the list)
#   prometheus down               stop it (its data goes with it: each `up` starts empty)
#   prometheus status             whether it answers (exit 1 if not)
#
# Environment:
#   RABBITMQ_STREAM_PORT       stream port of the single broker (default 5552)
#   RABBITMQ_STREAM_TLS_PORT   TLS stream port of the single broker (default 5551)
#   RABBITMQ_STREAM_MTLS_PORT  TLS stream port of the mutual-TLS node (default 5541)
#   PROMETHEUS_PORT            port of `prometheus up` (default 9090)
#   BROKER_STATE_DIR           state, logs and TLS material (default /var/lib/effect-stream-offsets;
#                              for a user other than root ${XDG_STATE_HOME:-~/.local/state}/effect-stream-offsets,
#                              who can use a broker already answering but not start one without Docker)
#   BROKER_ROOT                the trixie root (default $BROKER_STATE_DIR/trixie)
#   BROKER_WAIT_SECONDS        how long each wait for a broker or node lasts (default 120)
#   BROKER_DOCKER_NAME         container name (default effect-stream-offsets-rabbitmq)
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
port=${RABBITMQ_STREAM_PORT:-5552}
tls_port=${RABBITMQ_STREAM_TLS_PORT:-5551}
mtls_port=${RABBITMQ_STREAM_MTLS_PORT:-5541}
prom_port=${PROMETHEUS_PORT:-9090}
# Root keeps its state in /var/lib; another user (who can use a broker already running, not start
# one in a root of its own) in its own state directory.
if [ "$(id -u)" = 0 ]; then
  default_state=/var/lib/effect-stream-offsets
elif [ -n "${HOME:-}" ] && mkdir -p "${XDG_STATE_HOME:-$HOME/.local/state}" 2>/dev/null; then
  default_state=${XDG_STATE_HOME:-$HOME/.local/state}/effect-stream-offsets
else
  default_state=${TMPDIR:-/tmp}/effect-stream-offsets-$(id -u)
fi
state=${BROKER_STATE_DIR:-$default_state}
root=${BROKER_ROOT:-$state/trixie}
wait_seconds=${BROKER_WAIT_SECONDS:-120}
container=${BROKER_DOCKER_NAME:-effect-stream-offsets-rabbitmq}
log=$state/broker.log
cluster_log=$state/cluster.log
mtls_log=$state/mtls.log
tls=$state/tls        # the TLS material on the host (clients read ca.pem, client.pem, client-key.pem)
broker_tls=/etc/rabbitmq/tls # the brokers' copy: in the root, on the host (native), in the container
export RABBITMQ_STREAM_PORT=$port RABBITMQ_STREAM_TLS_PORT=$tls_port RABBITMQ_STREAM_MTLS_PORT=$mtls_port

# RabbitMQ names a node <name>@<short host name>. The chroot shares the host's UTS namespace (and
# gets a copy of /etc/hosts, which resolves it), so the host's short name is the one the nodes in
# the root use ("vm" on the machine this was written on): the single broker is rabbit@$host.
host=$(uname -n)
host=${host%%.*}
single=rabbit@$host

say() { echo "broker: $*" >&2; }
die() {
  say "$*"
  exit 1
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/${1:-$port}") 2>/dev/null; }
probe() { node "$here/broker-probe.mjs" 2>>"$log"; }
# A stream declaration over TLS on the single broker's TLS port, trusting the test CA.
tls_probe() { PROBE_PORT=$tls_port PROBE_TLS_CA=$tls/ca.pem node "$here/broker-probe.mjs" 2>>"$log"; }
mode() { cat "$state/mode" 2>/dev/null || true; }

# Wait until a stream can be declared, in plain TCP and over TLS, or fail with the log to read.
wait_ready() {
  local what=$1 deadline=$((SECONDS + wait_seconds))
  while ((SECONDS < deadline)); do
    if port_open && PROBE_TIMEOUT_MS=10000 probe && port_open "$tls_port" && PROBE_TIMEOUT_MS=10000 tls_probe; then
      say "ready: $what: streams on localhost:$port, TLS on localhost:$tls_port (CA: $tls/ca.pem)"
      return 0
    fi
    sleep 2
  done
  die "$what did not accept streams on localhost:$port and TLS on localhost:$tls_port within ${wait_seconds}s; read $log"
}

# Wait until nothing listens on a port any more (the VM behind it is gone).
wait_closed() {
  local p=$1 what=$2 deadline=$((SECONDS + wait_seconds))
  while port_open "$p"; do
    ((SECONDS < deadline)) || die "localhost:$p is still open ${wait_seconds}s after stopping $what"
    sleep 0.5
  done
}

# ---------------------------------------------------------------- TLS material
# True when certificate $1 is valid for at least another day, its key $2 matches it and, given a
# CA file $3, it was signed by that CA.
cert_ok() {
  local cert=$1 key=$2 ca=${3:-}
  [ -s "$cert" ] && [ -s "$key" ] || return 1
  openssl x509 -in "$cert" -noout -checkend 86400 >/dev/null 2>&1 || return 1
  [ "$(openssl x509 -in "$cert" -noout -pubkey 2>/dev/null)" = "$(openssl pkey -in "$key" -pubout 2>/dev/null)" ] || return 1
  [ -z "$ca" ] || openssl verify -CAfile "$ca" "$cert" >/dev/null 2>&1
}

# openssl's settings for the three certificates (sections ca, server, client): no dependence on
# the system's openssl.cnf.
tls_openssl_conf() {
  cat <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
}

# Issue $tls/$1.pem and $tls/$1-key.pem for subject $2, with the extensions of section $1 above,
# signed by the test CA.
tls_issue() {
  local name=$1 subject=$2 cnf=$tls/openssl.cnf
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tls/$name-key.pem" &&
    openssl req -new -config "$cnf" -key "$tls/$name-key.pem" -subj "$subject" -out "$tls/$name.csr" &&
    openssl x509 -req -in "$tls/$name.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca-key.pem" \
      -set_serial "0x$(openssl rand -hex 16)" -days 3650 -sha256 \
      -extfile "$cnf" -extensions "$name" -out "$tls/$name.pem" &&
    rm -f "$tls/$name.csr"
}

# The test CA and the server and client certificates in $tls, each made only when missing, about
# to expire, not matching its key, or (server and client) not signed by the current CA.
tls_material() {
  mkdir -p "$tls"
  : >>"$log"
  command -v openssl >/dev/null 2>&1 || {
    say "installing openssl"
    { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y openssl; } >>"$log" 2>&1 ||
      die "could not install openssl with apt-get; read $log"
  }
  # Two commands at once (say, up and mtls up) make it once.
  exec 7>"$state/tls.lock"
  flock 7
  tls_openssl_conf >"$tls/openssl.cnf"
  if ! cert_ok "$tls/ca.pem" "$tls/ca-key.pem"; then
    say "making a test CA in $tls"
    rm -f "$tls/server.pem" "$tls/client.pem" # signed by the CA being replaced
    { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tls/ca-key.pem" &&
      openssl req -x509 -new -config "$tls/openssl.cnf" -extensions ca -key "$tls/ca-key.pem" \
        -subj "/CN=effect-stream-offsets test CA" -days 3650 -sha256 -out "$tls/ca.pem"; } >>"$log" 2>&1 ||
      die "could not make a CA in $tls with openssl; read $log"
  fi
  if ! cert_ok "$tls/server.pem" "$tls/server-key.pem" "$tls/ca.pem"; then
    say "making a server certificate for localhost in $tls"
    tls_issue server "/CN=localhost" >>"$log" 2>&1 || die "could not make $tls/server.pem with openssl; read $log"
  fi
  if ! cert_ok "$tls/client.pem" "$tls/client-key.pem" "$tls/ca.pem"; then
    say "making a client certificate in $tls"
    tls_issue client "/CN=effect-stream-offsets test client" >>"$log" 2>&1 ||
      die "could not make $tls/client.pem with openssl; read $log"
  fi
  # Test keys: the client's is readable by whoever runs the tests, the CA's and the server's are not.
  { chmod 755 "$tls" && chmod 600 "$tls/ca-key.pem" "$tls/server-key.pem" &&
    chmod 644 "$tls/ca.pem" "$tls/server.pem" "$tls/client.pem" "$tls/client-key.pem"; } ||
    die "could not set the modes of the files in $tls"
  exec 7>&-
}

# A line that changes whenever the server certificate does: written into each TLS broker's config,
# so that a broker running with an older certificate is restarted to take the new one.
tls_stamp() { echo "# server certificate $(openssl x509 -in "$tls/server.pem" -noout -fingerprint -sha256 2>/dev/null)"; }

# True when directory $1 holds the current CA, server certificate and server key.
tls_installed() {
  local f
  for f in ca.pem server.pem server-key.pem; do cmp -s "$tls/$f" "$1/$f" || return 1; done
}

# Copy the CA, server certificate and key to directory $1 (/etc/rabbitmq/tls as the broker sees
# it), for a broker that runs as user rabbitmq; $2... is the command prefix that runs chown where
# the broker runs (in_root for the trixie root: its rabbitmq user is not the host's).
tls_install() {
  local dir=$1 f
  shift
  mkdir -p "$dir" || die "could not create $dir"
  for f in ca.pem server.pem server-key.pem; do
    { cp "$tls/$f" "$dir/$f.new" && mv -f "$dir/$f.new" "$dir/$f"; } || die "could not copy $tls/$f to $dir"
  done
  { chmod 750 "$dir" && chmod 644 "$dir/ca.pem" "$dir/server.pem" && chmod 600 "$dir/server-key.pem" &&
    "$@" chown -R rabbitmq:rabbitmq "$broker_tls"; } || die "could not hand $dir to user rabbitmq"
}

rabbit_conf() {
  # Config for a broker we run: advertise localhost, plain streams on the chosen port, TLS streams
  # on the TLS port with the test CA's server certificate, no client certificate asked for (the
  # TLS port is advertised by itself: that of the only TLS listener). Streams take the global
  # ssl_options: they have none of their own.
  tls_stamp
  cat <<EOF
stream.advertised_host = localhost
stream.listeners.tcp.1 = $port
stream.listeners.ssl.1 = $tls_port
ssl_options.cacertfile = $broker_tls/ca.pem
ssl_options.certfile = $broker_tls/server.pem
ssl_options.keyfile = $broker_tls/server-key.pem
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
loopback_users = none
EOF
}

# ---------------------------------------------------------------- docker
# Not tested here (no Docker engine on the machine this was written on): the container gets the
# same settings as the trixie root, from a config file and a copy of the TLS material mounted
# into /etc/rabbitmq.
docker_works() { command -v docker >/dev/null 2>&1 && timeout 10 docker info >/dev/null 2>&1; }
docker_dir=$state/docker
# The ports a container was made with, as a label: one made by an older version of this script
# (without TLS) or for other ports is made again.
docker_ports() { echo "$port,$tls_port"; }
docker_label() { docker inspect -f '{{index .Config.Labels "effect-stream-offsets.ports"}}' "$container" 2>/dev/null; }

docker_conf() {
  # The container listens on 5552 and 5551, published on the host as $port and $tls_port: it
  # advertises the host's ports.
  tls_stamp
  cat <<EOF
stream.advertised_host = localhost
stream.advertised_port = $port
stream.listeners.ssl.1 = 5551
stream.advertised_tls_port = $tls_port
ssl_options.cacertfile = $broker_tls/ca.pem
ssl_options.certfile = $broker_tls/server.pem
ssl_options.keyfile = $broker_tls/server-key.pem
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
loopback_users = none
EOF
}

# True when the container exists with the current ports, config and TLS material.
docker_current() {
  [ "$(docker_label)" = "$(docker_ports)" ] && tls_installed "$docker_dir/tls" &&
    [ "$(docker_conf)" = "$(cat "$docker_dir/rabbitmq.conf" 2>/dev/null)" ]
}

up_docker() {
  local changed=''
  tls_material
  mkdir -p "$docker_dir/tls"
  if ! tls_installed "$docker_dir/tls"; then
    # The image's rabbitmq user (not the host's) reads the mounted copy: world-readable, which is
    # fine for test material only.
    { cp "$tls/ca.pem" "$tls/server.pem" "$tls/server-key.pem" "$docker_dir/tls/" &&
      chmod 644 "$docker_dir/tls/"*.pem; } || die "could not copy the TLS material to $docker_dir/tls"
    changed=1
  fi
  if [ "$(docker_conf)" != "$(cat "$docker_dir/rabbitmq.conf" 2>/dev/null)" ]; then
    docker_conf >"$docker_dir/rabbitmq.conf"
    changed=1
  fi
  if docker ps -a --format '{{.Names}}' | grep -qx "$container" && [ "$(docker_label)" != "$(docker_ports)" ]; then
    say "removing $container: it was made without TLS or for other ports (its data goes with it)"
    docker rm -f "$container" >>"$log" 2>&1 || die "docker rm -f $container failed; read $log"
  fi
  if docker ps -a --format '{{.Names}}' | grep -qx "$container"; then
    if [ -n "$changed" ] && [ "$(docker inspect -f '{{.State.Running}}' "$container" 2>/dev/null)" = true ]; then
      say "restarting $container to take new settings (TLS on localhost:$tls_port)"
      docker restart "$container" >>"$log" 2>&1 || die "docker restart $container failed; read $log"
    else
      say "starting $container (rabbitmq:4-management) with Docker"
      docker start "$container" >>"$log" 2>&1 || die "docker start $container failed; read $log"
    fi
  else
    say "starting $container (rabbitmq:4-management) with Docker"
    docker run -d --name "$container" --label "effect-stream-offsets.ports=$(docker_ports)" \
      -p "$port:5552" -p "$tls_port:5551" -p 15672:15672 \
      -v "$docker_dir/tls:$broker_tls:ro" \
      -v "$docker_dir/rabbitmq.conf:/etc/rabbitmq/conf.d/90-effect-stream-offsets.conf:ro" \
      -e RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-rabbitmq_stream advertised_host localhost" \
      rabbitmq:4-management >>"$log" 2>&1 || die "docker run rabbitmq:4-management failed; read $log"
  fi
  local deadline=$((SECONDS + wait_seconds))
  until docker exec "$container" rabbitmq-plugins enable rabbitmq_stream rabbitmq_stream_management >>"$log" 2>&1; do
    ((SECONDS < deadline)) || die "could not enable rabbitmq_stream in $container; read $log"
    sleep 2
  done
  echo docker >"$state/mode"
  wait_ready "RabbitMQ in Docker container $container"
}

# ---------------------------------------------------------------- native (Debian 13+)
# Not tested here either (Debian 12): the same config as the trixie root, in /etc/rabbitmq.
apt_candidate() { apt-cache policy rabbitmq-server 2>/dev/null | awk '/Candidate:/ { print $2 }'; }

candidate_ok() {
  # true when the apt candidate is >= 3.13
  local v=$1
  [ -n "$v" ] && [ "$v" != "(none)" ] && dpkg --compare-versions "$v" ge 3.13
}

up_native() {
  tls_material
  say "installing Debian's rabbitmq-server $(apt_candidate)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y rabbitmq-server >>"$log" 2>&1 || die "apt-get install rabbitmq-server failed; read $log"
  mkdir -p /etc/rabbitmq
  if [ "$(rabbit_conf)" != "$(cat /etc/rabbitmq/rabbitmq.conf 2>/dev/null)" ] || ! tls_installed "$broker_tls"; then
    # New settings (another port, TLS, a new certificate): a running broker must restart to take them.
    if rabbitmqctl -q status >/dev/null 2>&1; then
      say "stopping Debian's rabbitmq-server to take new settings (TLS on localhost:$tls_port)"
      rabbitmqctl stop >>"$log" 2>&1
      wait_closed "$port" "rabbitmq-server"
    fi
    tls_install "$broker_tls"
    rabbit_conf >/etc/rabbitmq/rabbitmq.conf
  fi
  rabbitmq-plugins --offline enable rabbitmq_stream rabbitmq_stream_management >>"$log" 2>&1 || die "could not enable rabbitmq_stream; read $log"
  if ! rabbitmqctl -q status >/dev/null 2>&1; then
    (HOME=/var/lib/rabbitmq rabbitmq-server -detached >>"$log" 2>&1) || die "rabbitmq-server did not start; read $log"
  fi
  echo native >"$state/mode"
  wait_ready "Debian's rabbitmq-server"
}

# ---------------------------------------------------------------- trixie root under chroot
in_root() { chroot "$root" env HOME=/var/lib/rabbitmq LANG=C.UTF-8 "$@"; }

mount_root() {
  local d
  for d in proc dev sys; do
    mkdir -p "$root/$d"
    mountpoint -q "$root/$d" || mount --bind "/$d" "$root/$d" || die "could not bind-mount /$d into $root"
  done
  cp /etc/hosts "$root/etc/hosts" 2>/dev/null || true
}

umount_root() {
  local d
  for d in sys dev proc; do
    while mountpoint -q "$root/$d"; do umount -l "$root/$d" || break; done
  done
}

# One line per process whose root directory is the trixie root: "pid ppid kind node", where kind
# is server (a RabbitMQ node's VM: beam.smp ... -s rabbit boot; CLI tools are beams too), epmd
# (shared by every node) or other, and node is the RABBITMQ_NODENAME the process was started with
# ("-" when none: a single broker started by an older version of this script). The VM's command
# line does not name the node (RabbitMQ 4 starts distribution itself), its environment does.
root_procs() {
  local p real stat ppid cmd node kind
  real=$(readlink -f "$root")
  # find reads every process's root link itself: a readlink per process took seconds under load.
  for p in $(find /proc -mindepth 2 -maxdepth 2 -name root -lname "$real" 2>/dev/null | sed 's#/root$##'); do
    stat=$(cat "$p/stat" 2>/dev/null) || continue
    read -r _ ppid _ <<<"${stat##*) }"
    cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline")
    node=$(tr '\0' '\n' 2>/dev/null <"$p/environ" | sed -n 's/^RABBITMQ_NODENAME=//p' | head -n 1)
    case "$cmd" in
    *beam.smp*" -s rabbit boot"*) kind=server ;;
    */epmd" "*) kind=epmd ;;
    *) kind=other ;;
    esac
    echo "${p#/proc/} $ppid $kind ${node:--}"
  done
}

# The processes of one node: its VM and everything the VM started (erl_child_setup, memsup,
# inet_gethost, ...), never epmd nor another node's processes.
node_pids() {
  root_procs | awk -v node="$1" -v single="$single" '
    { pid[NR] = $1; ppid[NR] = $2; kind[NR] = $3 }
    $3 == "server" && ($4 == node || ($4 == "-" && node == single)) { mine[$1] = 1 }
    END {
      do {
        grew = 0
        for (i = 1; i <= NR; i++)
          if (!(pid[i] in mine) && (ppid[i] in mine) && kind[i] != "epmd") { mine[pid[i]] = 1; grew = 1 }
      } while (grew)
      for (p in mine) print p
    }'
}

# Stop one node by its name: a clean `rabbitmqctl stop`, then whatever is left of that node is
# killed. The other nodes in the root (the cluster, or the single broker) keep running.
stop_node() {
  local node=$1 out=$2 pids
  [ -n "$(node_pids "$node")" ] || return 0
  # Bounded: a node still booting (say, waiting for its cluster peers) only stops once booted.
  timeout 30 chroot "$root" env HOME=/var/lib/rabbitmq LANG=C.UTF-8 rabbitmqctl -n "$node" stop >>"$out" 2>&1
  for _ in $(seq 1 20); do
    [ -z "$(node_pids "$node")" ] && return 0
    sleep 0.5
  done
  # A VM that did not answer, or one killed half-way that left its helpers behind.
  pids=$(node_pids "$node")
  [ -z "$pids" ] && return 0
  say "$node did not stop cleanly; killing its processes ($(echo "$pids" | tr '\n' ' '))"
  # shellcheck disable=SC2086
  kill $pids 2>/dev/null
  for _ in $(seq 1 20); do
    [ -z "$(node_pids "$node")" ] && return 0
    sleep 0.5
  done
  # shellcheck disable=SC2046
  kill -9 $(node_pids "$node") 2>/dev/null
  return 0
}

# Once no node is left in the root: stop the shared epmd and release the bind mounts. While any
# node runs (the single broker or a cluster node) both stay, since that node needs them.
release_root() {
  local procs
  procs=$(root_procs)
  echo "$procs" | awk '$3 == "server" { found = 1 } END { exit !found }' && return 0
  # shellcheck disable=SC2046
  kill $(echo "$procs" | awk '$3 == "epmd" { print $1 }') 2>/dev/null
  umount_root
}

build_root() {
  mkdir -p "$state"
  # Another `up` or `cluster up` may be building the root right now: build it once.
  exec 8>"$state/build.lock"
  flock 8
  if [ -f "$root/.effect-stream-offsets-complete" ]; then
    exec 8>&-
    return 0
  fi
  command -v debootstrap >/dev/null 2>&1 || {
    say "installing debootstrap"
    { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap; } >>"$log" 2>&1 ||
      die "could not install debootstrap with apt-get; read $log"
  }
  say "building a Debian 13 (trixie) root with rabbitmq-server in $root (about 80 s; log: $log)"
  rm -rf "$root.part"
  debootstrap --variant=minbase --include=rabbitmq-server trixie "$root.part" >>"$log" 2>&1 ||
    die "debootstrap of trixie failed; read $log"
  mv "$root.part" "$root"
  touch "$root/.effect-stream-offsets-complete"
  exec 8>&-
}

up_chroot() {
  tls_material
  [ -f "$root/.effect-stream-offsets-complete" ] || build_root
  mount_root
  if [ "$(rabbit_conf)" != "$(cat "$root/etc/rabbitmq/rabbitmq.conf" 2>/dev/null)" ] || ! tls_installed "$root$broker_tls"; then
    # New settings (another port, TLS, a new certificate): a running broker must restart to take them.
    [ -n "$(node_pids "$single")" ] && say "stopping $single to take new settings (TLS on localhost:$tls_port)"
    stop_node "$single" "$log"
    # The broker runs as the root's user rabbitmq (rabbitmq-server switches to it).
    tls_install "$root$broker_tls" in_root
    rabbit_conf >"$root/etc/rabbitmq/rabbitmq.conf"
  fi
  in_root rabbitmq-plugins --offline enable rabbitmq_stream rabbitmq_stream_management >>"$log" 2>&1 ||
    die "could not enable rabbitmq_stream in $root; read $log"
  if [ -z "$(node_pids "$single")" ] || ! in_root rabbitmqctl -n "$single" -q status >/dev/null 2>&1; then
    # A broker killed without a clean stop leaves processes behind: clear them.
    stop_node "$single" "$log"
    port_open "$tls_port" && die "localhost:$tls_port (TLS streams) is taken by something else; free it or set RABBITMQ_STREAM_TLS_PORT"
    say "starting rabbitmq-server ($single) in $root"
    # The name is RabbitMQ's default, given explicitly so that stop_node finds this VM by it.
    in_root env RABBITMQ_NODENAME="$single" rabbitmq-server -detached >>"$log" 2>&1 ||
      die "rabbitmq-server did not start in $root; read $log"
  fi
  echo chroot >"$state/mode"
  # shellcheck disable=SC2016 # ${Version} is dpkg-query's field, not a shell variable
  wait_ready "RabbitMQ $(in_root dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null) in $root"
}

# ---------------------------------------------------------------- commands
# True when the broker answering on $port is one this script started and it runs with older
# settings (another port, no TLS yet, an older certificate): `up` then restarts it.
outdated() {
  case "$(mode)" in
  chroot)
    [ -n "$(node_pids "$single")" ] &&
      { [ "$(rabbit_conf)" != "$(cat "$root/etc/rabbitmq/rabbitmq.conf" 2>/dev/null)" ] || ! tls_installed "$root$broker_tls"; }
    ;;
  native) [ "$(rabbit_conf)" != "$(cat /etc/rabbitmq/rabbitmq.conf 2>/dev/null)" ] || ! tls_installed "$broker_tls" ;;
  docker) docker_works && ! docker_current ;;
  *) return 1 ;;
  esac
}

cmd_up() {
  mkdir -p "$state" || die "cannot make the state directory $state; set BROKER_STATE_DIR to a directory you can write"
  : >>"$log"
  if port_open; then
    if PROBE_TIMEOUT_MS=10000 probe; then
      # A broker this script did not start is used as it is: no test CA is made for it.
      if [ -z "$(mode)" ]; then
        say "a stream-capable broker (not started by this script) already answers on localhost:$port; nothing to do"
        return 0
      fi
      tls_material
      if outdated; then
        say "the broker on localhost:$port ($(mode)) runs with older settings (no TLS on localhost:$tls_port, or an older certificate): restarting it"
        "up_$(mode)"
        return
      fi
      if port_open "$tls_port" && PROBE_TIMEOUT_MS=10000 tls_probe; then
        say "a stream-capable broker already answers on localhost:$port and with TLS on localhost:$tls_port; nothing to do"
      else
        say "a stream-capable broker already answers on localhost:$port; nothing to do (but TLS on localhost:$tls_port does not work with $tls/ca.pem: $(tail -n 1 "$log"))"
      fi
      return 0
    fi
    die "something answers on localhost:$port but a stream cannot be declared there ($(tail -n 1 "$log")); stop it or set RABBITMQ_STREAM_PORT"
  fi
  if [ "$(id -u)" != 0 ] && ! docker_works; then
    die "no broker answers on localhost:$port, and starting one here takes root (a package or a Debian 13 root under chroot): run this as root, or start RabbitMQ 4 (>= 3.13, plugin rabbitmq_stream, stream.advertised_host = localhost) on localhost:$port yourself, or point RABBITMQ_STREAM_PORT at one"
  fi
  tls_material
  if docker_works; then
    up_docker
  elif command -v apt-get >/dev/null 2>&1; then
    if candidate_ok "$(apt_candidate)"; then
      up_native
    else
      up_chroot
    fi
  else
    die "no broker on localhost:$port, no Docker engine and no apt-get: start RabbitMQ 4 with the rabbitmq_stream plugin yourself (docker run -it --rm -p 5552:5552 -e RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='-rabbitmq_stream advertised_host localhost' rabbitmq:4-management)"
  fi
}

cmd_down() {
  case "$(mode)" in
  docker) docker rm -f "$container" >>"$log" 2>&1 ;;
  native) rabbitmqctl stop >>"$log" 2>&1 ;;
  chroot)
    stop_node "$single" "$log"
    release_root
    ;;
  *)
    say "no broker was started by this script; nothing to stop"
    return 0
    ;;
  esac
  rm -f "$state/mode"
  say "stopped"
}

cmd_restart() {
  local t0=$SECONDS
  case "$(mode)" in
  docker)
    tls_material
    if docker_current; then
      say "restarting $container"
      docker restart "$container" >>"$log" 2>&1 || die "docker restart $container failed; read $log"
      wait_ready "RabbitMQ in Docker container $container"
    else
      up_docker # new settings: it restarts or makes the container again
    fi
    ;;
  native)
    say "stopping Debian's rabbitmq-server"
    rabbitmqctl stop >>"$log" 2>&1
    wait_closed "$port" "rabbitmq-server"
    up_native
    ;;
  chroot)
    say "stopping $single"
    stop_node "$single" "$log"
    wait_closed "$port" "$single"
    up_chroot
    ;;
  *) die "no broker was started by this script (no $state/mode), so none to restart; use up" ;;
  esac
  say "restarted in $((SECONDS - t0))s"
}

cmd_status() {
  local started=''
  [ -n "$(mode)" ] && started=" (started by this script: $(mode))"
  if ! { port_open && PROBE_TIMEOUT_MS=5000 probe; }; then
    say "down: no stream-capable broker on localhost:$port$started"
    return 1
  fi
  if [ -s "$tls/ca.pem" ] && port_open "$tls_port" && PROBE_TIMEOUT_MS=5000 tls_probe; then
    say "up: streams on localhost:$port, TLS on localhost:$tls_port (CA: $tls/ca.pem)$started"
  else
    say "up: streams on localhost:$port, but no TLS on localhost:$tls_port with CA $tls/ca.pem ($(tail -n 1 "$log"))$started; up restarts a broker it started to add it"
    return 1
  fi
}

cmd_cut() {
  local ctl=(rabbitmqctl close_all_connections "cut by scripts/broker.sh")
  case "$(mode)" in
  docker) docker exec "$container" "${ctl[@]}" ;;
  native) "${ctl[@]}" ;;
  chroot) in_root rabbitmqctl -n "$single" close_all_connections "cut by scripts/broker.sh" ;;
  *) die "no broker was started by this script; cannot cut its connections" ;;
  esac
}

# The Erlang VM of the single broker (its beam.smp), for freeze and thaw.
single_vm() {
  case "$(mode)" in
  chroot) root_procs | awk -v node="$single" '$3 == "server" && ($4 == node || $4 == "-") { print $1 }' ;;
  native) pgrep -f 'beam.smp.* -s rabbit boot' ;;
  esac
}

cmd_freeze() {
  local sig=$1 what=$2 pids
  case "$(mode)" in
  docker)
    [ "$sig" = STOP ] && docker pause "$container" >>"$log" 2>&1
    [ "$sig" = CONT ] && docker unpause "$container" >>"$log" 2>&1
    ;;
  native | chroot)
    pids=$(single_vm)
    [ -n "$pids" ] || die "the broker's VM is not running; nothing to $what"
    # shellcheck disable=SC2086
    kill -"$sig" $pids || die "could not $what the broker's VM ($pids)"
    ;;
  *) die "no broker was started by this script; cannot $what it" ;;
  esac
  say "$([ "$sig" = STOP ] && echo froze || echo thawed) the broker (localhost:$port)"
}

ctl_single() {
  case "$(mode)" in
  docker) docker exec "$container" rabbitmqctl "$@" ;;
  native) rabbitmqctl "$@" ;;
  chroot) in_root rabbitmqctl -n "$single" "$@" ;;
  *) die "no broker was started by this script" ;;
  esac
}

cmd_alarm() {
  local limit alarms
  case "${1:-}" in
  on) limit=5000GB ;;
  off) limit=50MB ;;
  *) die "usage: scripts/broker.sh alarm on|off" ;;
  esac
  ctl_single set_disk_free_limit "$limit" >>"$log" 2>&1 || die "rabbitmqctl set_disk_free_limit $limit failed (see $log)"
  # The disk monitor checks the free space on its own schedule: wait until the alarm shows.
  for _ in $(seq 1 60); do
    alarms=$(ctl_single eval 'rabbit_alarm:get_alarms().' 2>>"$log")
    case "$1:$alarms" in
    on:*disk*) say "disk alarm raised (disk_free_limit $limit)"; return 0 ;;
    off:*disk*) ;;
    off:*) say "disk alarm cleared (disk_free_limit $limit)"; return 0 ;;
    esac
    sleep 0.5
  done
  die "the disk alarm did not turn $1 within 30 s (alarms: $alarms)"
}

cmd_logs() {
  [ -f "$log" ] && tail -n 100 "$log"
  case "$(mode)" in
  docker) docker logs --tail 100 "$container" ;;
  chroot) tail -n 100 "$root/var/log/rabbitmq/$single.log" 2>/dev/null ;;
  native) tail -n 100 /var/log/rabbitmq/rabbit@*.log 2>/dev/null ;;
  esac
  return 0
}

# ---------------------------------------------------------------- cluster (three nodes in the root)
nodes=(1 2 3)
node_name() { echo "rabbit-$1@$host"; }
stream_port() { echo $((5560 + $1)); }
node_dir() { echo "/var/lib/rabbitmq/cluster/rabbit-$1"; } # inside the root
node_log() { echo "$root$(node_dir "$1")/log/rabbit-$1@$host.log"; }

# Run a command in the root as a node of its own besides the single broker (a cluster node, the
# mutual-TLS node): node name $1 (rabbit-X@host), AMQP port $2, distribution port $3, and its own
# data, logs, config, pid file and plugins (stream only: the management plugin's fixed port 15672
# is the single broker's) under directory $4 of the root. One scheduler per VM and no busy
# waiting: up to five Erlang VMs share two cores here.
in_named_node() {
  local name=$1 amqp=$2 dist=$3 d=$4
  shift 4
  in_root env \
    RABBITMQ_NODENAME="$name" \
    RABBITMQ_NODE_PORT="$amqp" \
    RABBITMQ_DIST_PORT="$dist" \
    RABBITMQ_MNESIA_BASE="$d/mnesia" \
    RABBITMQ_LOG_BASE="$d/log" \
    RABBITMQ_PID_FILE="$d/${name%@*}.pid" \
    RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf" \
    RABBITMQ_ADVANCED_CONFIG_FILE="$d/advanced.config" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins" \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+S 1:1 +sbwt none +sbwtdcpu none +sbwtdio none" \
    "$@"
}

# Run a command in the root with cluster node N's environment.
in_node() {
  local n=$1
  shift
  in_named_node "$(node_name "$n")" $((5680 + n)) $((25680 + n)) "$(node_dir "$n")" "$@"
}

ctl() {
  local n=$1
  shift
  in_node "$n" rabbitmqctl -n "$(node_name "$n")" "$@"
}

node_conf() {
  local p
  p=$(stream_port "$1")
  cat <<EOF
# cluster node $1 of scripts/broker.sh: clients are sent to localhost:$p for this node
stream.listeners.tcp.1 = $p
stream.advertised_host = localhost
stream.advertised_port = $p
loopback_users = none
EOF
}

# The cluster as node N sees it: its disk nodes on one line, its running nodes on the next.
cluster_view() {
  ctl "$1" -q cluster_status --formatter json 2>>"$cluster_log" | node -e '
    let s = ""
    process.stdin.on("data", (d) => (s += d)).on("end", () => {
      try {
        const j = JSON.parse(s)
        console.log((j.disk_nodes ?? []).join(" "))
        console.log((j.running_nodes ?? []).join(" "))
      } catch {
        process.exit(1)
      }
    })'
}

# One Erlang cookie for all nodes and the CLI ($HOME is shared). In a fresh root the first VM
# writes it; nodes starting at once could each write their own, so write it before they start.
ensure_cookie() {
  if [ ! -s "$root/var/lib/rabbitmq/.erlang.cookie" ]; then
    in_root sh -c 'umask 077 && tr -dc A-Z </dev/urandom | head -c 20 >/var/lib/rabbitmq/.erlang.cookie &&
      chmod 400 /var/lib/rabbitmq/.erlang.cookie && chown rabbitmq:rabbitmq /var/lib/rabbitmq/.erlang.cookie' ||
      die "could not write the Erlang cookie in $root/var/lib/rabbitmq"
  fi
}

# The root, its mounts, and each node's directories and config (a running node whose config
# changed is stopped here, so that starting it again takes the new settings).
cluster_prepare() {
  local n d
  mkdir -p "$state"
  : >>"$cluster_log"
  [ -f "$root/.effect-stream-offsets-complete" ] || build_root
  mount_root
  ensure_cookie
  for n in "${nodes[@]}"; do
    d=$root$(node_dir "$n")
    mkdir -p "$d/mnesia" "$d/log"
    if [ "$(node_conf "$n")" != "$(cat "$d/rabbitmq.conf" 2>/dev/null)" ]; then
      stop_node "$(node_name "$n")" "$cluster_log"
      node_conf "$n" >"$d/rabbitmq.conf"
    fi
    echo "[rabbitmq_stream]." >"$d/enabled_plugins"
    in_root chown rabbitmq:rabbitmq "$(node_dir "$n")" "$(node_dir "$n")/mnesia" "$(node_dir "$n")/log" ||
      die "could not chown $d to rabbitmq"
  done
}

# Start node N's VM unless it runs (it returns at once; cluster_wait_* wait for it). A node that
# was in the cluster finds its peers by itself from its data.
cluster_start() {
  local n=$1 node p
  node=$(node_name "$n")
  p=$(stream_port "$n")
  [ -n "$(node_pids "$node")" ] && return 0
  port_open "$p" && die "localhost:$p is taken by something other than $node; free it"
  say "starting $node (streams on localhost:$p)"
  in_node "$n" rabbitmq-server -detached >>"$cluster_log" 2>&1 ||
    die "$node did not start; read $cluster_log and $(node_log "$n")"
}

# Wait until node N's VM has booted far enough to open its stream port (maybe still standalone).
# Nodes booting at once can fail their first boot (seen: Mnesia's protocol negotiation with a peer
# that is booting too is killed, "BOOT FAILED"); such a node is started again, twice at most.
cluster_wait_booted() {
  local n=$1 node p deadline=$((SECONDS + wait_seconds)) restarts=2
  node=$(node_name "$n")
  p=$(stream_port "$n")
  until port_open "$p"; do
    if [ -z "$(node_pids "$node")" ]; then
      if ((restarts > 0)) && grep -q "BOOT FAILED" <(tail -n 400 "$(node_log "$n")" 2>/dev/null); then
        restarts=$((restarts - 1))
        say "$node failed to boot ($(grep -m 1 -A 6 "BOOT FAILED" <(tail -n 400 "$(node_log "$n")") | grep -m 1 -o "> \(exit\|error\|throw\):.*" | cut -c3-120)); starting it again"
        cluster_start "$n"
        deadline=$((SECONDS + wait_seconds))
        continue
      fi
      die "$node stopped while starting; read $(node_log "$n")"
    fi
    if ((SECONDS >= deadline)); then
      local why=''
      # A cluster member waits for the members that were running when it stopped.
      tail -n 1 "$(node_log "$n")" 2>/dev/null | grep -q "Waiting for Mnesia tables" &&
        why=" (it waits for its cluster peers: start them too, e.g. cluster up)"
      die "$node did not open localhost:$p within ${wait_seconds}s$why; read $(node_log "$n")"
    fi
    sleep 1
  done
}

# Join node N (2 or 3) to rabbit-1's cluster unless it already is a member: done once, when the
# cluster is formed; a member that restarts rejoins by itself.
cluster_join() {
  local n=$1 node seed disk rc
  node=$(node_name "$n")
  seed=$(node_name 1)
  disk=$(cluster_view "$n" | head -n 1) || die "cannot read the cluster status of $node; read $(node_log "$n")"
  case " $disk " in *" $seed "*) return 0 ;; esac
  say "joining $node to the cluster of $seed"
  { ctl "$n" stop_app && ctl "$n" reset && ctl "$n" join_cluster "$seed"; } >>"$cluster_log" 2>&1
  rc=$?
  ctl "$n" start_app >>"$cluster_log" 2>&1
  ((rc == 0)) || die "$node could not join $seed; read $cluster_log and $(node_log "$n")"
}

# The names of the nodes whose VM runs in the root, one line each.
live_nodes() { root_procs | awk -v single="$single" '$3 == "server" { print ($4 == "-" ? single : $4) }'; }

# Probe the stream ports of the listed nodes in parallel; fail when one does not take a stream.
probe_nodes() {
  local n pids=() rc=0
  for n in "$@"; do
    { port_open "$(stream_port "$n")" && RABBITMQ_STREAM_PORT=$(stream_port "$n") PROBE_TIMEOUT_MS=10000 \
      node "$here/broker-probe.mjs" 2> >(sed "s/^/$(node_name "$n"): /" >>"$cluster_log"); } &
    pids+=($!)
  done
  for n in "${pids[@]}"; do wait "$n" || rc=1; done
  return "$rc"
}

# Wait until the listed nodes run in one cluster with every node whose VM is alive (as the first
# listed node sees it) and each accepts a stream declaration on its port.
cluster_wait_ready() {
  local n m node live running pending deadline=$((SECONDS + wait_seconds))
  while :; do
    pending=''
    live=$(live_nodes)
    for n in "$@"; do
      node=$(node_name "$n")
      grep -qx "$node" <<<"$live" || die "$node stopped while starting; read $(node_log "$n")"
    done
    n=$1
    running=$(cluster_view "$n" | sed -n 2p)
    for m in "${nodes[@]}"; do
      grep -qx "$(node_name "$m")" <<<"$live" || continue
      case " $running " in *" $(node_name "$m") "*) ;; *) pending="$(node_name "$n") does not run in one cluster with $(node_name "$m")" ;; esac
    done
    if [ -z "$pending" ] && ! probe_nodes "$@"; then
      pending="a node does not accept streams yet ($(tail -n 1 "$cluster_log"))"
    fi
    [ -z "$pending" ] && return 0
    ((SECONDS < deadline)) || die "$pending after ${wait_seconds}s; read $(node_log "$n")"
    sleep 2
  done
}

cluster_up() {
  local t0=$SECONDS n live disk
  cluster_prepare
  live=$(live_nodes)
  # All at once: nodes stopped together wait for each other's data when they start.
  for n in "${nodes[@]}"; do
    grep -qx "$(node_name "$n")" <<<"$live" || cluster_start "$n"
  done
  for n in "${nodes[@]}"; do cluster_wait_booted "$n"; done
  disk=$(cluster_view 1 | head -n 1)
  for n in 2 3; do
    case " $disk " in *" $(node_name "$n") "*) ;; *) cluster_join "$n" ;; esac
  done
  cluster_wait_ready "${nodes[@]}"
  say "cluster ready in $((SECONDS - t0))s: $(node_name 1), $(node_name 2), $(node_name 3) with streams on localhost:5561, 5562, 5563"
}

cluster_down() {
  local n
  [ -d "$root" ] || return 0
  for n in "${nodes[@]}"; do
    [ -n "$(node_pids "$(node_name "$n")")" ] && say "stopping $(node_name "$n")"
    stop_node "$(node_name "$n")" "$cluster_log" &
  done
  wait
  release_root
  say "cluster stopped (data kept in $root/var/lib/rabbitmq/cluster; cluster reset deletes it)"
}

cluster_stop_node() {
  local n=$1 t0=$SECONDS node
  node=$(node_name "$n")
  if [ -z "$(node_pids "$node")" ]; then
    say "$node is not running; nothing to stop"
    return 0
  fi
  stop_node "$node" "$cluster_log"
  wait_closed "$(stream_port "$n")" "$node"
  release_root
  say "stopped $node (localhost:$(stream_port "$n") closed) in $((SECONDS - t0))s"
}

cluster_start_node() {
  local n=$1 t0=$SECONDS node m live others=''
  node=$(node_name "$n")
  cluster_prepare
  live=$(live_nodes)
  for m in "${nodes[@]}"; do
    [ "$m" != "$n" ] && ! grep -qx "$(node_name "$m")" <<<"$live" && others+=" $(node_name "$m")"
  done
  # A clustered node waits (minutes) for peers that stopped after it: say why it might hang.
  [ -n "$others" ] && say "note:$others not running; if $node stopped with them, start them too (cluster up)"
  cluster_start "$n"
  cluster_wait_booted "$n"
  [ "$n" != 1 ] && cluster_join "$n"
  cluster_wait_ready "$n"
  say "$node is back in the cluster with streams on localhost:$(stream_port "$n") in $((SECONDS - t0))s"
}

cluster_kill_node() {
  local n=$1 t0=$SECONDS node pids
  node=$(node_name "$n")
  pids=$(node_pids "$node")
  [ -n "$pids" ] || die "$node is not running; nothing to kill"
  # shellcheck disable=SC2086
  kill -9 $pids
  wait_closed "$(stream_port "$n")" "$node"
  release_root
  say "killed $node (SIGKILL; localhost:$(stream_port "$n") closed) in $((SECONDS - t0))s"
}

cluster_signal_node() {
  local n=$1 sig=$2 what=$3 node pids
  node=$(node_name "$n")
  pids=$(root_procs | awk -v node="$node" '$3 == "server" && $4 == node { print $1 }')
  [ -n "$pids" ] || die "$node is not running; nothing to $what"
  # shellcheck disable=SC2086
  kill -"$sig" $pids || die "could not $what $node"
  say "$([ "$sig" = STOP ] && echo froze || echo thawed) $node (localhost:$(stream_port "$n"))"
}

cluster_status() {
  local n node p live running='' bad=0
  live=$(live_nodes)
  for n in "${nodes[@]}"; do
    [ -n "$running" ] || { port_open "$(stream_port "$n")" && running=$(cluster_view "$n" | sed -n 2p); }
  done
  for n in "${nodes[@]}"; do
    node=$(node_name "$n")
    p=$(stream_port "$n")
    if ! grep -qx "$node" <<<"$live"; then
      say "$node: down (streams on localhost:$p)"
      bad=1
    elif ! port_open "$p"; then
      say "$node: VM running, but localhost:$p is closed (starting, or its app is stopped)"
      bad=1
    else
      case " $running " in
      *" $node "*) say "$node: up, streams on localhost:$p, in the cluster ($running)" ;;
      *)
        say "$node: up, streams on localhost:$p, but not in the cluster ($running)"
        bad=1
        ;;
      esac
    fi
  done
  return "$bad"
}

cluster_logs() {
  local n
  [ -f "$cluster_log" ] && tail -n 30 "$cluster_log"
  for n in "${nodes[@]}"; do
    echo "==> $(node_log "$n") <=="
    tail -n 30 "$(node_log "$n")" 2>/dev/null
  done
  return 0
}

# A disk alarm on node N (any node's alarm blocks publishers on the whole cluster).
cluster_alarm_node() {
  local n=$1 limit alarms
  case "$2" in
  on) limit=5000GB ;;
  off) limit=50MB ;;
  *) die "usage: scripts/broker.sh cluster alarm-node N on|off" ;;
  esac
  ctl "$n" set_disk_free_limit "$limit" >>"$cluster_log" 2>&1 || die "set_disk_free_limit $limit on $(node_name "$n") failed (see $cluster_log)"
  for _ in $(seq 1 60); do
    alarms=$(ctl "$n" eval 'rabbit_alarm:get_alarms().' 2>>"$cluster_log")
    case "$2:$alarms" in
    on:*disk*) say "disk alarm raised on $(node_name "$n")"; return 0 ;;
    off:*disk*) ;;
    off:*) say "disk alarm cleared on $(node_name "$n")"; return 0 ;;
    esac
    sleep 0.5
  done
  die "the disk alarm on $(node_name "$n") did not turn $2 within 30 s (alarms: $alarms)"
}

cmd_cluster() {
  local n=${2:-}
  case "${1:-}" in
  stop-node | start-node | kill-node | freeze-node | thaw-node | cut-node | alarm-node | group | ctl | streams)
    case "$n" in 1 | 2 | 3) ;; *) die "usage: scripts/broker.sh cluster $1 1|2|3" ;; esac
    ;;
  esac
  case "${1:-}" in
  up) cluster_up ;;
  down) cluster_down ;;
  reset)
    cluster_down
    rm -rf "$root/var/lib/rabbitmq/cluster"
    say "cluster data deleted: the next cluster up forms a new cluster"
    ;;
  status) cluster_status ;;
  logs) cluster_logs ;;
  stop-node) cluster_stop_node "$n" ;;
  start-node) cluster_start_node "$n" ;;
  kill-node) cluster_kill_node "$n" ;;
  freeze-node) cluster_signal_node "$n" STOP freeze ;;
  thaw-node) cluster_signal_node "$n" CONT thaw ;;
  cut-node)
    ctl "$n" close_all_connections "cut by scripts/broker.sh" >>"$cluster_log" 2>&1 || die "could not close the connections of $(node_name "$n")"
    say "closed every client connection of $(node_name "$n")"
    ;;
  alarm-node) cluster_alarm_node "$n" "${3:-}" ;;
  ctl)
    # rabbitmqctl on node N, e.g. cluster ctl 1 list_queues
    shift 2
    ctl "$n" "$@"
    ;;
  streams)
    # rabbitmq-streams on node N, e.g. cluster streams 1 list_stream_connections conn_name peer_port
    shift 2
    in_node "$n" /usr/lib/rabbitmq/bin/rabbitmq-streams -n "$(node_name "$n")" "$@"
    ;;
  group)
    # The members of a single active consumer group, as node N's coordinator knows them.
    [ -n "${3:-}" ] && [ -n "${4:-}" ] || die "usage: scripts/broker.sh cluster group N STREAM NAME"
    ctl "$n" eval "rabbit_stream_sac_coordinator:group_consumers(<<\"/\">>, <<\"$3\">>, <<\"$4\">>, [connection_name, subscription_id, state])."
    ;;
  *)
    echo "usage: scripts/broker.sh cluster up|down|reset|status|logs|stop-node N|start-node N|kill-node N|freeze-node N|thaw-node N|cut-node N|alarm-node N on|off|group N STREAM NAME|ctl N ARGS...|streams N ARGS..." >&2
    exit 2
    ;;
  esac
}

# ---------------------------------------------------------------- mutual-TLS node (on demand)
mtls_node=rabbit-mtls@$host
mtls_dir=/var/lib/rabbitmq/mtls # inside the root
mtls_node_log() { echo "$root$mtls_dir/log/$mtls_node.log"; }
in_mtls() { in_named_node "$mtls_node" 5691 25691 "$mtls_dir" "$@"; }

mtls_conf() {
  # TLS streams only (stream.listeners.tcp = none: no plain listener, not even the default 5552),
  # a client certificate signed by the test CA required, clients sent to localhost:$mtls_port
  # (advertised_tls_port only says so: without it the TLS listener's port is advertised anyway).
  tls_stamp
  cat <<EOF
stream.listeners.tcp = none
stream.listeners.ssl.1 = $mtls_port
stream.advertised_host = localhost
stream.advertised_tls_port = $mtls_port
ssl_options.cacertfile = $broker_tls/ca.pem
ssl_options.certfile = $broker_tls/server.pem
ssl_options.keyfile = $broker_tls/server-key.pem
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = true
loopback_users = none
auth_mechanisms.1 = PLAIN
auth_mechanisms.2 = AMQPLAIN
auth_mechanisms.3 = EXTERNAL
ssl_cert_login_from = common_name
EOF
}

# SASL EXTERNAL: the client certificate's CN is the user name (ssl_cert_login_from = common_name),
# so that user must exist (no password: only the certificate logs it in) with rights on "/".
mtls_cert_user="effect-stream-offsets test client"
mtls_user() {
  local ctl=(in_mtls rabbitmqctl -n "$mtls_node" -q)
  "${ctl[@]}" list_users 2>>"$mtls_log" | grep -q "^$mtls_cert_user\b" && return 0
  { "${ctl[@]}" add_user "$mtls_cert_user" "unused-$RANDOM$RANDOM" &&
    "${ctl[@]}" clear_password "$mtls_cert_user" &&
    "${ctl[@]}" set_permissions -p / "$mtls_cert_user" ".*" ".*" ".*"; } >>"$mtls_log" 2>&1 ||
    die "could not add the user \"$mtls_cert_user\" on $mtls_node (for SASL EXTERNAL); read $mtls_log"
}

# A stream declaration over TLS with the test CA and the client certificate.
mtls_probe() {
  PROBE_PORT=$mtls_port PROBE_TLS_CA=$tls/ca.pem PROBE_TLS_CERT=$tls/client.pem PROBE_TLS_KEY=$tls/client-key.pem \
    node "$here/broker-probe.mjs" 2>>"$mtls_log"
}

mtls_up() {
  local t0=$SECONDS d deadline
  mkdir -p "$state"
  : >>"$mtls_log"
  tls_material
  [ -f "$root/.effect-stream-offsets-complete" ] || build_root
  mount_root
  ensure_cookie
  d=$root$mtls_dir
  mkdir -p "$d/mnesia" "$d/log"
  if [ "$(mtls_conf)" != "$(cat "$d/rabbitmq.conf" 2>/dev/null)" ] || ! tls_installed "$root$broker_tls"; then
    # New settings (another port, a new certificate): a running node must restart to take them.
    [ -n "$(node_pids "$mtls_node")" ] && say "stopping $mtls_node to take new settings"
    stop_node "$mtls_node" "$mtls_log"
    tls_installed "$root$broker_tls" || tls_install "$root$broker_tls" in_root
    mtls_conf >"$d/rabbitmq.conf"
  fi
  echo "[rabbitmq_stream,rabbitmq_auth_mechanism_ssl]." >"$d/enabled_plugins"
  in_root chown rabbitmq:rabbitmq "$mtls_dir" "$mtls_dir/mnesia" "$mtls_dir/log" || die "could not chown $d to rabbitmq"
  if [ -z "$(node_pids "$mtls_node")" ]; then
    port_open "$mtls_port" && die "localhost:$mtls_port is taken by something other than $mtls_node; free it or set RABBITMQ_STREAM_MTLS_PORT"
    say "starting $mtls_node (TLS streams with client certificates on localhost:$mtls_port)"
    in_mtls rabbitmq-server -detached >>"$mtls_log" 2>&1 || die "$mtls_node did not start; read $mtls_log and $(mtls_node_log)"
  fi
  deadline=$((SECONDS + wait_seconds))
  until port_open "$mtls_port" && PROBE_TIMEOUT_MS=10000 mtls_probe; do
    [ -n "$(node_pids "$mtls_node")" ] || die "$mtls_node stopped while starting; read $(mtls_node_log)"
    ((SECONDS < deadline)) ||
      die "$mtls_node did not accept a stream declaration with the client certificate on localhost:$mtls_port within ${wait_seconds}s ($(tail -n 1 "$mtls_log")); read $(mtls_node_log)"
    sleep 2
  done
  mtls_user
  say "ready in $((SECONDS - t0))s: $mtls_node, TLS streams on localhost:$mtls_port for clients with a certificate (CA: $tls/ca.pem, certificate: $tls/client.pem, key: $tls/client-key.pem)"
}

mtls_down() {
  if [ ! -d "$root" ] || [ -z "$(node_pids "$mtls_node")" ]; then
    say "$mtls_node is not running; nothing to stop"
    return 0
  fi
  say "stopping $mtls_node"
  stop_node "$mtls_node" "$mtls_log"
  wait_closed "$mtls_port" "$mtls_node"
  release_root
  say "stopped $mtls_node (localhost:$mtls_port closed)"
}

mtls_status() {
  if [ -z "$(node_pids "$mtls_node")" ]; then
    say "$mtls_node: down (mtls up starts it: TLS streams with client certificates on localhost:$mtls_port)"
    return 1
  fi
  if port_open "$mtls_port" && PROBE_TIMEOUT_MS=5000 mtls_probe; then
    say "$mtls_node: up, TLS streams on localhost:$mtls_port for clients with a certificate (CA: $tls/ca.pem, certificate: $tls/client.pem, key: $tls/client-key.pem)"
  else
    say "$mtls_node: VM running, but no stream declaration with the client certificate on localhost:$mtls_port ($(tail -n 1 "$mtls_log"))"
    return 1
  fi
}

cmd_mtls() {
  case "${1:-}" in
  up) mtls_up ;;
  down) mtls_down ;;
  status) mtls_status ;;
  logs)
    [ -f "$mtls_log" ] && tail -n 30 "$mtls_log"
    echo "==> $(mtls_node_log) <=="
    tail -n 50 "$(mtls_node_log)" 2>/dev/null
    return 0
    ;;
  *)
    echo "usage: scripts/broker.sh mtls up|down|status|logs" >&2
    exit 2
    ;;
  esac
}

prom=$state/prometheus
prom_bin=$prom/root/usr/bin/prometheus
prom_ready() { curl -sf -m 2 "http://127.0.0.1:$prom_port/-/ready" >/dev/null 2>&1; }
prom_pid() {
  local pid
  pid=$(cat "$prom/pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# Debian's package, unpacked (its binary runs from there); bookworm's and trixie's both work.
prom_unpack() {
  local deb
  [ -x "$prom_bin" ] && return 0
  command -v apt-get >/dev/null 2>&1 || die "no apt-get to download Debian's prometheus package; install Prometheus and put it at $prom_bin"
  mkdir -p "$prom/deb"
  say "downloading Debian's prometheus package"
  (cd "$prom/deb" && apt-get download prometheus) >>"$log" 2>&1 ||
    { apt-get update >>"$log" 2>&1 && (cd "$prom/deb" && apt-get download prometheus) >>"$log" 2>&1; } ||
    die "apt-get download prometheus failed; read $log"
  deb=$(ls "$prom"/deb/prometheus_*.deb 2>/dev/null | head -n 1)
  dpkg -x "$deb" "$prom/root" || die "could not unpack $deb"
  rm -rf "$prom/deb"
}

prom_up() {
  local deadline
  mkdir -p "$prom"
  if prom_pid >/dev/null; then
    prom_ready && { say "prometheus: up on localhost:$prom_port"; return 0; }
  else
    port_open "$prom_port" && die "localhost:$prom_port is taken by something else; free it or set PROMETHEUS_PORT"
    prom_unpack
    [ -f "$prom/targets.json" ] || echo '[]' >"$prom/targets.json"
    cat >"$prom/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: stream-offsets
    file_sd_configs:
      - files: ["$prom/targets.json"]
        refresh_interval: 1s
EOF
    rm -rf "$prom/data"
    "$prom_bin" --config.file="$prom/prometheus.yml" --storage.tsdb.path="$prom/data" \
      --web.listen-address="127.0.0.1:$prom_port" --log.level=warn >>"$prom/prometheus.log" 2>&1 &
    echo $! >"$prom/pid"
  fi
  deadline=$((SECONDS + wait_seconds))
  until prom_ready; do
    prom_pid >/dev/null || die "prometheus stopped while starting; read $prom/prometheus.log"
    ((SECONDS < deadline)) || die "prometheus did not answer on localhost:$prom_port within ${wait_seconds}s; read $prom/prometheus.log"
    sleep 0.5
  done
  say "prometheus: up on localhost:$prom_port ($("$prom_bin" --version 2>&1 | head -n 1))"
}

# The targets, as Prometheus' file service discovery reads them (it notices the change by itself).
prom_scrape() {
  local list="" t
  for t in "$@"; do
    case "$t" in *:[0-9]*) ;; *) die "usage: scripts/broker.sh prometheus scrape HOST:PORT..." ;; esac
    list="$list${list:+, }\"$t\""
  done
  mkdir -p "$prom"
  echo "[{\"targets\": [$list]}]" >"$prom/targets.json.new" && mv "$prom/targets.json.new" "$prom/targets.json"
}

prom_down() {
  local pid
  pid=$(prom_pid) || { say "prometheus is not running; nothing to stop"; return 0; }
  kill "$pid" 2>/dev/null
  for _ in $(seq 1 40); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  kill -9 "$pid" 2>/dev/null
  rm -f "$prom/pid"
  say "prometheus stopped"
}

cmd_prometheus() {
  case "${1:-}" in
  up) prom_up ;;
  down) prom_down ;;
  scrape)
    shift
    prom_scrape "$@"
    ;;
  status)
    if prom_ready; then say "prometheus: up on localhost:$prom_port"; else say "prometheus: down"; return 1; fi
    ;;
  *)
    echo "usage: scripts/broker.sh prometheus up|down|status|scrape HOST:PORT..." >&2
    exit 2
    ;;
  esac
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
restart) cmd_restart ;;
status) cmd_status ;;
logs) cmd_logs ;;
cut) cmd_cut ;;
freeze) cmd_freeze STOP freeze ;;
thaw) cmd_freeze CONT thaw ;;
alarm) cmd_alarm "${2:-}" ;;
mode)
  # how this script started the single broker (chroot, native, docker), or nothing when it did not
  mode
  ;;
ctl)
  # rabbitmqctl on the single broker, e.g. list_queues name type messages
  shift
  ctl_single "$@"
  ;;
cluster)
  shift
  cmd_cluster "$@"
  ;;
mtls)
  shift
  cmd_mtls "$@"
  ;;
prometheus)
  shift
  cmd_prometheus "$@"
  ;;
*)
  echo "usage: scripts/broker.sh up|down|restart|status|logs|cut|freeze|thaw|alarm on|off|mode|ctl ARGS... | cluster up|down|reset|status|logs|stop-node N|start-node N|kill-node N|freeze-node N|thaw-node N|cut-node N|alarm-node N on|off|group N STREAM NAME | mtls up|down|status|logs | prometheus up|down|status|scrape HOST:PORT..." >&2
  exit 2
  ;;
esac
