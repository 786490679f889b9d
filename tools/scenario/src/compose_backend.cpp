// The compose backend: the Docker Compose stack, driven through
// deployment/docker/compose. The script owns the containers; this backend
// only calls its verbs and talks to the services over 127.0.0.1 (host networking).

#include <filesystem>
#include <fstream>
#include <thread>

#include "sagaflow/core/kafka/kafka_client.hpp"
#include "sagaflow/runtime/http_client.hpp"
#include "sagaflow/scenario/backend.hpp"
#include "sagaflow/scenario/process.hpp"

namespace sagaflow::scenario {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

class ComposeBackend final : public Backend {
 public:
  explicit ComposeBackend(ComposeOptions o) : o_(std::move(o)) {
    char tmpl[] = "/tmp/sagaflow-compose-XXXXXX";
    if (const char* made = mkdtemp(tmpl); made != nullptr) log_ = std::string(made) + "/compose.log";
  }
  ~ComposeBackend() override { Shutdown(); }

  std::string Name() const override { return o_.attached ? "attached" : "compose"; }

  core::Status Prepare() override {
    if (o_.attached) return {};
    if (!fs::exists(o_.script)) {
      return Fail(o_.script + " not found: the compose backend drives the stack through it");
    }
    return {};
  }

  core::Status StartSystem(const Scenario& scenario, const std::string& /*prefix*/) override {
    if (o_.attached) return Attach(scenario);
    // The stack has one broker and one container per service.
    if (scenario.system.brokers != 1) {
      return Fail("system.brokers: " + std::to_string(scenario.system.brokers) +
                  ": the compose stack runs one broker; run this scenario on the local backend");
    }
    for (const auto& [service, n] : scenario.system.instances) {
      if (n != 1) {
        return Fail("system.instances." + service + ": " + std::to_string(n) +
                    ": the compose stack runs one instance of each service; run this scenario on the local backend");
      }
    }
    if (!up_) {
      up_ = true;  // from now on Shutdown runs 'down'
      // From empty volumes: what an earlier stack left (a broker with its transactions, the
      // services' state, stock counts) is not this run's and must not decide its outcome.
      if (auto s = Script({"up", "--fresh"}, 1800s); !s.ok()) return s;
      // The broker requires SASL: the runner's own clients read the topics as the admin.
      if (!o_.admin_credentials_file.empty()) {
        auto admin = kafka::LoadKafkaProperties(o_.admin_credentials_file);
        if (!admin.ok()) return Fail("the compose stack's admin credentials: " + admin.error().message);
        o_.kafka_properties = std::move(admin.value());
      }
    }
    // The orchestrator runs with the scenario's timings (recreated only when they change), so a
    // deadline the scenario relies on is the one the sagas get, and replay --verify agrees.
    const auto& sys = scenario.system;
    if (auto s = Script({"timings", std::to_string(sys.step_timeout.count()), std::to_string(sys.max_step_timeout.count()),
                         std::to_string(sys.max_attempts)},
                        300s);
        !s.ok()) {
      return s;
    }
    if (!o_.admin_token_file.empty()) {
      std::ifstream in(o_.admin_token_file);
      in >> token_;
    }
    const auto deadline = Clock::now() + 180s;
    for (const auto& role : kServices) {
      while (!Healthy(role, 1)) {
        if (Clock::now() > deadline) return Fail(role + " is not healthy after 'compose up'");
        std::this_thread::sleep_for(200ms);
      }
    }
    return {};
  }

  std::string TopicPrefix() const override { return o_.topic_prefix; }
  std::string Brokers() const override { return o_.brokers; }
  std::map<std::string, std::string> KafkaProperties() const override { return o_.kafka_properties; }
  int Instances(const std::string& service, int declared) const override {
    if (!o_.attached) return declared;
    const auto it = instances_.find(service);
    return it == instances_.end() ? 1 : it->second;
  }
  /// Instance I listens on the port of instance 1 + 10 (I - 1), as with deployment/up --instances.
  int Port(const std::string& service, int instance) const override {
    return o_.http_port_base + ServiceNumber(service) + 10 * (std::max(instance, 1) - 1);
  }
  std::string AdminToken() const override { return token_; }

  core::Status Kill(const std::string& target, int instance) override {
    if (o_.attached) return NoProcessControl("kill", target, instance);
    return Script({"kill", Service(target, instance)}, 120s);
  }
  core::Status Pause(const std::string& target, int instance) override {
    if (o_.attached) return NoProcessControl("pause", target, instance);
    return Script({"pause", Service(target, instance)}, 120s);
  }
  core::Status Resume(const std::string& target, int instance) override {
    if (o_.attached) return NoProcessControl("resume", target, instance);
    return Script({"unpause", Service(target, instance)}, 120s);
  }
  core::Status Restart(const std::string& target, int instance, std::chrono::milliseconds timeout) override {
    if (o_.attached) return NoProcessControl("restart", target, instance);
    if (auto s = Script({"restart", Service(target, instance)}, 300s); !s.ok()) return s;
    return WaitHealthy(target, timeout);
  }
  core::Status Wipe(const std::string& target, int instance, std::chrono::milliseconds timeout) override {
    if (o_.attached) return NoProcessControl("wipe", target, instance);
    if (auto s = Script({"wipe", Service(target, instance)}, 300s); !s.ok()) return s;
    return WaitHealthy(target, timeout);
  }

  bool Healthy(const std::string& target, int instance) override {
    if (target == kBroker) return kafka::WaitForBroker({o_.brokers, o_.kafka_properties}, 2s).ok();
    runtime::HttpClient client("127.0.0.1", Port(target, instance));
    auto res = client.Get("/", 2s);
    return res.ok() && res->status == 200;
  }

  std::vector<std::string> UnexpectedExits() override { return {}; }
  void StopSystem(bool /*keep_data*/) override {}

  void Shutdown() override {
    if (!up_ || o_.attached) return;
    up_ = false;
    (void)Script({"down"}, 600s);
  }

  std::string LogHint() const override { return log_ + " and the containers' logs (docker logs)"; }

 private:
  static core::Error Fail(std::string message) {
    return core::Error{core::Errc::kUnavailable, std::move(message), false};
  }

  static core::Error NoProcessControl(const std::string& step, const std::string& target, int instance) {
    return Fail(step + " " + TargetName(target, instance) +
                ": the attached backend only talks to a running system and controls no process; run this scenario "
                "on the local (or compose) backend");
  }

  /// Whether instance `instance` of `service` answers GET / as that service.
  bool Answers(const std::string& service, int instance) const {
    runtime::HttpClient client("127.0.0.1", Port(service, instance));
    auto res = client.Get("/", 2s);
    return res.ok() && res->status == 200 &&
           res->body.find("\"service\":\"" + service + "\"") != std::string::npos;
  }

  /// The attached backend's StartSystem: refuses a scenario it cannot run,
  /// checks that every service answers and counts the instances of each.
  core::Status Attach(const Scenario& scenario) {
    for (const auto& step : scenario.steps) {
      switch (step.kind) {
        case StepKind::kKill:
        case StepKind::kPause:
        case StepKind::kResume:
        case StepKind::kRestart:
        case StepKind::kWipe:
          return Fail(scenario.file + ":" + std::to_string(step.line) + ": " +
                      NoProcessControl(ToString(step.kind), step.target, step.instance).message);
        default: break;
      }
    }
    if (!o_.admin_token_file.empty()) {
      std::ifstream in(o_.admin_token_file);
      in >> token_;
    }
    instances_.clear();
    for (const auto& role : kServices) {
      if (!Answers(role, 1)) {
        return Fail(role + " does not answer GET http://127.0.0.1:" + std::to_string(Port(role, 1)) +
                    "/ as " + role + ": is the system up (make up)? (--http-port-base)");
      }
      // Further instances at the port + 10, + 20, ... (deployment/up --instances N).
      int n = 1;
      while (n < 9 && Answers(role, n + 1)) ++n;
      instances_[role] = n;
    }
    if (auto s = kafka::WaitForBroker({o_.brokers, o_.kafka_properties}, 10s); !s.ok()) {
      return Fail("the broker " + o_.brokers + " does not answer (--brokers, --kafka-config-file): " +
                  s.error().message);
    }
    return {};
  }
  /// Our "broker" is the stack's "kafka" service. The parser refuses an
  /// instance or node the scenario's system lacks, and StartSystem a system
  /// of more than one, so `instance` is 0 or 1 here.
  static std::string Service(const std::string& target, int /*instance*/) {
    return target == kBroker ? "kafka" : target;
  }

  core::Status Script(std::vector<std::string> args, std::chrono::milliseconds timeout) {
    SpawnSpec spec;
    spec.argv = {o_.script};
    for (auto& a : args) spec.argv.push_back(a);
    spec.log_path = log_;
    spec.die_with_parent = false;
    const int rc = Run(spec, timeout);
    if (rc != 0) {
      std::string cmd;
      for (const auto& a : spec.argv) cmd += (cmd.empty() ? "" : " ") + a;
      return Fail("'" + cmd + "' failed (" + (rc < 0 ? "timed out" : "exit " + std::to_string(rc)) + "):\n" +
                  Tail(log_, 15));
    }
    return {};
  }

  core::Status WaitHealthy(const std::string& target, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (!Healthy(target, 0)) {
      if (Clock::now() > deadline) return Fail(target + " is not healthy within " + FormatDuration(timeout));
      std::this_thread::sleep_for(200ms);
    }
    return {};
  }

  ComposeOptions o_;
  std::string log_ = "/dev/null";
  std::string token_;
  bool up_ = false;
  std::map<std::string, int> instances_;
};

}  // namespace

std::unique_ptr<Backend> MakeComposeBackend(const ComposeOptions& options) {
  return std::make_unique<ComposeBackend>(options);
}

std::unique_ptr<Backend> MakeAttachedBackend(ComposeOptions options) {
  options.attached = true;
  return std::make_unique<ComposeBackend>(std::move(options));
}

}  // namespace sagaflow::scenario
