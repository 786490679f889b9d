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

  std::string Name() const override { return "compose"; }

  core::Status Prepare() override {
    if (!fs::exists(o_.script)) {
      return Fail(o_.script + " not found: the compose backend drives the stack through it");
    }
    return {};
  }

  core::Status StartSystem(const Scenario& scenario, const std::string& /*prefix*/) override {
    if (!up_) {
      up_ = true;  // from now on Shutdown runs 'down'
      if (auto s = Script({"up"}, 1800s); !s.ok()) return s;
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
      while (!Healthy(role)) {
        if (Clock::now() > deadline) return Fail(role + " is not healthy after 'compose up'");
        std::this_thread::sleep_for(200ms);
      }
    }
    return {};
  }

  std::string TopicPrefix() const override { return o_.topic_prefix; }
  std::string Brokers() const override { return o_.brokers; }
  int Port(const std::string& service) const override { return o_.http_port_base + ServiceNumber(service); }
  std::string AdminToken() const override { return token_; }

  core::Status Kill(const std::string& target) override { return Script({"kill", Service(target)}, 120s); }
  core::Status Pause(const std::string& target) override { return Script({"pause", Service(target)}, 120s); }
  core::Status Resume(const std::string& target) override { return Script({"unpause", Service(target)}, 120s); }
  core::Status Restart(const std::string& target, std::chrono::milliseconds timeout) override {
    if (auto s = Script({"restart", Service(target)}, 300s); !s.ok()) return s;
    return WaitHealthy(target, timeout);
  }
  core::Status Wipe(const std::string& target, std::chrono::milliseconds timeout) override {
    if (auto s = Script({"wipe", Service(target)}, 300s); !s.ok()) return s;
    return WaitHealthy(target, timeout);
  }

  bool Healthy(const std::string& target) override {
    if (target == kBroker) return kafka::WaitForBroker({o_.brokers, {}}, 2s).ok();
    runtime::HttpClient client("127.0.0.1", Port(target));
    auto res = client.Get("/", 2s);
    return res.ok() && res->status == 200;
  }

  std::vector<std::string> UnexpectedExits() override { return {}; }
  void StopSystem(bool /*keep_data*/) override {}

  void Shutdown() override {
    if (!up_) return;
    up_ = false;
    (void)Script({"down"}, 600s);
  }

  std::string LogHint() const override { return log_ + " and the containers' logs (docker logs)"; }

 private:
  static core::Error Fail(std::string message) {
    return core::Error{core::Errc::kUnavailable, std::move(message), false};
  }
  /// Our "broker" is the stack's "kafka" service.
  static std::string Service(const std::string& target) { return target == kBroker ? "kafka" : target; }

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
    while (!Healthy(target)) {
      if (Clock::now() > deadline) return Fail(target + " is not healthy within " + FormatDuration(timeout));
      std::this_thread::sleep_for(200ms);
    }
    return {};
  }

  ComposeOptions o_;
  std::string log_ = "/dev/null";
  std::string token_;
  bool up_ = false;
};

}  // namespace

std::unique_ptr<Backend> MakeComposeBackend(const ComposeOptions& options) {
  return std::make_unique<ComposeBackend>(options);
}

}  // namespace sagaflow::scenario
