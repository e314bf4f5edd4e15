// Stopping early on request: Slurm signals a job before its time limit (SIGUSR1 with sbatch
// --signal=B:USR1@SECONDS, which the generated batch script forwards) and on requeue, cancel or
// preemption (SIGTERM). Both ask the process to stop soon, keeping what it has:
//   the worker: the training engine (experiments/engines/training_loop.h) writes a checkpoint after
//     the current step and throws Interrupted; the worker exits with kInterruptedExitCode;
//   the runner: forwards the signal to its workers, starts no more runs, records the stopped runs as
//     "interrupted" (redone, from their checkpoints, by the next `smyrf run`), and `smyrf run` exits
//     with kInterruptedExitCode so that a batch script knows to requeue itself.
// Pipelines without checkpoints simply run on until they end or Slurm kills them; their runs are
// redone. Tested by tests/test_scale_out.cpp (a signalled worker and runner) and the Slurm tests.
#pragma once

#include "core/util/check.h"

namespace smyrf {

inline constexpr int kInterruptedExitCode = 75;  // EX_TEMPFAIL: try again later

// SIGUSR1 and SIGTERM set the request flag (async-signal-safe) instead of ending the process.
void install_interrupt_handlers();
bool interrupt_requested();
int interrupt_signal();  // the signal that asked (0 when none)

// Thrown where a request is honoured (after a checkpoint); the worker turns it into its exit code.
class Interrupted : public Error {
 public:
  using Error::Error;
};

}  // namespace smyrf
