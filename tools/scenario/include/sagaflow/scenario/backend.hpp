#pragma once
/// Where a scenario's system runs, and the faults it can suffer there.
///
///  - LocalBackend: the broker (deployment/kafka/broker) and the five services
///    (this sagaflow binary) as processes it starts itself, under its own var
///    directory and ports. Faults are signals: SIGKILL, SIGSTOP/SIGCONT.
///    Everything it started is stopped by Shutdown (and by its destructor);
///    services also get SIGKILL if the runner dies (PR_SET_PDEATHSIG).
///  - ComposeBackend: the Docker Compose stack, driven through
///    deployment/docker/compose (up, down, kill, pause, unpause, restart, wipe,
///    status), with host networking: the broker on 127.0.0.1:9092 and the
///    services on 8281..8285.
///  - AttachedBackend: a system that already runs (deployment/up, make up):
///    nothing is started or stopped; a scenario with a step that needs process
///    control (kill, pause, resume, restart, wipe) is refused.
///
/// Lifecycle: Prepare once per run, then per scenario StartSystem, faults,
/// StopSystem; Shutdown at the end. Thread safety: one thread (the runner's
/// main thread, which must outlive the processes it spawns).

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "sagaflow/core/result.hpp"
#include "sagaflow/scenario/scenario_file.hpp"

namespace sagaflow::scenario {

/// Settings of a participant right now (what POST /set was last given).
struct ParticipantSettings {
  int mistakes = 0;
  DelayMs delay;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string Name() const = 0;

  /// Once per run: the broker (local) or nothing (compose brings its own).
  virtual core::Status Prepare() = 0;
  /// Starts the scenario's services (topics prefixed with `prefix` where the
  /// backend can choose it) and returns once each answers GET / with 200.
  virtual core::Status StartSystem(const Scenario& scenario, const std::string& prefix) = 0;
  /// The topic prefix the services really use.
  virtual std::string TopicPrefix() const = 0;
  virtual std::string Brokers() const = 0;
  /// Extra librdkafka properties the runner's own clients need (credentials).
  virtual std::map<std::string, std::string> KafkaProperties() const { return {}; }
  /// How many instances of `service` run, given the scenario's `declared`
  /// count (an attached system has what it was started with).
  virtual int Instances(const std::string& /*service*/, int declared) const { return declared; }
  /// The HTTP port of an instance (1..N) of a service.
  virtual int Port(const std::string& service, int instance = 1) const = 0;
  /// The admin token for POST /set ("" if unknown).
  virtual std::string AdminToken() const = 0;

  /// `target` is a service or "broker"; `instance` one instance of a service
  /// (1..N) or one node of the broker (1..3; 0: the whole broker, every node).
  /// Kill leaves it down; Restart starts it (stopping it first if it runs)
  /// and waits until it is healthy; Wipe kills a service instance, deletes
  /// its data and starts it again.
  virtual core::Status Kill(const std::string& target, int instance) = 0;
  virtual core::Status Pause(const std::string& target, int instance) = 0;
  virtual core::Status Resume(const std::string& target, int instance) = 0;
  virtual core::Status Restart(const std::string& target, int instance, std::chrono::milliseconds timeout) = 0;
  virtual core::Status Wipe(const std::string& target, int instance, std::chrono::milliseconds timeout) = 0;
  /// Whether it answers (GET / 200 for a service, a metadata request for the broker or node).
  virtual bool Healthy(const std::string& target, int instance) = 0;

  /// Notes processes that exited although no step stopped them; returns what
  /// it found so far (each is a failure of the scenario).
  virtual std::vector<std::string> UnexpectedExits() = 0;
  /// Stops the scenario's services. `keep_data`: leave the data and logs for inspection.
  virtual void StopSystem(bool keep_data) = 0;
  /// Stops everything the backend started. Safe to call twice.
  virtual void Shutdown() = 0;
  /// Where the logs of the last scenario are (for messages).
  virtual std::string LogHint() const = 0;

  /// The settings participants are given at start and keep over a restart.
  void SetParticipant(const std::string& service, const ParticipantSettings& s) { participants_[service] = s; }
  const ParticipantSettings& Participant(const std::string& service) { return participants_[service]; }

 protected:
  std::map<std::string, ParticipantSettings> participants_;
};

struct LocalOptions {
  /// The repository (for deployment/kafka/broker).
  std::string repo_root;
  /// The sagaflow binary the services run.
  std::string sagaflow_binary;
  /// Runtime directory: the broker's data and log, each scenario's service data and logs.
  std::string var_dir;
  /// Where the broker jars are ("" = the repository's var/kafka/libs).
  std::string kafka_libs;
  int kafka_port = 19492;
  int kafka_controller_port = 19493;
  /// The services listen on base+1 (order) .. base+5 (notification), as 8281..8285 do.
  int http_port_base = 18480;
};

struct ComposeOptions {
  /// deployment/docker/compose; unused when `attached`.
  std::string script;
  /// Attach to a running system instead: start, stop and faults are not ours.
  bool attached = false;
  /// Extra librdkafka properties (--kafka-config-file: the credentials of a
  /// system deployment/up started with SASL).
  std::map<std::string, std::string> kafka_properties;
  /// compose: the admin's credentials file the stack's `up` writes (the
  /// script's $SAGAFLOW_CREDENTIALS_DIR/admin.properties), read once the stack
  /// is up into kafka_properties. Empty: kafka_properties as given.
  std::string admin_credentials_file;
  std::string brokers = "127.0.0.1:9092";
  int http_port_base = 8280;
  std::string topic_prefix;
  std::string admin_token_file;
};

/// The options of job `job` (1..N) of a run with several scenarios at once:
/// job 1 has `base` unchanged; job J has the broker ports shifted by
/// 10 (J - 1) (a three-node cluster uses 6 ports), the HTTP base by
/// 200 (J - 1) (16 instances of 5 services fit in 160), and the var
/// directory <var_dir>/job-J.
LocalOptions LocalOptionsForJob(const LocalOptions& base, int job);

std::unique_ptr<Backend> MakeLocalBackend(const LocalOptions& options);
std::unique_ptr<Backend> MakeComposeBackend(const ComposeOptions& options);
/// The running system at `options` (brokers, http_port_base, topic_prefix,
/// admin_token_file, kafka_properties); `script` is not used.
std::unique_ptr<Backend> MakeAttachedBackend(ComposeOptions options);

/// Index of a service in kServices (order 1 .. notification 5), for ports.
int ServiceNumber(const std::string& service);

}  // namespace sagaflow::scenario
