# slurm/lib.sh: the shared part of run.sbatch and sweep.sbatch. Sourced, never submitted.
#
# Sourcing it installs the signal traps at once (so a signal that arrives while the job is still
# setting up is remembered, not fatal) and defines:
#   byzmpi_setup           activate the venv, set the MPI environment (the job runs in the folder it was
#                          submitted from, or sbatch --chdir's; relative paths in configs start there)
#   byzmpi_launch ARGS...  start `byzmpi run ARGS...` on all tasks, forward stop signals, requeue on exit 75
#
# Signals, and what the batch shell does with them (bash runs a trap only between commands, so the
# launcher runs in the background and the shell sits in `wait`, which a trapped signal interrupts):
#   USR1  (#SBATCH --signal=B:USR1@300, or `scancel --signal=USR1 --batch JOB`): forwarded to the
#         launcher as USR1; mpiexec and srun pass it to every rank; byzmpi stops at the next round
#         boundary, writes its checkpoint and exits 75; the job then requeues itself
#         (`scontrol requeue $SLURM_JOB_ID`) and the next start resumes from the checkpoint.
#   TERM  (scancel, scontrol requeue, time limit, preemption): Slurm is ending this run itself and
#         signals every process of the job, then KILLs them KillWait seconds later. The shell also
#         forwards USR1 (a checkpoint may still make it in time), but never requeues: whatever
#         ended the job decides whether it comes back.
# Environment knobs (all optional):
#   BYZMPI_VENV            venv to activate (default: .venv in the submit folder, when it exists)
#   BYZMPI_LAUNCHER        mpiexec (default) | srun
#   BYZMPI_MPIEXEC_ARGS    extra mpiexec arguments (word-split)
#   BYZMPI_SRUN_MPI        srun's --mpi plugin (default pmix: Open MPI 5; pmi2 for MPICH)
#   BYZMPI_SRUN_ARGS       extra srun arguments (word-split)
#   BYZMPI_OMPI_DEFAULTS   1 (default): set the Open MPI wheel's settings below when unset; 0: set nothing
#   BYZMPI_MAX_REQUEUES    stop requeueing once SLURM_RESTART_COUNT reaches this (default 20)
#   BYZMPI_SIGNAL_GRACE    seconds after the launch before a stop request is passed on (default 5)
#   BYZMPI_PYTHON          the Python that runs byzmpi (default: python on PATH after activation)

BYZMPI_REQUEUE_EXIT=75

_byz_log() { echo "[byzmpi-slurm $(date +%H:%M:%S)] $*"; }

_byz_pid=""       # the launcher (mpiexec or srun), once started
_byz_t0=0         # $SECONDS at the launch
_byz_pending=""   # a signal not passed on yet (it came before the launch or within the grace after it)
_byz_term=0       # 1 once the batch shell got TERM: Slurm is ending this run, do not requeue
_byz_nsig=0       # signals handled so far (tells an interrupted `wait` from the launcher's own exit)

_byz_on_signal() {
  _byz_nsig=$((_byz_nsig + 1))
  [ "$1" = TERM ] && _byz_term=1
  if [ -n "$_byz_pid" ] && [ $((SECONDS - _byz_t0)) -ge "${BYZMPI_SIGNAL_GRACE:-5}" ]; then
    _byz_log "SIG$1: asking the run to checkpoint and stop (SIGUSR1 to launcher pid $_byz_pid)"
    kill -USR1 "$_byz_pid" 2>/dev/null || true
  else
    _byz_log "SIG$1 during start-up: passing it on ${BYZMPI_SIGNAL_GRACE:-5} s after the launch"
    _byz_pending=$1
  fi
}

# A launcher and its ranks install their USR1 handlers only some way into their start-up; before
# that, USR1's default action kills them (mpiexec died of a USR1 sent 0.3 s after its start). So a
# stop request is held back until BYZMPI_SIGNAL_GRACE seconds after the launch.
_byz_pass_pending() {
  while [ -n "$_byz_pending" ] && kill -0 "$_byz_pid" 2>/dev/null; do
    if [ $((SECONDS - _byz_t0)) -ge "${BYZMPI_SIGNAL_GRACE:-5}" ]; then
      _byz_log "SIG$_byz_pending: asking the run to checkpoint and stop (SIGUSR1 to launcher pid $_byz_pid)"
      kill -USR1 "$_byz_pid" 2>/dev/null || true
      _byz_pending=""
      return
    fi
    sleep 1 &
    wait $! 2>/dev/null   # a trapped signal interrupts this wait too
  done
}
trap '_byz_on_signal USR1' USR1
trap '_byz_on_signal TERM' TERM
for _byz_s in ${_byz_early:-}; do _byz_on_signal "$_byz_s"; done   # caught by the sbatch script's first lines
unset _byz_s _byz_early

byzmpi_setup() {
  if [ -n "${BYZMPI_VENV:-}" ]; then
    if [ ! -f "$BYZMPI_VENV/bin/activate" ]; then _byz_log "BYZMPI_VENV=$BYZMPI_VENV has no bin/activate"; return 2; fi
    # shellcheck disable=SC1091
    . "$BYZMPI_VENV/bin/activate"
  elif [ -f .venv/bin/activate ]; then
    # shellcheck disable=SC1091
    . .venv/bin/activate
  else
    _byz_log "no .venv here and BYZMPI_VENV unset: using $(command -v python || echo 'no python!') from PATH"
  fi
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}
  if [ "${BYZMPI_OMPI_DEFAULTS:-1}" = 1 ]; then
    # The PyPI Open MPI wheel's settings, from byzmpi's one launch helper (byzmpi/launch.py); MPICH
    # ignores them; values already set win (an empty OMPI_MCA_btl= unsets it: for a network that needs OFI).
    eval "$(python -m byzmpi.launch --env)" || _byz_log "python -m byzmpi.launch --env failed: MPI defaults not set"
    # Slurm grants N slots but hwloc may see fewer cores: mpiexec's default bind-to-core then refuses to
    # start ("binding more cpus than are available"). No binding: the kernel places the ranks.
    export PRTE_MCA_hwloc_default_binding_policy=${PRTE_MCA_hwloc_default_binding_policy:-none}
  fi
  # More ranks on this node than CPUs we may run on (a node that advertises more CPUs than it has, as
  # the local test cluster does): Open MPI, which thinks each rank has its own core, busy-polls and
  # rounds get ~5x slower; yielding when idle is what mpiexec does by itself when it sees oversubscription.
  local here=${SLURM_TASKS_PER_NODE:-${SLURM_NTASKS:-1}}
  here=${here%%[(,]*}
  if [ "${here:-1}" -gt "$(nproc)" ] 2>/dev/null; then
    export OMPI_MCA_mpi_yield_when_idle=${OMPI_MCA_mpi_yield_when_idle:-1}
  fi
  return 0
}

# byzmpi_launch ARGS...: run `python -m mpi4py -m byzmpi run ARGS...` on $SLURM_NTASKS ranks and
# return (as the job's exit status) 0 when it finished, or its non-zero status; on 75 after USR1
# the job is requeued first.
byzmpi_launch() {
  local py=${BYZMPI_PYTHON:-python} cmd rc before
  local restarts=${SLURM_RESTART_COUNT:-0} ntasks=${SLURM_NTASKS:-1}
  case "${BYZMPI_LAUNCHER:-mpiexec}" in
    # shellcheck disable=SC2206
    mpiexec) cmd=(mpiexec -n "$ntasks" ${BYZMPI_MPIEXEC_ARGS:-} "$py" -m mpi4py -m byzmpi run "$@") ;;
    # shellcheck disable=SC2206
    srun) cmd=(srun --mpi="${BYZMPI_SRUN_MPI:-pmix}" -n "$ntasks" ${BYZMPI_SRUN_ARGS:-} "$py" -m mpi4py -m byzmpi run "$@") ;;
    *) _byz_log "BYZMPI_LAUNCHER=$BYZMPI_LAUNCHER: use mpiexec or srun"; return 2 ;;
  esac
  _byz_log "job ${SLURM_JOB_ID:-?}${SLURM_ARRAY_TASK_ID:+ (array ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID})} on ${SLURM_JOB_NODELIST:-$(hostname -s)}, restart $restarts, $ntasks tasks: ${cmd[*]}"
  "${cmd[@]}" &
  _byz_pid=$!
  _byz_t0=$SECONDS
  local prev=""
  while :; do
    _byz_pass_pending
    before=$_byz_nsig
    wait "$_byz_pid"; rc=$?
    # `wait` returns >128 at once when a trapped signal arrives, the launcher still running: wait again.
    # (127 then means the launcher had ended at that very moment with the status already taken.)
    if [ "$rc" = 127 ] && [ -n "$prev" ]; then rc=$prev; break; fi
    if [ "$rc" -gt 128 ] && [ "$_byz_nsig" != "$before" ]; then prev=$rc; continue; fi
    break
  done
  _byz_pid=""
  if [ "$rc" = 0 ]; then _byz_log "finished"; return 0; fi
  if [ "$rc" != "$BYZMPI_REQUEUE_EXIT" ]; then _byz_log "launcher exited with status $rc"; return "$rc"; fi
  if [ "$_byz_term" = 1 ]; then
    _byz_log "checkpointed after SIGTERM: not requeueing (Slurm is ending or requeueing this run itself)"
    return "$rc"
  fi
  if [ "$restarts" -ge "${BYZMPI_MAX_REQUEUES:-20}" ]; then
    _byz_log "checkpointed, but restart $restarts reached BYZMPI_MAX_REQUEUES=${BYZMPI_MAX_REQUEUES:-20}: not requeueing; resubmit to resume"
    return "$rc"
  fi
  if [ -z "${SLURM_JOB_ID:-}" ]; then _byz_log "checkpointed (status $rc); not in a Slurm job: rerun to resume"; return "$rc"; fi
  _byz_log "checkpointed (status $rc): scontrol requeue $SLURM_JOB_ID (the next run resumes from the checkpoint)"
  trap '' TERM USR1   # Slurm TERMs this shell as part of the requeue
  if scontrol requeue "$SLURM_JOB_ID"; then return 0; fi
  _byz_log "scontrol requeue failed (submitted with --no-requeue?): resubmit to resume"
  return "$rc"
}
