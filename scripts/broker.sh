#!/usr/bin/env bash
# A local RabbitMQ 4 with streams for development, tests and CI.
#
#   scripts/broker.sh up|down|status|logs|cut   (npm run broker -- up)
#
# `up` gives a broker on localhost:$RABBITMQ_STREAM_PORT (default 5552), guest/guest, vhost "/",
# stream.advertised_host = localhost, and returns only once a stream can really be declared.
# It tries, in order:
#   1. a stream-capable broker already answering on the port: nothing to do;
#   2. a working Docker engine: the rabbitmq:4-management image;
#   3. Debian whose apt candidate for rabbitmq-server is >= 3.13 (Debian 13): the native package;
#   4. otherwise (Debian 12 ships 3.10.8, which the client cannot use): a Debian 13 (trixie) root
#      made with debootstrap under $BROKER_ROOT, run under chroot.
# `down` stops only a broker that `up` started (recorded in $BROKER_STATE_DIR/mode).
# `cut` closes every client connection of that broker (for fault tests: clients must recover).
#
# Environment:
#   RABBITMQ_STREAM_PORT   stream port (default 5552)
#   BROKER_STATE_DIR       state and logs (default /var/lib/effect-stream-offsets)
#   BROKER_ROOT            the trixie root (default $BROKER_STATE_DIR/trixie)
#   BROKER_WAIT_SECONDS    how long `up` waits for the broker to accept streams (default 120)
#   BROKER_DOCKER_NAME     container name (default effect-stream-offsets-rabbitmq)
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
port=${RABBITMQ_STREAM_PORT:-5552}
state=${BROKER_STATE_DIR:-/var/lib/effect-stream-offsets}
root=${BROKER_ROOT:-$state/trixie}
wait_seconds=${BROKER_WAIT_SECONDS:-120}
container=${BROKER_DOCKER_NAME:-effect-stream-offsets-rabbitmq}
log=$state/broker.log
export RABBITMQ_STREAM_PORT=$port

say() { echo "broker: $*" >&2; }
die() {
  say "$*"
  exit 1
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }
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

# Processes whose root directory is the trixie root (the broker, epmd, ...).
root_pids() {
  local p r real
  real=$(readlink -f "$root")
  for p in /proc/[0-9]*; do
    r=$(readlink "$p/root" 2>/dev/null) || continue
    [ "$r" = "$real" ] && echo "${p#/proc/}"
  done
}

build_root() {
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
}

up_chroot() {
  [ -f "$root/.effect-stream-offsets-complete" ] || build_root
  mount_root
  if [ "$(rabbit_conf)" != "$(cat "$root/etc/rabbitmq/rabbitmq.conf" 2>/dev/null)" ]; then
    # New settings (another port): a running broker must restart to take them.
    stop_root_processes
    rabbit_conf >"$root/etc/rabbitmq/rabbitmq.conf"
  fi
  in_root rabbitmq-plugins --offline enable rabbitmq_stream rabbitmq_stream_management >>"$log" 2>&1 ||
    die "could not enable rabbitmq_stream in $root; read $log"
  if [ -z "$(root_pids)" ] || ! in_root rabbitmqctl -q status >/dev/null 2>&1; then
    # A broker killed without a clean stop leaves processes or pid files behind: clear them.
    stop_root_processes
    say "starting rabbitmq-server in $root"
    in_root rabbitmq-server -detached >>"$log" 2>&1 || die "rabbitmq-server did not start in $root; read $log"
  fi
  echo chroot >"$state/mode"
  wait_ready "RabbitMQ $(in_root dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null) in $root"
}

stop_root_processes() {
  local pids
  pids=$(root_pids)
  [ -z "$pids" ] && return 0
  # shellcheck disable=SC2086
  kill $pids 2>/dev/null
  for _ in $(seq 1 20); do
    [ -z "$(root_pids)" ] && return 0
    sleep 0.5
  done
  # shellcheck disable=SC2046
  kill -9 $(root_pids) 2>/dev/null
  return 0
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
    in_root rabbitmqctl stop >>"$log" 2>&1
    stop_root_processes
    umount_root
    ;;
  *)
    say "no broker was started by this script; nothing to stop"
    return 0
    ;;
  esac
  rm -f "$state/mode"
  say "stopped"
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
  chroot) in_root "${ctl[@]}" ;;
  *) die "no broker was started by this script; cannot cut its connections" ;;
  esac
}

cmd_logs() {
  [ -f "$log" ] && tail -n 100 "$log"
  case "$(mode)" in
  docker) docker logs --tail 100 "$container" ;;
  chroot) tail -n 100 "$root"/var/log/rabbitmq/rabbit@*.log 2>/dev/null ;;
  native) tail -n 100 /var/log/rabbitmq/rabbit@*.log 2>/dev/null ;;
  esac
  return 0
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
logs) cmd_logs ;;
cut) cmd_cut ;;
*)
  echo "usage: scripts/broker.sh up|down|status|logs|cut" >&2
  exit 2
  ;;
esac
