#pragma once
/// Child processes for the scenario runner and the crash test: the sagaflow
/// services run as real processes so that they can be killed with SIGKILL,
/// paused with SIGSTOP, and the broker script is run to completion. Everything here is POSIX (fork/exec, waitpid, kill).
///
/// Thread safety: Spawn, Run, TryReap and KillAndReap are meant to be called
/// from one thread (the test's main thread). A child spawned with
/// die_with_parent gets SIGKILL when the thread that forked it ends
/// (PR_SET_PDEATHSIG follows the forking thread), so fork from a thread that
/// lives as long as the children.

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace sagaflow::scenario {

struct SpawnSpec {
  /// argv[0] is the program path (no PATH lookup).
  std::vector<std::string> argv;
  /// Variables set (or overridden) on top of this process's environment.
  std::map<std::string, std::string> env;
  /// stdout and stderr are appended to this file; stdin is /dev/null.
  std::string log_path;
  /// SIGKILL the child when the forking thread dies (the test binary was killed).
  bool die_with_parent = true;
};

/// Forks and execs `spec`. Returns the child's pid, or -1 (errno set) if fork failed.
/// The child closes every inherited descriptor above 2 before exec.
pid_t Spawn(const SpawnSpec& spec);

/// Spawns `spec` and waits for it to exit: its exit code, 128 + signal if it
/// was killed, or -1 if it was still running after `timeout` (it is then killed).
int Run(const SpawnSpec& spec, std::chrono::milliseconds timeout);

/// Reaps `pid` if it has exited: returns a description of how ("exit 1",
/// "signal 6"), or nothing while it runs.
std::optional<std::string> TryReap(pid_t pid);

/// SIGKILLs a child and reaps it.
void KillAndReap(pid_t pid);

/// Whether any process (not necessarily a child) with this pid is alive and not a zombie.
bool ProcessAlive(pid_t pid);

/// A TCP port on 127.0.0.1 nothing listens on right now.
int FreePort();

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
bool PortOpen(int port);

/// The last `lines` lines of a text file ("" if it cannot be read).
std::string Tail(const std::string& path, size_t lines);

}  // namespace sagaflow::scenario
