// See interrupt.h.
#include "experiments/runner/interrupt.h"

#include <atomic>
#include <csignal>

namespace smyrf {
namespace {

std::atomic<int> g_signal{0};

extern "C" void on_interrupt_signal(int signal) { g_signal.store(signal); }

}  // namespace

void install_interrupt_handlers() {
  struct sigaction action {};
  action.sa_handler = on_interrupt_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

bool interrupt_requested() { return g_signal.load() != 0; }

int interrupt_signal() { return g_signal.load(); }

}  // namespace smyrf
