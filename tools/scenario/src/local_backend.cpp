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
  explicit LocalBackend(LocalOptions o) : o_(std::move(o)) {
    var_ = fs::absolute(o_.var_dir);
    brokers_ = "127.0.0.1:" + std::to_string(o_.kafka_port);
  }
  ~LocalBackend() override { Shutdown(); }

  std::string Name() const override { return "local"; }

  core::Status Prepare() override {
    std::error_code ec;
    fs::create_directories(var_, ec);
    if (ec) return Fail("cannot create " + var_.string() + ": " + ec.message());
    // A broker of ours left by a run that was killed before its cleanup.
    if (const pid_t left = BrokerPid(); left > 0 && ProcessAlive(left) && IsBroker(left)) {
      std::cerr << "scenario: stopping the broker (pid " << left << ") left by an earlier run in " << var_.string()
                << "\n";
      kill(left, SIGCONT);
      kill(left, SIGKILL);
      for (int i = 0; i < 300 && ProcessAlive(left); ++i) std::this_thread::sleep_for(100ms);
    }
    for (int port : {o_.kafka_port, o_.kafka_controller_port}) {
      if (PortOpen(port)) {
        return Fail("port " + std::to_string(port) +
                    " is in use: the local backend runs its own broker there (choose others with --kafka-port)");
      }
    }
    for (const auto& s : kServices) {
      if (PortOpen(o_.http_port_base + ServiceNumber(s))) {
        return Fail("port " + std::to_string(o_.http_port_base + ServiceNumber(s)) + " (" + s +
                    ") is in use (choose others with --http-port-base)");
      }
    }
    // A fresh broker for every run: the old topics would only take disk and start-up time.
    fs::remove_all(var_ / "kafka" / "data", ec);
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
    broker_started_ = true;
    return StartBroker();
  }

  core::Status StartSystem(const Scenario& scenario, const std::string& prefix) override {
    prefix_ = prefix;
    scenario_ = &scenario;
    dir_ = var_ / scenario.name;
    std::error_code ec;
    fs::remove_all(dir_, ec);
    fs::create_directories(dir_, ec);
    const kafka::KafkaConfig config{brokers_, {}};
    if (auto s = kafka::CreateTopics(config, core::TopicNames(prefix_).All(scenario.system.partitions), 60s); !s.ok()) {
      return s;
    }
    for (const auto& role : kServices) Spawn(role);
    for (const auto& role : kServices) {
      if (auto s = WaitHealthy(role, 120s); !s.ok()) return s;
    }
    return {};
  }

  std::string TopicPrefix() const override { return prefix_; }
  std::string Brokers() const override { return brokers_; }
  int Port(const std::string& service) const override { return o_.http_port_base + ServiceNumber(service); }
  std::string AdminToken() const override { return token_; }

  core::Status Kill(const std::string& target) override {
    if (target == kBroker) {
      const pid_t pid = BrokerPid();
      if (pid <= 0 || !ProcessAlive(pid)) return Fail("the broker does not run");
      kill(pid, SIGKILL);
      const auto deadline = Clock::now() + 30s;
      while (ProcessAlive(pid)) {
        if (Clock::now() > deadline) return Fail("the broker survived SIGKILL for 30 s");
        std::this_thread::sleep_for(20ms);
      }
      return {};
    }
    auto& s = services_[target];
    if (s.pid <= 0) return Fail(target + " does not run");
    KillAndReap(s.pid);
    s.pid = -1;
    return {};
  }

  core::Status Pause(const std::string& target) override { return Signal(target, SIGSTOP); }
  core::Status Resume(const std::string& target) override { return Signal(target, SIGCONT); }

  core::Status Restart(const std::string& target, std::chrono::milliseconds timeout) override {
    if (target == kBroker) {
      if (const pid_t pid = BrokerPid(); pid > 0 && ProcessAlive(pid)) {
        kill(pid, SIGCONT);
        if (BrokerScript("stop", 60s) != 0) return Fail("'deployment/kafka/broker stop' failed");
      }
      return StartBroker();
    }
    auto& s = services_[target];
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
    Spawn(target);
    return WaitHealthy(target, timeout);
  }

  core::Status Wipe(const std::string& target, std::chrono::milliseconds timeout) override {
    auto& s = services_[target];
    if (s.pid > 0) {
      KillAndReap(s.pid);
      s.pid = -1;
    }
    std::error_code ec;
    fs::remove_all(dir_ / target, ec);
    if (ec) return Fail("cannot delete " + (dir_ / target).string() + ": " + ec.message());
    Spawn(target);
    return WaitHealthy(target, timeout);
  }

  bool Healthy(const std::string& target) override {
    if (target == kBroker) return kafka::WaitForBroker({brokers_, {}}, 2s).ok();
    return ServiceAnswers(Port(target));
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
    // The broker may have been left paused or down by the scenario.
    if (const pid_t pid = BrokerPid(); pid > 0 && ProcessAlive(pid)) kill(pid, SIGCONT);
    if (!keep_data && !dir_.empty()) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    }
  }

  void Shutdown() override {
    StopSystem(true);
    if (broker_started_) {
      broker_started_ = false;
      if (const pid_t pid = BrokerPid(); pid > 0 && ProcessAlive(pid)) kill(pid, SIGCONT);
      if (BrokerScript("stop", 60s) != 0) {
        if (const pid_t pid = BrokerPid(); pid > 0 && ProcessAlive(pid) && IsBroker(pid)) kill(pid, SIGKILL);
      }
    }
  }

  std::string LogHint() const override { return (dir_ / "<service>.log").string() + " and " + (var_ / "log" / "kafka.log").string(); }

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

  int BrokerScript(const std::string& command, std::chrono::milliseconds timeout) {
    // The script fetches missing jars into the libs directory, which needs its parent.
    std::error_code ec;
    fs::create_directories(KafkaLibs().parent_path(), ec);
    SpawnSpec spec;
    spec.argv = {(fs::path(o_.repo_root) / "deployment" / "kafka" / "broker").string(), command};
    spec.env = {{"SAGAFLOW_VAR", var_.string()},
                {"SAGAFLOW_KAFKA_PORT", std::to_string(o_.kafka_port)},
                {"SAGAFLOW_KAFKA_CONTROLLER_PORT", std::to_string(o_.kafka_controller_port)},
                {"SAGAFLOW_KAFKA_LIBS", KafkaLibs().string()},
                // The runner's services connect without credentials (a scenario
                // tests the saga's guarantees; tests/secured tests the ACLs).
                {"SAGAFLOW_KAFKA_SECURITY", "plaintext"}};
    spec.log_path = (var_ / "broker-script.log").string();
    // The broker itself must outlive a restart of the script, not the runner's threads.
    spec.die_with_parent = false;
    return Run(spec, timeout);
  }

  core::Status StartBroker() {
    if (BrokerScript("start", 240s) != 0) {
      return Fail("'deployment/kafka/broker start' failed; see " + (var_ / "broker-script.log").string() + " and " +
                  (var_ / "log" / "kafka.log").string() + ":\n" + Tail((var_ / "broker-script.log").string(), 15));
    }
    return kafka::WaitForBroker({brokers_, {}}, 60s);
  }

  pid_t BrokerPid() const {
    std::ifstream in(var_ / "run" / "kafka.pid");
    pid_t pid = -1;
    in >> pid;
    return pid;
  }

  static bool IsBroker(pid_t pid) {
    std::ifstream cmdline("/proc/" + std::to_string(pid) + "/cmdline");
    std::string cmd((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
    return cmd.find("kafka.Kafka") != std::string::npos;
  }

  core::Status Signal(const std::string& target, int sig) {
    const pid_t pid = target == kBroker ? BrokerPid() : services_[target].pid;
    if (pid <= 0 || !ProcessAlive(pid)) return Fail(target + " does not run");
    if (kill(pid, sig) != 0) return Fail("cannot signal " + target);
    return {};
  }

  std::vector<std::string> Args(const std::string& role) {
    const auto& sys = scenario_->system;
    std::vector<std::string> a = {o_.sagaflow_binary, role,
                                  "--brokers", brokers_,
                                  "--port", std::to_string(Port(role)),
                                  "--data-dir", (dir_ / role).string(),
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

  void Spawn(const std::string& role) {
    auto& s = services_[role];
    s.log = (dir_ / (role + ".log")).string();
    ++s.starts;
    std::ofstream(s.log, std::ios::app) << "===== scenario: start #" << s.starts << " of " << role << " =====\n";
    SpawnSpec spec;
    spec.argv = Args(role);
    spec.log_path = s.log;
    s.pid = scenario::Spawn(spec);
  }

  core::Status WaitHealthy(const std::string& role, std::chrono::milliseconds timeout) {
    auto& s = services_[role];
    const auto deadline = Clock::now() + timeout;
    while (true) {
      if (s.pid > 0) {
        if (auto how = TryReap(s.pid)) {
          s.pid = -1;
          return Fail(role + " exited while starting (" + *how + "):\n" + Tail(s.log, 20));
        }
      }
      if (ServiceAnswers(Port(role))) return {};
      if (Clock::now() > deadline) {
        return Fail(role + " did not answer GET / with 200 within " + FormatDuration(timeout) + ":\n" + Tail(s.log, 20));
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
  bool broker_started_ = false;
  std::map<std::string, Proc> services_;
  std::vector<std::string> exits_;
};

}  // namespace

std::unique_ptr<Backend> MakeLocalBackend(const LocalOptions& options) {
  return std::make_unique<LocalBackend>(options);
}

}  // namespace sagaflow::scenario
