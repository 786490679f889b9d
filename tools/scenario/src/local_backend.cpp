// The local backend: the broker and the services as processes of this machine.

#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <thread>

#include "sagaflow/core/kafka/kafka_client.hpp"
#include "sagaflow/core/topics.hpp"
#include "sagaflow/runtime/http_client.hpp"
#include "sagaflow/scenario/backend.hpp"
#include "sagaflow/scenario/process.hpp"

namespace sagaflow::scenario {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

int ServiceNumber(const std::string& service) {
  for (size_t i = 0; i < kServices.size(); ++i) {
    if (kServices[i] == service) return static_cast<int>(i) + 1;
  }
  return 0;
}

namespace {

core::Error Fail(std::string message) { return core::Error{core::Errc::kUnavailable, std::move(message), false}; }

bool ServiceAnswers(int port) {
  runtime::HttpClient client("127.0.0.1", port);
  auto res = client.Get("/", 2s);
  return res.ok() && res->status == 200;
}

class LocalBackend final : public Backend {
 public:
  explicit LocalBackend(LocalOptions o) : o_(std::move(o)) { var_ = fs::absolute(o_.var_dir); }
  ~LocalBackend() override { Shutdown(); }

  std::string Name() const override { return "local"; }

  core::Status Prepare() override {
    std::error_code ec;
    fs::create_directories(var_, ec);
    if (ec) return Fail("cannot create " + var_.string() + ": " + ec.message());
    // A broker (or cluster node) of ours left by a run that was killed before its cleanup.
    for (int node = 0; node <= kMaxNodes; ++node) {
      if (const pid_t left = BrokerPid(node); left > 0 && ProcessAlive(left) && IsBroker(left)) {
        std::cerr << "scenario: stopping the broker (pid " << left << ") left by an earlier run in " << var_.string()
                  << "\n";
        kill(left, SIGCONT);
        kill(left, SIGKILL);
        for (int i = 0; i < 300 && ProcessAlive(left); ++i) std::this_thread::sleep_for(100ms);
      }
    }
    for (int port : {o_.kafka_port, o_.kafka_controller_port}) {
      if (PortOpen(port)) {
        return Fail("port " + std::to_string(port) +
                    " is in use: the local backend runs its own broker there (choose others with --kafka-port)");
      }
    }
    for (const auto& s : kServices) {
      if (PortOpen(Port(s, 1))) {
        return Fail("port " + std::to_string(Port(s, 1)) + " (" + s +
                    ") is in use (choose others with --http-port-base)");
      }
    }
    // A fresh broker for every run: the old topics would only take disk and start-up time.
    fs::remove_all(var_ / "kafka" / "data", ec);
    for (int node = 1; node <= kMaxNodes; ++node) fs::remove_all(var_ / "kafka" / ("node-" + std::to_string(node)), ec);
    fs::remove(var_ / "kafka" / "cluster.id", ec);
    // The admin token the services take POST /set with (mode 0600, as they require).
    token_file_ = var_ / "admin-token";
    if (!fs::exists(token_file_)) {
      std::random_device rd;
      std::string token;
      const char* digits = "0123456789abcdef";
      for (int i = 0; i < 32; ++i) token += digits[rd() % 16];
      std::ofstream(token_file_) << token << "\n";
    }
    chmod(token_file_.c_str(), 0600);
    std::ifstream(token_file_) >> token_;
    return {};
  }

  core::Status StartSystem(const Scenario& scenario, const std::string& prefix) override {
    prefix_ = prefix;
    scenario_ = &scenario;
    dir_ = var_ / scenario.name;
    std::error_code ec;
    fs::remove_all(dir_, ec);
    fs::create_directories(dir_, ec);
    if (auto s = EnsureBroker(scenario.system.brokers); !s.ok()) return s;
    const kafka::KafkaConfig config{brokers_, {}};
    if (auto s = kafka::CreateTopics(config, core::TopicNames(prefix_).All(scenario.system.partitions), 60s); !s.ok()) {
      return s;
    }
    for (const auto& role : kServices) {
      for (int i = 1; i <= scenario.system.InstancesOf(role); ++i) {
        if (PortOpen(Port(role, i))) {
          return Fail("port " + std::to_string(Port(role, i)) + " (" + InstanceName(role, i) +
                      ") is in use (choose others with --http-port-base)");
        }
        Spawn(role, i);
      }
    }
    for (const auto& role : kServices) {
      for (int i = 1; i <= scenario.system.InstancesOf(role); ++i) {
        if (auto s = WaitHealthy(role, i, 120s); !s.ok()) return s;
      }
    }
    return {};
  }

  std::string TopicPrefix() const override { return prefix_; }
  std::string Brokers() const override { return brokers_; }
  /// Instance I of a service listens on the port of instance 1 + 10 (I - 1), as with deployment/up --instances.
  int Port(const std::string& service, int instance) const override {
    return o_.http_port_base + ServiceNumber(service) + 10 * (std::max(instance, 1) - 1);
  }
  std::string AdminToken() const override { return token_; }

  core::Status Kill(const std::string& target, int instance) override {
    if (target == kBroker) {
      const auto pids = BrokerPids(instance);
      for (const pid_t pid : pids) {
        if (pid <= 0 || !ProcessAlive(pid)) return Fail(TargetName(target, instance) + " does not run");
      }
      for (const pid_t pid : pids) kill(pid, SIGKILL);
      const auto deadline = Clock::now() + 30s;
      for (const pid_t pid : pids) {
        while (ProcessAlive(pid)) {
          if (Clock::now() > deadline) return Fail(TargetName(target, instance) + " survived SIGKILL for 30 s");
          std::this_thread::sleep_for(20ms);
        }
      }
      return {};
    }
    auto& s = services_[InstanceName(target, instance)];
    if (s.pid <= 0) return Fail(TargetName(target, instance) + " does not run");
    KillAndReap(s.pid);
    s.pid = -1;
    return {};
  }

  core::Status Pause(const std::string& target, int instance) override { return Signal(target, instance, SIGSTOP); }
  core::Status Resume(const std::string& target, int instance) override { return Signal(target, instance, SIGCONT); }

  core::Status Restart(const std::string& target, int instance, std::chrono::milliseconds timeout) override {
    if (target == kBroker) {
      if (nodes_ > 1 && instance > 0) {
        // One node of the cluster, on its data.
        if (const pid_t pid = BrokerPid(instance); pid > 0 && ProcessAlive(pid)) {
          kill(pid, SIGCONT);
          if (BrokerScript("node-stop", 60s, instance) != 0) {
            return Fail("'deployment/kafka/cluster node-stop " + std::to_string(instance) + "' failed");
          }
        }
        if (BrokerScript("node-start", 240s, instance) != 0) {
          return Fail("'deployment/kafka/cluster node-start " + std::to_string(instance) + "' failed; see " +
                      BrokerLog(instance) + ":\n" + Tail((var_ / "broker-script.log").string(), 15));
        }
        return kafka::WaitForBroker({NodeAddress(instance), {}}, timeout);
      }
      bool running = false;
      for (const pid_t pid : BrokerPids(0)) {
        if (pid > 0 && ProcessAlive(pid)) {
          kill(pid, SIGCONT);
          running = true;
        }
      }
      if (running && BrokerScript("stop", 60s) != 0) return Fail("'deployment/kafka/broker stop' failed");
      return StartBroker();
    }
    auto& s = services_[InstanceName(target, instance)];
    if (s.pid > 0) {
      kill(s.pid, SIGCONT);
      kill(s.pid, SIGTERM);
      const auto deadline = Clock::now() + 20s;
      while (!TryReap(s.pid)) {
        if (Clock::now() > deadline) {
          KillAndReap(s.pid);
          break;
        }
        std::this_thread::sleep_for(20ms);
      }
      s.pid = -1;
    }
    Spawn(target, instance);
    return WaitHealthy(target, instance, timeout);
  }

  core::Status Wipe(const std::string& target, int instance, std::chrono::milliseconds timeout) override {
    auto& s = services_[InstanceName(target, instance)];
    if (s.pid > 0) {
      KillAndReap(s.pid);
      s.pid = -1;
    }
    const fs::path data = dir_ / InstanceName(target, instance);
    std::error_code ec;
    fs::remove_all(data, ec);
    if (ec) return Fail("cannot delete " + data.string() + ": " + ec.message());
    Spawn(target, instance);
    return WaitHealthy(target, instance, timeout);
  }

  bool Healthy(const std::string& target, int instance) override {
    if (target == kBroker) {
      return kafka::WaitForBroker({nodes_ > 1 && instance > 0 ? NodeAddress(instance) : brokers_, {}}, 2s).ok();
    }
    return ServiceAnswers(Port(target, instance));
  }

  std::vector<std::string> UnexpectedExits() override {
    for (auto& [role, s] : services_) {
      if (s.pid <= 0) continue;
      if (auto how = TryReap(s.pid)) {
        exits_.push_back(role + " exited on its own (" + *how + "); last lines of its log:\n" + Tail(s.log, 15));
        s.pid = -1;
      }
    }
    return exits_;
  }

  void StopSystem(bool keep_data) override {
    for (auto& [role, s] : services_) {
      if (s.pid > 0) {
        kill(s.pid, SIGCONT);
        KillAndReap(s.pid);
      }
    }
    services_.clear();
    exits_.clear();
    // The broker may have been left paused by the scenario (a node left down
    // is started again by the next scenario's StartSystem).
    for (const pid_t pid : BrokerPids(0)) {
      if (pid > 0 && ProcessAlive(pid)) kill(pid, SIGCONT);
    }
    if (!keep_data && !dir_.empty()) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    }
  }

  void Shutdown() override {
    StopSystem(true);
    StopBroker();
  }

  std::string LogHint() const override {
    return (dir_ / "<service>[-N].log").string() + " and " +
           (var_ / "log" / (nodes_ > 1 ? "kafka-N.log" : "kafka.log")).string();
  }

 private:
  struct Proc {
    pid_t pid = -1;
    std::string log;
    int starts = 0;
  };

  fs::path KafkaLibs() const {
    if (!o_.kafka_libs.empty()) return o_.kafka_libs;
    if (const char* libs = std::getenv("SAGAFLOW_KAFKA_LIBS"); libs != nullptr && *libs != '\0') return libs;
    return fs::path(o_.repo_root) / "var" / "kafka" / "libs";
  }

  static constexpr int kMaxNodes = 3;

  /// "payment" for instance 1, "payment-2" for instance 2 (its data directory and log).
  static std::string InstanceName(const std::string& role, int instance) {
    return instance <= 1 ? role : role + "-" + std::to_string(instance);
  }

  /// Node N of a cluster listens on the broker port + 2(N-1), as deployment/kafka/cluster does.
  std::string NodeAddress(int node) const { return "127.0.0.1:" + std::to_string(o_.kafka_port + 2 * (node - 1)); }
  std::string BrokerLog(int node) const {
    return (var_ / "log" / (node == 0 ? std::string("kafka.log") : "kafka-" + std::to_string(node) + ".log")).string();
  }

  /// Runs deployment/kafka/broker COMMAND, or deployment/kafka/cluster COMMAND NODE for one node.
  int BrokerScript(const std::string& command, std::chrono::milliseconds timeout, int node = 0) {
    // The script fetches missing jars into the libs directory, which needs its parent.
    std::error_code ec;
    fs::create_directories(KafkaLibs().parent_path(), ec);
    SpawnSpec spec;
    const fs::path dir = fs::path(o_.repo_root) / "deployment" / "kafka";
    if (node > 0) {
      spec.argv = {(dir / "cluster").string(), command, std::to_string(node)};
    } else {
      spec.argv = {(dir / "broker").string(), command};
    }
    spec.env = {{"SAGAFLOW_VAR", var_.string()},
                {"SAGAFLOW_KAFKA_PORT", std::to_string(o_.kafka_port)},
                {"SAGAFLOW_KAFKA_CONTROLLER_PORT", std::to_string(o_.kafka_controller_port)},
                {"SAGAFLOW_KAFKA_NODES", std::to_string(std::max(nodes_, 1))},
                {"SAGAFLOW_KAFKA_LIBS", KafkaLibs().string()},
                // The runner's services connect without credentials (a scenario
                // tests the saga's guarantees; tests/secured tests the ACLs).
                {"SAGAFLOW_KAFKA_SECURITY", "plaintext"}};
    spec.log_path = (var_ / "broker-script.log").string();
    // The broker itself must outlive a restart of the script, not the runner's threads.
    spec.die_with_parent = false;
    return Run(spec, timeout);
  }

  /// Makes the broker of `nodes` nodes run: started on first use, replaced
  /// (on fresh data) when the previous scenario had another number of
  /// brokers, and nodes a scenario left down started again on their data.
  core::Status EnsureBroker(int nodes) {
    if (nodes_ != 0 && nodes_ != nodes) {
      StopBroker();
      std::error_code ec;
      fs::remove_all(var_ / "kafka" / "data", ec);
      for (int node = 1; node <= kMaxNodes; ++node) {
        fs::remove_all(var_ / "kafka" / ("node-" + std::to_string(node)), ec);
      }
      fs::remove(var_ / "kafka" / "cluster.id", ec);
      nodes_ = 0;
    }
    if (nodes_ == 0) {
      for (int n = 1; n < nodes; ++n) {
        for (int port : {o_.kafka_port + 2 * n, o_.kafka_controller_port + 2 * n}) {
          if (PortOpen(port)) {
            return Fail("port " + std::to_string(port) + " is in use: node " + std::to_string(n + 1) +
                        " of the local backend's cluster runs there (choose others with --kafka-port)");
          }
        }
      }
      nodes_ = nodes;
      brokers_.clear();
      for (int n = 1; n <= nodes_; ++n) brokers_ += (n == 1 ? "" : ",") + NodeAddress(n);
      return StartBroker();
    }
    for (const pid_t pid : BrokerPids(0)) {
      if (pid <= 0 || !ProcessAlive(pid)) return StartBroker();
    }
    return {};
  }

  core::Status StartBroker() {
    if (BrokerScript("start", 240s) != 0) {
      return Fail("'deployment/kafka/broker start' failed; see " + (var_ / "broker-script.log").string() + " and " +
                  BrokerLog(nodes_ > 1 ? 1 : 0) + ":\n" + Tail((var_ / "broker-script.log").string(), 15));
    }
    return kafka::WaitForBroker({brokers_, {}}, 60s);
  }

  void StopBroker() {
    if (nodes_ == 0) return;
    for (const pid_t pid : BrokerPids(0)) {
      if (pid > 0 && ProcessAlive(pid)) kill(pid, SIGCONT);
    }
    if (BrokerScript("stop", 60s) != 0) {
      for (const pid_t pid : BrokerPids(0)) {
        if (pid > 0 && ProcessAlive(pid) && IsBroker(pid)) kill(pid, SIGKILL);
      }
    }
    nodes_ = 0;
  }

  /// The pid of the single broker (node 0) or of node N of the cluster.
  pid_t BrokerPid(int node) const {
    std::ifstream in(var_ / "run" / (node == 0 ? std::string("kafka.pid") : "kafka-" + std::to_string(node) + ".pid"));
    pid_t pid = -1;
    in >> pid;
    return pid;
  }

  /// The pids a broker target means: the broker, every node (0) or one node of the cluster.
  std::vector<pid_t> BrokerPids(int instance) const {
    if (nodes_ <= 1) return {BrokerPid(0)};
    if (instance > 0) return {BrokerPid(instance)};
    std::vector<pid_t> pids;
    for (int n = 1; n <= nodes_; ++n) pids.push_back(BrokerPid(n));
    return pids;
  }

  static bool IsBroker(pid_t pid) {
    std::ifstream cmdline("/proc/" + std::to_string(pid) + "/cmdline");
    std::string cmd((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
    return cmd.find("kafka.Kafka") != std::string::npos;
  }

  core::Status Signal(const std::string& target, int instance, int sig) {
    std::vector<pid_t> pids;
    if (target == kBroker) {
      pids = BrokerPids(instance);
    } else {
      pids = {services_[InstanceName(target, instance)].pid};
    }
    for (const pid_t pid : pids) {
      if (pid <= 0 || !ProcessAlive(pid)) return Fail(TargetName(target, instance) + " does not run");
    }
    for (const pid_t pid : pids) {
      if (kill(pid, sig) != 0) return Fail("cannot signal " + TargetName(target, instance));
    }
    return {};
  }

  std::vector<std::string> Args(const std::string& role, int instance) {
    const auto& sys = scenario_->system;
    std::vector<std::string> a = {o_.sagaflow_binary, role,
                                  "--brokers", brokers_,
                                  "--port", std::to_string(Port(role, instance)),
                                  "--data-dir", (dir_ / InstanceName(role, instance)).string(),
                                  "--instance-id", std::to_string(instance),
                                  "--topic-prefix", prefix_,
                                  "--partitions", std::to_string(sys.partitions),
                                  "--admin-token-file", token_file_.string(),
                                  "--log-level", "info"};
    if (role == "orchestrator") {
      for (const auto& s : {std::string("--step-timeout-ms"), std::to_string(sys.step_timeout.count()),
                            std::string("--max-step-timeout-ms"), std::to_string(sys.max_step_timeout.count()),
                            std::string("--max-attempts"), std::to_string(sys.max_attempts)}) {
        a.push_back(s);
      }
    }
    if (role == "warehouse") {
      a.push_back("--default-stock");
      a.push_back(std::to_string(sys.default_stock));
    }
    if (std::find(kParticipants.begin(), kParticipants.end(), role) != kParticipants.end()) {
      const auto& p = Participant(role);
      for (const auto& s : {std::string("--mistakes"), std::to_string(p.mistakes), std::string("--delay-ms"),
                            std::to_string(p.delay.min), std::to_string(p.delay.max)}) {
        a.push_back(s);
      }
    }
    return a;
  }

  void Spawn(const std::string& role, int instance) {
    const auto name = InstanceName(role, instance);
    auto& s = services_[name];
    s.log = (dir_ / (name + ".log")).string();
    ++s.starts;
    std::ofstream(s.log, std::ios::app) << "===== scenario: start #" << s.starts << " of " << name << " =====\n";
    SpawnSpec spec;
    spec.argv = Args(role, instance);
    spec.log_path = s.log;
    s.pid = scenario::Spawn(spec);
  }

  core::Status WaitHealthy(const std::string& role, int instance, std::chrono::milliseconds timeout) {
    const auto name = InstanceName(role, instance);
    auto& s = services_[name];
    const auto deadline = Clock::now() + timeout;
    while (true) {
      if (s.pid > 0) {
        if (auto how = TryReap(s.pid)) {
          s.pid = -1;
          return Fail(name + " exited while starting (" + *how + "):\n" + Tail(s.log, 20));
        }
      }
      if (ServiceAnswers(Port(role, instance))) return {};
      if (Clock::now() > deadline) {
        return Fail(name + " did not answer GET / with 200 within " + FormatDuration(timeout) + ":\n" + Tail(s.log, 20));
      }
      std::this_thread::sleep_for(100ms);
    }
  }

  LocalOptions o_;
  fs::path var_;
  fs::path dir_;
  fs::path token_file_;
  std::string token_;
  std::string brokers_;
  std::string prefix_;
  const Scenario* scenario_ = nullptr;
  /// Nodes of the running broker: 0 none yet, 1 the single broker, 3 a cluster.
  int nodes_ = 0;
  std::map<std::string, Proc> services_;
  std::vector<std::string> exits_;
};

}  // namespace

LocalOptions LocalOptionsForJob(const LocalOptions& base, int job) {
  LocalOptions o = base;
  const int shift = std::max(job, 1) - 1;
  if (shift == 0) return o;
  o.kafka_port += 10 * shift;
  o.kafka_controller_port += 10 * shift;
  o.http_port_base += 200 * shift;
  o.var_dir = (fs::path(base.var_dir) / ("job-" + std::to_string(job))).string();
  return o;
}

std::unique_ptr<Backend> MakeLocalBackend(const LocalOptions& options) {
  return std::make_unique<LocalBackend>(options);
}

}  // namespace sagaflow::scenario
