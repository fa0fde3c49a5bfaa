#!/usr/bin/env bash
# slurm-local.sh — a throw-away single-node Slurm cluster (Debian 12 slurm-wlm 22.05 + munge)
# for CI / tests, running as root without systemd.
# Vendored from the project's shared tools (facts behind every setting: docs/slurm.md); changes here:
# SLURM_LOCAL_CPUS defaults to 8 (4-rank jobs schedule on a 2-core box), free ports are picked
# when the default ones are taken (several clusters on one machine), the base folder is made
# traversable (munged needs that; mktemp -d makes 0700), `conf` prints the conf path.
#
#   bash slurm-local.sh start    # install if missing, start munged+slurmctld+slurmd, wait for "idle"
#   bash slurm-local.sh stop     # cancel all jobs, stop all daemons it started (by pid), idempotent
#   bash slurm-local.sh status   # exit 0 if the controller answers and the node is usable
#   bash slurm-local.sh env      # print "export SLURM_CONF=..." for eval
#   bash slurm-local.sh conf     # print the slurm.conf path
#
# Everything (key, conf, state, spool, logs, pid files, munge socket) lives under $SLURM_LOCAL_BASE.
# Clients find the cluster through SLURM_CONF (eval "$(bash slurm-local.sh env)").
# Knobs (environment):
#   SLURM_LOCAL_BASE   default /tmp/slurm-local
#   SLURM_LOCAL_CPUS   CPUs the node advertises; default 8 (empty: the real count). More than the real
#                      count lets --ntasks=4 jobs run on a 2-core box (SlurmdParameters=config_overrides).
#   SLURM_LOCAL_CTLD_PORT / SLURM_LOCAL_SLURMD_PORT   default: 6817 / 6818, or the first free pair above
#   SLURM_LOCAL_PMIX   1 (default): install libpmix2 and the libpmix.so link that Debian's
#                      mpi/pmix plugin dlopens, so "srun --mpi=pmix" works. 0: skip.
set -euo pipefail

BASE=${SLURM_LOCAL_BASE:-/tmp/slurm-local}
CTLD_PORT=${SLURM_LOCAL_CTLD_PORT:-}
SLURMD_PORT=${SLURM_LOCAL_SLURMD_PORT:-}
SLURM_LOCAL_CPUS=${SLURM_LOCAL_CPUS-8}
WANT_PMIX=${SLURM_LOCAL_PMIX:-1}
CONF=$BASE/etc/slurm.conf
MSOCK=$BASE/munge/run/munge.socket
NODE=$(hostname -s)
export SLURM_CONF=$CONF
PMIX_LINK=/usr/lib/x86_64-linux-gnu/pmix2/lib/libpmix.so

log() { echo "[slurm-local] $*" >&2; }

pid_alive() { [ -n "${1:-}" ] && [ -e "/proc/$1/exe" ] && readlink "/proc/$1/exe" >/dev/null 2>&1; }  # false for zombies
# pid_of PIDFILE BINARY: the pid from PIDFILE, only if that process still runs BINARY (guards against reused pids)
pid_of() {
  local p; [ -s "$1" ] || return 0; p=$(cat "$1")
  [ "$(readlink -f "/proc/$p/exe" 2>/dev/null)" = "$(readlink -f "$2")" ] && echo "$p" || true
}

ensure_installed() {
  local pkgs=()
  command -v slurmctld >/dev/null || pkgs+=(slurmctld)
  command -v slurmd    >/dev/null || pkgs+=(slurmd)
  command -v sbatch    >/dev/null || pkgs+=(slurm-client)
  command -v munged    >/dev/null || pkgs+=(munge)
  if [ "$WANT_PMIX" = 1 ] && [ ! -e /usr/lib/x86_64-linux-gnu/pmix2/lib/libpmix.so.2 ]; then pkgs+=(libpmix2); fi
  if [ ${#pkgs[@]} -gt 0 ]; then
    log "installing ${pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${pkgs[@]}" >"$BASE/log/apt.log" 2>&1 || {
      log "apt-get install failed, running apt-get update and retrying"
      apt-get update -q >>"$BASE/log/apt.log" 2>&1
      apt-get install -y -q --no-install-recommends "${pkgs[@]}" >>"$BASE/log/apt.log" 2>&1
    }
  fi
  # Debian's mpi_pmix plugin dlopen()s <pmix2>/lib/libpmix.so, which only libpmix-dev ships.
  if [ "$WANT_PMIX" = 1 ] && [ ! -e "$PMIX_LINK" ]; then ln -s libpmix.so.2 "$PMIX_LINK"; fi
}

start_munge() {
  local m=$BASE/munge
  mkdir -p "$m/etc" "$m/run" "$m/lib" "$m/log"
  chmod 700 "$m/etc" "$m/lib" "$m/log"; chmod 755 "$m/run"
  [ -s "$m/etc/munge.key" ] || mungekey -c -k "$m/etc/munge.key" >/dev/null
  chmod 600 "$m/etc/munge.key"
  if ! pid_alive "$(pid_of "$m/run/munged.pid" /usr/sbin/munged)"; then
    rm -f "$MSOCK" "$MSOCK.lock" "$m/run/munged.pid"
    munged --key-file="$m/etc/munge.key" --socket="$MSOCK" --pid-file="$m/run/munged.pid" \
           --seed-file="$m/lib/munged.seed" --log-file="$m/log/munged.log" \
           </dev/null >>"$m/log/munged.out" 2>&1   # forks into background
  fi
  local i
  for i in $(seq 1 50); do munge -S "$MSOCK" -n 2>/dev/null | unmunge -S "$MSOCK" >/dev/null 2>&1 && return 0; sleep 0.1; done
  log "munge does not work"; cat "$m/log/munged.log" >&2; return 1
}

port_taken() { command -v ss >/dev/null && [ -n "$(ss -Htan "( sport = :$1 )" 2>/dev/null)" ]; }

pick_ports() {  # the default pair 6817/6818, else the first free pair above it
  local p=6817
  if [ -z "$CTLD_PORT" ] && [ -z "$SLURMD_PORT" ]; then
    while port_taken $p || port_taken $((p + 1)); do p=$((p + 2)); [ $p -lt 6999 ] || break; done
    CTLD_PORT=$p; SLURMD_PORT=$((p + 1))
  fi
  CTLD_PORT=${CTLD_PORT:-6817}; SLURMD_PORT=${SLURMD_PORT:-$((CTLD_PORT + 1))}
}

write_conf() {
  # real topology from "slurmd -C", e.g. "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105"
  local hw f extra="" nodeline
  hw=$(slurmd -C | head -1)
  f() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$hw"; }
  local cpus boards sockets cores threads mem
  cpus=$(f CPUs); boards=$(f Boards); sockets=$(f SocketsPerBoard); cores=$(f CoresPerSocket)
  threads=$(f ThreadsPerCore); mem=$(f RealMemory)
  if [ -n "${SLURM_LOCAL_CPUS:-}" ] && [ "$SLURM_LOCAL_CPUS" != "$cpus" ]; then
    # advertise more CPUs than the box has; slurmd accepts it only with config_overrides
    nodeline="NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$SLURM_LOCAL_CPUS Boards=1 SocketsPerBoard=1 CoresPerSocket=$SLURM_LOCAL_CPUS ThreadsPerCore=1 RealMemory=$mem State=UNKNOWN"
    extra="SlurmdParameters=config_overrides"
  else
    nodeline="NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus Boards=$boards SocketsPerBoard=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$mem State=UNKNOWN"
  fi
  cat >"$CONF" <<EOF
# generated by slurm-local.sh
ClusterName=local
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
# cred_expire also sets how long a requeued job waits before it may start again (default 120 s)
AuthInfo=socket=$MSOCK,cred_expire=10
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# schedule new batch jobs at once (default waits up to 3 s) and run backfill every 2 s (default 30 s)
SchedulerParameters=batch_sched_delay=0,bf_interval=2
MpiDefault=none
JobRequeue=1
# reject jobs that can never run here (e.g. --ntasks > CPUs) at submit time instead of leaving them pending forever
EnforcePartLimits=ALL
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
InactiveLimit=0
KillWait=5
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=30
$extra
$nodeline
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
}

# pids of slurmstepd processes that belong to THIS cluster: they hold a file under $BASE open
# (slurmd.log, cwd) or listen on a socket in $BASE/spool. Precise, never by name alone.
stepd_pids() {
  local d exe stepd
  stepd=$(readlink -f /usr/sbin/slurmstepd 2>/dev/null || echo /usr/sbin/slurmstepd)   # Debian: slurmstepd-wlm
  for d in /proc/[0-9]*; do
    exe=$(readlink "$d/exe" 2>/dev/null) || continue
    [ "$exe" = "$stepd" ] || continue
    if readlink "$d/cwd" "$d"/fd/* 2>/dev/null | grep -qF "$BASE/"; then echo "${d#/proc/}"; fi
  done
  if command -v ss >/dev/null; then
    ss -xlpn 2>/dev/null | grep -F "$BASE/spool/" | grep -o 'pid=[0-9]*' | cut -d= -f2 || true
  fi
}

kill_wait() {  # kill_wait PID...  TERM, wait up to 10 s, then KILL
  local p i alive
  for p in "$@"; do pid_alive "$p" && kill -TERM "$p" 2>/dev/null || true; done
  for i in $(seq 1 100); do
    alive=0; for p in "$@"; do pid_alive "$p" && alive=1; done
    [ $alive = 0 ] && return 0; sleep 0.1
  done
  for p in "$@"; do pid_alive "$p" && { log "SIGKILL $p"; kill -KILL "$p" 2>/dev/null || true; }; done
  return 0
}

do_stop() {
  local ctld slurmd munged i
  ctld=$(pid_of "$BASE/run/slurmctld.pid" /usr/sbin/slurmctld); slurmd=$(pid_of "$BASE/run/slurmd.pid" /usr/sbin/slurmd)
  munged=$(pid_of "$BASE/munge/run/munged.pid" /usr/sbin/munged)
  if pid_alive "$ctld" && [ -f "$CONF" ]; then
    # cancel every job of this private cluster so slurmstepd/job processes exit normally
    local jobs; jobs=$(squeue -h -o %i 2>/dev/null || true)
    if [ -n "$jobs" ]; then
      scancel $jobs 2>/dev/null || true
      for i in $(seq 1 50); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.2; done
    fi
  fi
  kill_wait $slurmd $ctld
  local stray; stray=$(stepd_pids | sort -u | tr "\n" " ")
  [ -n "${stray// /}" ] && { log "killing leftover slurmstepd: $stray"; kill_wait $stray; }
  kill_wait $munged
  rm -f "$BASE/run/"*.pid "$BASE/munge/run/munged.pid"
}

is_up() {
  pid_alive "$(pid_of "$BASE/run/slurmctld.pid" /usr/sbin/slurmctld)" &&
    pid_alive "$(pid_of "$BASE/run/slurmd.pid" /usr/sbin/slurmd)" &&
    pid_alive "$(pid_of "$BASE/munge/run/munged.pid" /usr/sbin/munged)" && scontrol ping >/dev/null 2>&1
}

wait_idle() {
  local i s
  for i in $(seq 1 300); do
    s=$(sinfo -h -n "$NODE" -o %t 2>/dev/null || true)
    case "$s" in idle|mix|alloc) return 0;; esac
    sleep 0.2
  done
  log "node not ready (state='$s')"; tail -n 30 "$BASE/log/slurmctld.log" "$BASE/log/slurmd.log" >&2 || true
  return 1
}

do_start() {
  mkdir -p "$BASE/log"
  chmod go+x "$BASE"   # munged refuses a socket below a folder others cannot traverse (mktemp -d makes 0700)
  ensure_installed
  if is_up; then log "already running"; wait_idle; return 0; fi
  do_stop                                   # clean up half-started leftovers of an earlier run
  rm -rf "$BASE/state" "$BASE/spool" "$BASE/run"
  local f; for f in "$BASE"/log/slurm*.log; do [ -f "$f" ] && mv -f "$f" "$f.prev"; done
  mkdir -p "$BASE/etc" "$BASE/state" "$BASE/spool" "$BASE/run" "$BASE/log"
  start_munge
  pick_ports
  write_conf
  slurmctld </dev/null >>"$BASE/log/slurmctld.out" 2>&1   # daemonizes, writes its pid file
  slurmd    </dev/null >>"$BASE/log/slurmd.out" 2>&1
  wait_idle
  log "ready: node $NODE $(sinfo -h -n "$NODE" -o '%t cpus=%c mem=%m'); SLURM_CONF=$CONF"
}

case "${1:-}" in
  start)  do_start ;;
  stop)   do_stop; log "stopped" ;;
  status) is_up && sinfo && squeue ;;
  env)    echo "export SLURM_CONF=$CONF" ;;
  conf)   echo "$CONF" ;;
  *) echo "usage: $0 start|stop|status|env|conf" >&2; exit 2 ;;
esac
