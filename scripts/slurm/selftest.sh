#!/usr/bin/env bash
# Starts a throwaway cluster with local_slurm.sh (in a mktemp -d folder, stopped on exit) and checks
# on it what tests of Slurm-driven code rely on:
#   1. a job array --array=0-3%2 runs its 4 tasks, never more than 2 at a time, and writes 4 outputs;
#   2. a job with --dependency=afterany:<array> stays pending until the whole array is done;
#   3. `scontrol requeue` of a running job runs it again, with SLURM_RESTART_COUNT=1;
#   4. --time=1 --signal=B:USR1@50 delivers SIGUSR1 to the batch shell before the time limit;
#   5. a batch script that requeues itself from its USR1 trap runs again;
#   6. sacct -c (job completion file, no slurmdbd) lists the jobs;
#   7. stop leaves no process of the cluster behind, and a second stop is harmless.
# Prints timings; exits non-zero on the first failed check (its folder is then kept for a look).
#   scripts/slurm/selftest.sh        (as root; about 40 s, most of it waiting for the 30 s time-limit tick)
# shellcheck disable=SC2016  # the $... in single quotes are for the jobs' shells
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
LOCAL_SLURM=$HERE/local_slurm.sh
T0=$(date +%s.%N)

WORK=$(mktemp -d)
STATE=$WORK/slurm
OUT=$WORK/out
mkdir -p "$OUT"
cd "$WORK"   # jobs start in the submit folder: this keeps every process of the test under $WORK
cleanup() {
  local rc=$?
  "$LOCAL_SLURM" stop "$STATE" 2>/dev/null || true
  if ((rc == 0)); then rm -rf "$WORK"; else echo "selftest: FAILED; files kept in $WORK" >&2; fi
}
trap cleanup EXIT

secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", b - a}'; }   # secs FROM TO
say() { printf 'selftest [%5ss] %s\n' "$(secs "$T0" "$(date +%s.%N)")" "$*"; }
fail() { echo "selftest: FAIL: $*" >&2; exit 1; }
now() { date +%s.%N; }

# wait_until TIMEOUT_S DESCRIPTION COMMAND...: polls COMMAND every 0.2 s.
wait_until() {
  local timeout=$1 what=$2 t_end; shift 2
  t_end=$(($(date +%s) + timeout))
  until "$@"; do
    (($(date +%s) < t_end)) || fail "timed out after ${timeout}s waiting for: $what"
    sleep 0.2
  done
}
# All states of a job (one line per array task), while slurmctld still has its record.
states() { squeue -h -t all -j "$1" -o %T 2>/dev/null; }
finished() {
  local s
  s=$(states "$1") && [[ -n $s ]] || return 1
  ! grep -qvE '^(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY)$' <<<"$s"
}
completed() {
  finished "$1" || return 1
  local s
  s=$(states "$1")
  ! grep -qv '^COMPLETED$' <<<"$s" || fail "job $1 did not complete: $(states "$1" | sort | uniq -c | xargs)"
}
has_line() { [[ -f $1 ]] && grep -q -- "$2" "$1"; }

t=$(now)
eval "$("$LOCAL_SLURM" start "$STATE")"
[[ ${SLURM_CONF:-} == "$STATE/slurm.conf" ]] || fail "start did not print the SLURM_CONF export line"
say "cluster up in $(secs "$t" "$(now)") s: $(sinfo -h -o '%P %a %D %T %c CPUs %m MB' | xargs)"
"$LOCAL_SLURM" start "$STATE" >/dev/null 2>&1 || fail "a second start on a running cluster failed"

# --- 1 + 2: array with throttle, then a job depending on the whole array --------------------------
t=$(now)
array=$(sbatch --parsable --array=0-3%2 -o "$OUT/array_%A_%a.out" \
  --wrap 'echo "$SLURM_ARRAY_TASK_ID $(date +%s.%N) start"; sleep 2; echo "$SLURM_ARRAY_TASK_ID $(date +%s.%N) end"')
dep=$(sbatch --parsable --dependency="afterany:$array" -o "$OUT/dep.out" --wrap 'echo "dep $(date +%s.%N)"')
[[ $(squeue -h -j "$dep" -o '%T %r') == "PENDING Dependency" ]] \
  || fail "dependent job $dep is not pending on its dependency: $(squeue -h -j "$dep" -o '%T %r')"
wait_until 60 "array $array to finish" finished "$array"
completed "$array"
say "array $array (0-3%2, 2 s tasks) done in $(secs "$t" "$(now)") s"
mapfile -t outs < <(ls "$OUT"/array_"${array}"_*.out)
((${#outs[@]} == 4)) || fail "array wrote ${#outs[@]} outputs, not 4: ${outs[*]}"
for i in 0 1 2 3; do has_line "$OUT/array_${array}_$i.out" "^$i .* end$" || fail "array task $i output incomplete"; done
# Never more than 2 tasks at once: at each task's start, count the tasks running.
cat "$OUT"/array_"${array}"_*.out | awk '
  $3 == "start" {s[$1] = $2} $3 == "end" {e[$1] = $2}
  END {for (i in s) {n = 0; for (j in s) if (s[j] <= s[i] && e[j] > s[i]) n++; if (n > max) max = n}
       print max; if (max > 2) exit 1}' >"$OUT/max_concurrent" \
  || fail "throttle %2 not respected: $(cat "$OUT/max_concurrent") tasks ran at once"
wait_until 30 "dependent job $dep to finish" finished "$dep"
completed "$dep"
last_end=$(cat "$OUT"/array_"${array}"_*.out | awk '$3 == "end" && $2 > m {m = $2} END {print m}')
dep_start=$(awk '{print $2}' "$OUT/dep.out")
awk -v a="$dep_start" -v b="$last_end" 'BEGIN {exit !(a >= b)}' || fail "dependent job started before the array ended"
say "ok 1: 4 array outputs, at most $(cat "$OUT/max_concurrent") tasks at once"
say "ok 2: afterany job $dep started $(secs "$last_end" "$dep_start") s after the last array task ended"

# --- 3: scontrol requeue of a running job -----------------------------------------------------------
cat >"$OUT/requeue.sh" <<EOF
#!/bin/bash
echo "run restart=\${SLURM_RESTART_COUNT:-0} \$(date +%s.%N)" >>"$OUT/requeue.log"
[[ \${SLURM_RESTART_COUNT:-0} -ge 1 ]] && exit 0
sleep 300
EOF
job=$(sbatch --parsable --open-mode=append -o "$OUT/requeue.out" "$OUT/requeue.sh")
wait_until 30 "job $job to run" has_line "$OUT/requeue.log" "restart=0"
t=$(now)
scontrol requeue "$job"
wait_until 60 "requeued job $job to run again" has_line "$OUT/requeue.log" "restart=1"
t2=$(awk '/restart=1/ {print $3}' "$OUT/requeue.log")
wait_until 30 "requeued job $job to finish" finished "$job"
completed "$job"
[[ $(scontrol -o show job "$job" | grep -o 'Restarts=[0-9]*') == Restarts=1 ]] || fail "job $job: Restarts is not 1"
say "ok 3: requeued job $job ran again with SLURM_RESTART_COUNT=1, $(secs "$t" "$t2") s after scontrol requeue"

# --- 4 + 5: pre-timeout USR1 to the batch shell; a job requeueing itself from its USR1 trap --------
cat >"$OUT/signal.sh" <<EOF
#!/bin/bash
echo "start \$(date +%s.%N)" >"$OUT/signal.log"
trap 'echo "usr1 \$(date +%s.%N)" >>"$OUT/signal.log"; exit 0' USR1
sleep 300 &
wait
EOF
cat >"$OUT/selfrequeue.sh" <<EOF
#!/bin/bash
echo "run restart=\${SLURM_RESTART_COUNT:-0} \$(date +%s.%N)" >>"$OUT/selfrequeue.log"
if [[ \${SLURM_RESTART_COUNT:-0} -ge 1 ]]; then exit 0; fi
trap 'echo "usr1 \$(date +%s.%N)" >>"$OUT/selfrequeue.log"; scontrol requeue "\$SLURM_JOB_ID"; sleep 60' USR1
sleep 300 &
wait
EOF
sig=$(sbatch --parsable --time=1 --signal=B:USR1@50 -o "$OUT/signal.out" "$OUT/signal.sh")
self=$(sbatch --parsable --time=1 --signal=B:USR1@50 --open-mode=append -o "$OUT/selfrequeue.out" "$OUT/selfrequeue.sh")
wait_until 90 "USR1 in job $sig" has_line "$OUT/signal.log" "^usr1"
wait_until 30 "job $sig to finish" finished "$sig"
completed "$sig"
read -r t_start t_sig < <(awk '{print $2}' "$OUT/signal.log" | xargs)
say "ok 4: --time=1 --signal=B:USR1@50: USR1 reached the batch shell $(secs "$t_start" "$t_sig") s after it started (limit 60 s)"
wait_until 90 "job $self to run again after requeueing itself" has_line "$OUT/selfrequeue.log" "restart=1"
wait_until 30 "job $self to finish" finished "$self"
completed "$self"
read -r r0 u1 r1 < <(awk '{print $NF}' "$OUT/selfrequeue.log" | xargs)
say "ok 5: job $self got USR1 $(secs "$r0" "$u1") s after start, requeued itself, ran again $(secs "$u1" "$r1") s later"

# --- 6: sacct without slurmdbd ----------------------------------------------------------------------
sacct -c >"$OUT/sacct.txt" 2>&1 || true
grep -qE "^$dep +.* COMPLETED" "$OUT/sacct.txt" || fail "sacct -c does not list job $dep as COMPLETED: $(cat "$OUT/sacct.txt")"
say "ok 6: sacct -c lists the jobs ($(($(wc -l <"$OUT/sacct.txt") - 2)) records); plain sacct: $(sacct 2>&1 | head -n1)"

# --- 7: stop, twice, leaves nothing behind ---------------------------------------------------------
t=$(now)
"$LOCAL_SLURM" stop "$STATE" 2>/dev/null
"$LOCAL_SLURM" stop "$STATE" 2>/dev/null
# Every daemon names $STATE on its command line; slurmstepd runs in $STATE/log, jobs in $WORK.
left=$(for p in /proc/[0-9]*; do
         [[ $p == /proc/$$ || $p == /proc/$BASHPID ]] && continue
         [[ $({ tr '\0' ' ' <"$p/cmdline"; echo; readlink "$p/cwd"; } 2>/dev/null) == *"$WORK"* ]] \
           && echo "${p#/proc/}: $(tr '\0' ' ' 2>/dev/null <"$p/cmdline")"
       done || true)
[[ -z $left ]] || fail "processes left after stop: $left"
say "ok 7: stopped in $(secs "$t" "$(now)") s, no process left"
say "all checks passed"
