#!/usr/bin/env bash
# A local RabbitMQ 4 with streams for development, tests and CI.
#
#   scripts/broker.sh up|down|restart|status|logs|cut                        (npm run broker -- up)
#   scripts/broker.sh cluster up|down|reset|status|logs|stop-node N|start-node N
#                                                                 (npm run broker -- cluster up)
#
# `up` gives a broker on localhost:$RABBITMQ_STREAM_PORT (default 5552), guest/guest, vhost "/",
# stream.advertised_host = localhost, and returns only once a stream can really be declared.
# It tries, in order:
#   1. a stream-capable broker already answering on the port: nothing to do;
#   2. a working Docker engine: the rabbitmq:4-management image;
#   3. Debian whose apt candidate for rabbitmq-server is >= 3.13 (Debian 13): the native package;
#   4. otherwise (Debian 12 ships 3.10.8, which the client cannot use): a Debian 13 (trixie) root
#      made with debootstrap under $BROKER_ROOT, run under chroot (node rabbit@<short host name>).
# `down` stops only a broker that `up` started (recorded in $BROKER_STATE_DIR/mode).
# `restart` stops that broker's Erlang VM and starts it again (data kept), returning once a
#   stream can be declared again: for tests of clients that must survive a broker restart.
# `cut` closes every client connection of that broker (for fault tests: clients must recover).
#
# `cluster ...` runs three more RabbitMQ 4 nodes from the same trixie root (built if missing),
# independent of the single broker, which may run at the same time:
#   node rabbit-N@<short host name>, N = 1..3: streams on localhost:556N (advertised as
#   localhost:556N), AMQP on 568N, Erlang distribution on 2568N, no management plugin; data, logs,
#   config and pid file under $BROKER_ROOT/var/lib/rabbitmq/cluster/rabbit-N.
#   cluster up            start what is missing, form the cluster the first time (join rabbit-1),
#                         return when all three run clustered and each accepts a stream declaration
#   cluster stop-node N   stop node N's Erlang VM (a node going away); returns when 556N is closed
#   cluster start-node N  start it again; returns when it is back in the cluster and accepts streams
#   cluster down          stop the three nodes; data is kept, so the next `cluster up` is quick
#   cluster reset         `cluster down` and delete the cluster's data (a fresh cluster next time)
#   cluster status        one line per node (exit 1 unless all three are up)
#   cluster logs          the end of each node's log
#
# Environment:
#   RABBITMQ_STREAM_PORT   stream port of the single broker (default 5552)
#   BROKER_STATE_DIR       state and logs (default /var/lib/effect-stream-offsets)
#   BROKER_ROOT            the trixie root (default $BROKER_STATE_DIR/trixie)
#   BROKER_WAIT_SECONDS    how long each wait for a broker or node lasts (default 120)
#   BROKER_DOCKER_NAME     container name (default effect-stream-offsets-rabbitmq)
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
port=${RABBITMQ_STREAM_PORT:-5552}
state=${BROKER_STATE_DIR:-/var/lib/effect-stream-offsets}
root=${BROKER_ROOT:-$state/trixie}
wait_seconds=${BROKER_WAIT_SECONDS:-120}
container=${BROKER_DOCKER_NAME:-effect-stream-offsets-rabbitmq}
log=$state/broker.log
cluster_log=$state/cluster.log
export RABBITMQ_STREAM_PORT=$port

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
mode() { cat "$state/mode" 2>/dev/null || true; }

# Wait until a stream can be declared, or fail with the log to read.
wait_ready() {
  local what=$1 deadline=$((SECONDS + wait_seconds))
  while ((SECONDS < deadline)); do
    if port_open && PROBE_TIMEOUT_MS=10000 probe; then
      say "ready: $what on localhost:$port"
      return 0
    fi
    sleep 2
  done
  die "$what did not accept streams on localhost:$port within ${wait_seconds}s; read $log"
}

# Wait until nothing listens on a port any more (the VM behind it is gone).
wait_closed() {
  local p=$1 what=$2 deadline=$((SECONDS + wait_seconds))
  while port_open "$p"; do
    ((SECONDS < deadline)) || die "localhost:$p is still open ${wait_seconds}s after stopping $what"
    sleep 0.5
  done
}

rabbit_conf() {
  # Config for a broker we run: advertise localhost, listen on the chosen stream port.
  cat <<EOF
stream.advertised_host = localhost
stream.listeners.tcp.1 = $port
loopback_users = none
EOF
}

# ---------------------------------------------------------------- docker
docker_works() { command -v docker >/dev/null 2>&1 && timeout 10 docker info >/dev/null 2>&1; }

up_docker() {
  say "starting $container (rabbitmq:4-management) with Docker"
  if docker ps -a --format '{{.Names}}' | grep -qx "$container"; then
    docker start "$container" >>"$log" 2>&1 || die "docker start $container failed; read $log"
  else
    docker run -d --name "$container" -p "$port:5552" -p 15672:15672 \
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
apt_candidate() { apt-cache policy rabbitmq-server 2>/dev/null | awk '/Candidate:/ { print $2 }'; }

candidate_ok() {
  # true when the apt candidate is >= 3.13
  local v=$1
  [ -n "$v" ] && [ "$v" != "(none)" ] && dpkg --compare-versions "$v" ge 3.13
}

up_native() {
  say "installing Debian's rabbitmq-server $(apt_candidate)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y rabbitmq-server >>"$log" 2>&1 || die "apt-get install rabbitmq-server failed; read $log"
  mkdir -p /etc/rabbitmq
  rabbit_conf >/etc/rabbitmq/rabbitmq.conf
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
  local p r real stat ppid cmd node kind
  real=$(readlink -f "$root")
  for p in /proc/[0-9]*; do
    r=$(readlink "$p/root" 2>/dev/null) || continue
    [ "$r" = "$real" ] || continue
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
  [ -f "$root/.effect-stream-offsets-complete" ] || build_root
  mount_root
  if [ "$(rabbit_conf)" != "$(cat "$root/etc/rabbitmq/rabbitmq.conf" 2>/dev/null)" ]; then
    # New settings (another port): a running broker must restart to take them.
    stop_node "$single" "$log"
    rabbit_conf >"$root/etc/rabbitmq/rabbitmq.conf"
  fi
  in_root rabbitmq-plugins --offline enable rabbitmq_stream rabbitmq_stream_management >>"$log" 2>&1 ||
    die "could not enable rabbitmq_stream in $root; read $log"
  if [ -z "$(node_pids "$single")" ] || ! in_root rabbitmqctl -n "$single" -q status >/dev/null 2>&1; then
    # A broker killed without a clean stop leaves processes behind: clear them.
    stop_node "$single" "$log"
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
cmd_up() {
  mkdir -p "$state"
  : >>"$log"
  if port_open; then
    if PROBE_TIMEOUT_MS=10000 probe; then
      say "a stream-capable broker already answers on localhost:$port; nothing to do"
      return 0
    fi
    die "something answers on localhost:$port but a stream cannot be declared there ($(tail -n 1 "$log")); stop it or set RABBITMQ_STREAM_PORT"
  fi
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
    say "restarting $container"
    docker restart "$container" >>"$log" 2>&1 || die "docker restart $container failed; read $log"
    wait_ready "RabbitMQ in Docker container $container"
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
  if port_open && PROBE_TIMEOUT_MS=5000 probe; then
    say "up: streams on localhost:$port (started by: $(mode || true))"
  else
    say "down: no stream-capable broker on localhost:$port"
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

# Run a command in the root with node N's environment: its own name, ports, data, logs, config
# and plugins (stream only: the management plugin's fixed port 15672 is the single broker's).
# One scheduler per VM and no busy waiting: four Erlang VMs share two cores here.
in_node() {
  local n=$1 d
  d=$(node_dir "$1")
  shift
  in_root env \
    RABBITMQ_NODENAME="$(node_name "$n")" \
    RABBITMQ_NODE_PORT=$((5680 + n)) \
    RABBITMQ_DIST_PORT=$((25680 + n)) \
    RABBITMQ_MNESIA_BASE="$d/mnesia" \
    RABBITMQ_LOG_BASE="$d/log" \
    RABBITMQ_PID_FILE="$d/rabbit-$n.pid" \
    RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf" \
    RABBITMQ_ADVANCED_CONFIG_FILE="$d/advanced.config" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins" \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+S 1:1 +sbwt none +sbwtdcpu none +sbwtdio none" \
    "$@"
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

# The root, its mounts, and each node's directories and config (a running node whose config
# changed is stopped here, so that starting it again takes the new settings).
cluster_prepare() {
  local n d
  mkdir -p "$state"
  : >>"$cluster_log"
  [ -f "$root/.effect-stream-offsets-complete" ] || build_root
  mount_root
  # One Erlang cookie for all nodes and the CLI ($HOME is shared). In a fresh root the first VM
  # writes it; three starting at once could each write their own, so write it before they start.
  if [ ! -s "$root/var/lib/rabbitmq/.erlang.cookie" ]; then
    in_root sh -c 'umask 077 && tr -dc A-Z </dev/urandom | head -c 20 >/var/lib/rabbitmq/.erlang.cookie &&
      chmod 400 /var/lib/rabbitmq/.erlang.cookie && chown rabbitmq:rabbitmq /var/lib/rabbitmq/.erlang.cookie' ||
      die "could not write the Erlang cookie in $root/var/lib/rabbitmq"
  fi
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
cluster_wait_booted() {
  local n=$1 node p deadline=$((SECONDS + wait_seconds))
  node=$(node_name "$n")
  p=$(stream_port "$n")
  until port_open "$p"; do
    [ -n "$(node_pids "$node")" ] || die "$node stopped while starting; read $(node_log "$n")"
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

cmd_cluster() {
  local n=${2:-}
  case "${1:-}" in
  stop-node | start-node)
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
  *)
    echo "usage: scripts/broker.sh cluster up|down|reset|status|logs|stop-node N|start-node N" >&2
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
cluster)
  shift
  cmd_cluster "$@"
  ;;
*)
  echo "usage: scripts/broker.sh up|down|restart|status|logs|cut | cluster up|down|reset|status|logs|stop-node N|start-node N" >&2
  exit 2
  ;;
esac
