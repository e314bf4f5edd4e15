#!/usr/bin/env bash
# A real single-node Slurm cluster on localhost for tests: munged, slurmctld and slurmd from Debian's
# slurm-wlm and munge packages (scripts/setup.sh installs them), with everything they write kept in
# STATE_DIR: slurm.conf, its own munge key and socket, state save and spool folders, pid files and
# logs. Nothing global is read or written (/etc/slurm, /etc/munge, /run/munge stay untouched), so
# several clusters can run at once, each on its own pair of free TCP ports.
#
#   local_slurm.sh start STATE_DIR   create STATE_DIR, start the daemons, wait until node localhost
#                                    (all CPUs, ~90% of the memory) is idle in partition debug; prints
#                                    the export line below on stdout, progress on stderr. Idempotent:
#                                    a running cluster is left as it is, a half-started one restarted.
#   local_slurm.sh stop STATE_DIR    stop slurmctld, slurmd and munged of STATE_DIR (by their pid
#                                    files), kill what is left of its jobs, wait for all of it to be
#                                    gone. Safe to call twice, after a failed start, or on no folder.
#   local_slurm.sh env STATE_DIR     print `export SLURM_CONF=STATE_DIR/slurm.conf`
#   local_slurm.sh status STATE_DIR  print which daemons run and sinfo; exit 1 if the cluster is down
#
# A test fixture runs `start` on a fresh folder (mktemp -d), sets SLURM_CONF as printed (eval "$(...)")
# for sbatch/squeue/scontrol/scancel/sacct -c, and runs `stop` on teardown; see selftest.sh beside
# this script. Runs as root (SlurmUser=root). Jobs run as root on this machine, without cgroups.
# Timing worth knowing: a requeued job starts again ~6 s later (AuthInfo cred_expire=5), and slurmctld
# checks time limits and --signal warnings every 30 s, so `--time=1 --signal=B:USR1@50` delivers
# USR1 10-40 s after the job starts. sacct works only as `sacct -c` (no slurmdbd: jobcomp/filetxt).
set -euo pipefail

PROG=local_slurm.sh
USAGE="usage: $PROG {start|stop|env|status} STATE_DIR"
NODE=localhost          # NodeName; slurmd is started with -N localhost, so `hostname` does not matter
PARTITION=debug
START_TIMEOUT=60        # seconds for the node to come up idle
CRED_EXPIRE=5           # AuthInfo cred_expire (Slurm's minimum); a requeued job waits this + 1 s

info() { echo "$PROG: $*" >&2; }
die() { echo "$PROG: error: $*" >&2; exit 1; }

(($# == 2)) || { echo "$USAGE" >&2; exit 2; }
cmd=$1
[[ -n "$2" ]] || die "STATE_DIR is empty"
STATE=$(realpath -m -- "$2")   # absolute, so slurm.conf and the pid checks do not depend on the cwd

CONF=$STATE/slurm.conf
MUNGE_DIR=$STATE/munge
MUNGE_SOCKET=$MUNGE_DIR/munge.socket
MUNGE_PID=$MUNGE_DIR/munged.pid
CTLD_PID=$STATE/run/slurmctld.pid
SLURMD_PID=$STATE/run/slurmd.pid
LOG=$STATE/log
PORTS=$STATE/ports

# --- processes -------------------------------------------------------------------------------------

# True if pid is a live (not zombie) process.
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*") "}
  [[ ${stat%% *} != Z ]]
}

# Prints the pid in pidfile if that process is alive and was started for this STATE_DIR (its command
# line names a path in it), so a stale pid file never makes us signal an unrelated process.
our_pid() {
  local pid cmdline
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
  cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  [[ $cmdline == *"$STATE/"* ]] || return 1
  echo "$pid"
}

# Waits up to $1 seconds for all the given pids to be gone; true if they are.
wait_gone() {
  local secs=$1 pid left i; shift
  for ((i = 0; i < secs * 10; i++)); do
    left=0
    for pid in "$@"; do alive "$pid" && left=1; done
    ((left)) || return 0
    sleep 0.1
  done
  return 1
}

# TERM the given pids, KILL whatever is left after $1 seconds, wait for them to be gone.
terminate() {
  local grace=$1 pid; shift
  (($#)) || return 0
  kill -TERM "$@" 2>/dev/null || true
  wait_gone "$grace" "$@" && return 0
  if ((grace > 0)); then
    for pid in "$@"; do alive "$pid" && info "pid $pid ignored SIGTERM for ${grace}s; sending SIGKILL"; done
  fi
  kill -KILL "$@" 2>/dev/null || true
  wait_gone 5 "$@" || info "warning: pids still alive after SIGKILL: $*"
}

# Processes of this cluster's jobs, which have no pid file: each slurmstepd of ours (it outlives
# slurmd, runs in $LOG with slurmd.log open) with every process in its session (the job scripts and
# what they started), plus any process whose environment has both SLURM_CONF=<our slurm.conf> and a
# SLURM_JOB_ID (slurmd sets them for every job), which also finds what a job left running after its
# batch shell exited: proctrack/linuxproc loses track of such orphans. Never this script or its
# callers.
job_pids() {
  local p comm sid stat sids=() envs=() mine=() pid=$$
  while [[ $pid =~ ^[0-9]+$ ]] && ((pid > 1)); do   # this process and its ancestors
    mine+=("$pid")
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || break
    stat=${stat##*") "}   # after "pid (comm) ": state ppid ...
    read -r _ pid _ <<<"$stat"
  done
  for p in /proc/[0-9]*; do
    read -r comm 2>/dev/null <"$p/comm" || continue
    [[ $comm == slurmstepd ]] || continue
    [[ $(readlink "$p/fd/3" 2>/dev/null) == "$LOG/slurmd.log" || $(readlink "$p/cwd" 2>/dev/null) == "$LOG" ]] \
      || continue
    sid=$(ps -o sid= -p "${p#/proc/}" 2>/dev/null) || continue
    sids+=("${sid// /}")
  done
  mapfile -t envs < <(grep -lzxF -- "SLURM_CONF=$CONF" /proc/[0-9]*/environ 2>/dev/null || true)
  if ((${#envs[@]})); then
    mapfile -t envs < <(grep -lz '^SLURM_JOB_ID=' "${envs[@]}" 2>/dev/null || true)
  fi
  {
    for p in "${envs[@]}"; do p=${p#/proc/}; echo "${p%/environ}"; done
    ((${#sids[@]} == 0)) || ps -e -o pid=,sid= | awk -v s=" ${sids[*]} " 'index(s, " " $2 " ") && $2 > 1 {print $1}'
  } | sort -un | grep -vxF -f <(printf '%s\n' "${mine[@]}") || true
}

# Runs a daemon that forks into the background: stdin from /dev/null, stdout/stderr appended to a
# file, and no other inherited descriptor (a caller's pipe held open by a daemon would hang it).
launch() {
  local out=$1 fd; shift
  (
    for fd in /proc/self/fd/*; do
      fd=${fd##*/}
      if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    exec "$@" </dev/null >>"$out" 2>&1
  )
}

# --- configuration ---------------------------------------------------------------------------------

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Two free ports below the kernel's ephemeral range, kept in STATE_DIR/ports for restarts.
choose_ports() {
  local a b
  if [[ -f $PORTS ]]; then
    # shellcheck disable=SC1090
    source "$PORTS"
    if [[ ${SLURMCTLD_PORT:-} && ${SLURMD_PORT:-} ]] && port_free "$SLURMCTLD_PORT" && port_free "$SLURMD_PORT"; then
      return 0
    fi
  fi
  for _ in $(seq 100); do
    a=$((10000 + (RANDOM * 32768 + RANDOM) % 22000))
    b=$((a + 1))
    if port_free "$a" && port_free "$b"; then
      printf 'SLURMCTLD_PORT=%s\nSLURMD_PORT=%s\n' "$a" "$b" >"$PORTS"
      SLURMCTLD_PORT=$a SLURMD_PORT=$b
      return 0
    fi
  done
  die "no free pair of TCP ports found in 10000-32000"
}

# Sets NODE_LINE to the node's hardware as slurmd itself sees it (slurmd -C), so the node is not
# drained for a mismatch, with RealMemory 90% of the machine's, and DEF_MEM_PER_CPU to its per-CPU
# share (a scheduling quantity only: nothing enforces memory limits here).
node_line() {
  local hw cpus boards sockets cores threads mem
  hw=$(slurmd -C 2>/dev/null | head -n1) || true
  field() { sed -n "s/.*[[:space:]]$1=\([0-9]*\).*/\1/p" <<<"$hw"; }
  cpus=$(field CPUs) boards=$(field Boards) sockets=$(field SocketsPerBoard)
  cores=$(field CoresPerSocket) threads=$(field ThreadsPerCore) mem=$(field RealMemory)
  [[ $cpus ]] || cpus=$(nproc)
  [[ $mem ]] || mem=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
  mem=$((mem * 9 / 10))
  DEF_MEM_PER_CPU=$((mem / cpus))
  if [[ $boards && $sockets && $cores && $threads ]]; then
    NODE_LINE="NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE CPUs=$cpus Boards=$boards SocketsPerBoard=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$mem State=UNKNOWN"
  else
    NODE_LINE="NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE CPUs=$cpus RealMemory=$mem State=UNKNOWN"
  fi
}

write_conf() {
  node_line
  : >"$STATE/plugstack.conf"   # empty: keeps /etc/slurm/plugstack.conf(.d) out
  cat >"$CONF.tmp" <<EOF
# Written by scripts/slurm/local_slurm.sh; rewritten on every start.
ClusterName=local
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$SLURMCTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# Our own munged; cred_expire is also how long a requeued job waits before it may start again.
AuthInfo=socket=$MUNGE_SOCKET,cred_expire=$CRED_EXPIRE
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$STATE/plugstack.conf
TmpFS=$STATE/tmp
MailProg=/bin/true
# No cgroups, no systemd.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SwitchType=switch/none
# No slurmdbd: plain sacct says accounting is disabled, sacct -c reads the job completion file.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$DEF_MEM_PER_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1
ReturnToService=2
# Finished jobs stay visible to scontrol/squeue for 60 s. A dependency on a purged job counts as met.
MinJobAge=60
KillWait=2
JobRequeue=1
$NODE_LINE
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
  mv "$CONF.tmp" "$CONF"
}

# --- commands --------------------------------------------------------------------------------------

# Node state as sinfo reports it ("idle", "down*", ...), empty if slurmctld does not answer (sinfo
# would retry for 9 s on a port nobody listens on yet, hence the port check first).
node_state() {
  if [[ -f $PORTS ]]; then
    # shellcheck disable=SC1090
    source "$PORTS"
    port_free "$SLURMCTLD_PORT" && return 0
  fi
  SLURM_CONF=$CONF timeout 5 sinfo -h -n "$NODE" -o %T 2>/dev/null | head -n1 || true
}

node_up() {
  case $(node_state) in
    idle | mixed | allocated | completing) return 0 ;;
    *) return 1 ;;
  esac
}

log_tails() {
  local f
  for f in "$LOG/munged.out" "$MUNGE_DIR/munged.log" "$LOG/slurmctld.out" "$LOG/slurmctld.log" \
           "$LOG/slurmd.out" "$LOG/slurmd.log"; do
    [[ $(grep -cv "^==== $PROG start" "$f" 2>/dev/null) -gt 0 ]] || continue
    echo "---- tail $f" >&2
    tail -n 20 "$f" >&2
  done
}

daemons_up() {
  our_pid "$MUNGE_PID" >/dev/null && our_pid "$CTLD_PID" >/dev/null && our_pid "$SLURMD_PID" >/dev/null
}

do_stop() {
  local pid stray stepds=() jobs=()
  [[ -d $STATE ]] || return 0
  # slurmctld first (it saves its state and stops scheduling), then slurmd, then the jobs' processes
  # slurmd leaves behind, then munged, which the others use until they exit.
  if pid=$(our_pid "$CTLD_PID"); then terminate 15 "$pid"; fi
  if pid=$(our_pid "$SLURMD_PID"); then terminate 5 "$pid"; fi   # 10 s in a registration RPC to a dead slurmctld
  # Job processes get SIGTERM and 3 s; slurmstepd ignores SIGTERM, so it gets SIGKILL after them.
  mapfile -t stray < <(job_pids)
  for pid in "${stray[@]}"; do
    if [[ $(cat "/proc/$pid/comm" 2>/dev/null) == slurmstepd ]]; then stepds+=("$pid"); else jobs+=("$pid"); fi
  done
  ((${#jobs[@]} == 0)) || terminate 3 "${jobs[@]}"
  ((${#stepds[@]} == 0)) || terminate 0 "${stepds[@]}"
  if pid=$(our_pid "$MUNGE_PID"); then terminate 10 "$pid"; fi
  rm -f "$CTLD_PID" "$SLURMD_PID" "$MUNGE_PID"
}

# Waits up to 10 s for a daemon that just forked to write its pid file; fails at once if it has
# written it and died.
wait_pidfile() {
  local i
  for ((i = 0; i < 100; i++)); do
    our_pid "$1" >/dev/null && return 0
    [[ -s $1 ]] && ! our_pid "$1" >/dev/null && return 1
    sleep 0.1
  done
  return 1
}

start_once() {
  local t0=$SECONDS i
  choose_ports
  write_conf
  [[ -s $MUNGE_DIR/munge.key ]] || mungekey --create --keyfile="$MUNGE_DIR/munge.key" >/dev/null 2>&1 \
    || die "mungekey could not create $MUNGE_DIR/munge.key"
  chmod 600 "$MUNGE_DIR/munge.key"

  # --force: munged wants every folder above its socket world-executable; STATE_DIR may be 0700
  # (mktemp -d), which is fine here since only root talks to it.
  launch "$LOG/munged.out" munged --force --socket="$MUNGE_SOCKET" --key-file="$MUNGE_DIR/munge.key" \
    --pid-file="$MUNGE_PID" --log-file="$MUNGE_DIR/munged.log" --seed-file="$MUNGE_DIR/munged.seed" \
    || { log_tails; return 1; }
  for ((i = 0; ; i++)); do
    munge -n -S "$MUNGE_SOCKET" 2>/dev/null | unmunge -S "$MUNGE_SOCKET" >/dev/null 2>&1 && break
    ((i < 50)) || { info "munged does not answer on $MUNGE_SOCKET"; log_tails; return 1; }
    sleep 0.1
  done

  if ! { launch "$LOG/slurmctld.out" slurmctld -f "$CONF" && wait_pidfile "$CTLD_PID"; }; then
    info "slurmctld did not start"; log_tails; return 1
  fi
  if ! { launch "$LOG/slurmd.out" slurmd -f "$CONF" -N "$NODE" && wait_pidfile "$SLURMD_PID"; }; then
    info "slurmd did not start"; log_tails; return 1
  fi

  until node_up; do
    if ((SECONDS - t0 > START_TIMEOUT)); then
      info "node $NODE not up after ${START_TIMEOUT}s (sinfo says '$(node_state)')"; log_tails; return 1
    fi
    our_pid "$CTLD_PID" >/dev/null || { info "slurmctld exited"; log_tails; return 1; }
    our_pid "$SLURMD_PID" >/dev/null || { info "slurmd exited"; log_tails; return 1; }
    sleep 0.2
  done
}

do_start() {
  local attempt c f recent
  [[ $(id -u) -eq 0 ]] || die "must run as root (the cluster runs SlurmUser=root, jobs as root)"
  for c in munged mungekey munge unmunge slurmctld slurmd sinfo; do
    command -v "$c" >/dev/null || die "$c not found: install the Debian packages slurm-wlm and munge (scripts/setup.sh)"
  done
  # Unix socket paths (munge's, slurmd's spool/localhost_JOB.STEP) must stay under 108 bytes.
  ((${#STATE} <= 70)) || die "STATE_DIR path is ${#STATE} characters, at most 70 fit Unix socket paths: $STATE"

  if daemons_up && node_up; then
    info "already running in $STATE"
    echo "export SLURM_CONF=$CONF"
    return 0
  fi
  do_stop   # whatever a failed or half-finished start left behind
  mkdir -p "$STATE" "$MUNGE_DIR" "$STATE/ctld" "$STATE/spool" "$STATE/run" "$STATE/tmp" "$LOG"
  chmod 700 "$MUNGE_DIR"

  for attempt in 1 2 3; do
    for f in munged.out slurmctld.out slurmctld.log slurmd.out slurmd.log; do
      echo "==== $PROG start, attempt $attempt, $(date '+%F %T')" >>"$LOG/$f"
    done
    if start_once; then
      # shellcheck disable=SC1090
      source "$PORTS"
      info "up in $STATE: node $NODE idle in partition $PARTITION (slurmctld port $SLURMCTLD_PORT, slurmd port $SLURMD_PORT)"
      echo "export SLURM_CONF=$CONF"
      return 0
    fi
    do_stop
    # Another process may have taken a port between our check and the bind: new ports, try again.
    recent=$(for f in slurmctld.out slurmctld.log slurmd.out slurmd.log; do
               tac "$LOG/$f" 2>/dev/null | sed "/^==== $PROG start/q" || true
             done)
    if ((attempt < 3)) && grep -q "Address already in use" <<<"$recent"; then
      info "port clash, retrying with other ports"
      rm -f "$PORTS"
      continue
    fi
    break
  done
  die "could not start the cluster in $STATE (logs in $LOG and $MUNGE_DIR)"
}

do_status() {
  local rc=0 name pidfile pid
  for name in munged:$MUNGE_PID slurmctld:$CTLD_PID slurmd:$SLURMD_PID; do
    pidfile=${name#*:} name=${name%%:*}
    if pid=$(our_pid "$pidfile"); then echo "$name: running (pid $pid)"; else echo "$name: not running"; rc=1; fi
  done
  if ((rc == 0)); then SLURM_CONF=$CONF timeout 5 sinfo || rc=1; fi
  return $rc
}

case $cmd in
  start) do_start ;;
  stop) do_stop; info "stopped $STATE" ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  status) do_status ;;
  *) echo "$USAGE" >&2; exit 2 ;;
esac
