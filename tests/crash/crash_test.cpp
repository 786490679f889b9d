// The crash test (ctest label `crash`): the whole system as real processes
// against a broker of its own, killed with SIGKILL while it works.
//
// 2,000 orders at concurrency 50, payment mistakes at 20%. During the load
// every service is killed -9 in turn at a random moment (the orchestrator
// twice) and restarted; after the load was sent the broker is killed -9 and
// restarted. Then:
//   - every order is terminal (OK or NOT OK) and every saga ended;
//   - exactly one order exists per Idempotency-Key (2,000 in all);
//   - per item, initial stock - available == reserved == the quantity of the OK orders;
//   - every OK order has exactly one payment, of its sum; a NOT OK order none;
//   - at most one notification per order, and none for a NOT OK order;
//   - orders.dlq holds exactly the malformed records injected on purpose.
// These invariants are the checks of tools/scenario (sagaflow::scenario), which
// the failure scenarios run too. The counts are printed as a table at the end.
//
// The run is driven by one RNG whose seed is printed (SAGAFLOW_CRASH_SEED
// replays the same plan: orders, kill order and moments, pauses). Other knobs,
// for local experiments only: SAGAFLOW_CRASH_ORDERS, SAGAFLOW_CRASH_CONCURRENCY,
// SAGAFLOW_CRASH_LOAD_SECONDS, SAGAFLOW_CRASH_KAFKA_PORT,
// SAGAFLOW_CRASH_KAFKA_CONTROLLER_PORT, SAGAFLOW_CRASH_KEEP=1 (keep the temp dir).
//
// Everything runs under one temp dir /tmp/sagaflow-crash-XXXXXX: the broker's
// SAGAFLOW_VAR (var/), each service's data dir and log (<role>/, <role>.log).
// The broker and every service are killed at the end, also when an assertion
// fails (Harness's destructor); on failure the logs are kept and their tails printed.

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "sagaflow/scenario/checks.hpp"
#include "sagaflow/scenario/process.hpp"
#include "sagaflow/core/codec.hpp"
#include "sagaflow/core/kafka/kafka_client.hpp"
#include "sagaflow/core/topics.hpp"
#include "sagaflow/core/types.hpp"
#include "sagaflow/runtime/http_client.hpp"

#ifndef SAGAFLOW_BIN_DIR
#error "SAGAFLOW_BIN_DIR must name the directory of the sagaflow binary"
#endif
#ifndef SAGAFLOW_SOURCE_DIR
#error "SAGAFLOW_SOURCE_DIR must name the repository root"
#endif

namespace sagaflow::crash {
namespace {

using namespace sagaflow::scenario;

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

const std::vector<std::string> kServices = {"order", "orchestrator", "warehouse", "payment", "notification"};
const std::vector<core::ItemId> kItems = {101, 102, 103, 104};
constexpr int32_t kPartitions = 3;  // of every topic the tests create

int64_t EnvInt(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return std::stoll(v);
}

std::string Format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string Format(const char* fmt, ...) {
  char buf[1024];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(buf, sizeof(buf), fmt, args);
  va_end(args);
  return buf;
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

struct Settings {
  uint64_t seed = 0;
  int orders = 2000;
  int concurrency = 50;
  int payment_mistakes = 20;
  // A little less than what the OK orders would take (about 1.25 units of each
  // item per order, 80% of them charged), so that late reservations fail for
  // lack of stock while released ones come back.
  int64_t default_stock = 1800;
  // The orders are spread over this long, so that the kills fall during the load.
  double load_seconds = 80;
  // How long the broker stays down after its kill -9 (the issue's 30-second outage).
  double broker_down_seconds = 30;
  // POST /neworder answers 503 after this long when Kafka cannot take the order.
  int accept_timeout_ms = 3000;
  int kafka_port = 19292;
  int controller_port = 19293;
  // 1: one broker; 3: a three-node cluster (node N on kafka_port + 2(N-1), controller_port + 2(N-1)).
  int kafka_nodes = 1;
  bool ports_from_env = false;
  bool keep = false;

  /// The settings of a run: the environment's knobs over a test's defaults
  /// (its number of orders, how long they are spread over, its broker ports).
  static Settings FromEnv(int orders = 2000, int load_seconds = 80, int kafka_port = 19292) {
    Settings s;
    s.seed = static_cast<uint64_t>(
        EnvInt("SAGAFLOW_CRASH_SEED", static_cast<int64_t>(std::random_device{}() % 1'000'000'000)));
    s.orders = static_cast<int>(EnvInt("SAGAFLOW_CRASH_ORDERS", orders));
    s.concurrency = static_cast<int>(EnvInt("SAGAFLOW_CRASH_CONCURRENCY", s.concurrency));
    s.default_stock = s.orders * 9 / 10;
    s.load_seconds = static_cast<double>(EnvInt("SAGAFLOW_CRASH_LOAD_SECONDS", load_seconds));
    s.kafka_port = kafka_port;
    s.controller_port = kafka_port + 1;
    s.broker_down_seconds = static_cast<double>(EnvInt("SAGAFLOW_CRASH_BROKER_DOWN_SECONDS", 30));
    s.kafka_port = static_cast<int>(EnvInt("SAGAFLOW_CRASH_KAFKA_PORT", s.kafka_port));
    s.controller_port = static_cast<int>(EnvInt("SAGAFLOW_CRASH_KAFKA_CONTROLLER_PORT", s.controller_port));
    s.ports_from_env = std::getenv("SAGAFLOW_CRASH_KAFKA_PORT") != nullptr ||
                       std::getenv("SAGAFLOW_CRASH_KAFKA_CONTROLLER_PORT") != nullptr;
    s.keep = EnvInt("SAGAFLOW_CRASH_KEEP", 0) != 0;
    return s;
  }
};

// ---------------------------------------------------------------------------
// The orders the load sends, drawn up front from the seeded RNG.

struct PlannedOrder {
  std::string idempotency_key;
  json body;
  int64_t sum = 0;
  std::map<core::ItemId, int64_t> quantity;  // per item, summed over the order's lines
};

std::vector<PlannedOrder> PlanOrders(const Settings& s, std::mt19937_64& rng) {
  std::vector<PlannedOrder> out;
  for (int i = 0; i < s.orders; ++i) {
    PlannedOrder o;
    o.idempotency_key = "crash-" + std::to_string(s.seed) + "-" + std::to_string(i);
    json items = json::array();
    const int lines = std::uniform_int_distribution<int>(1, 3)(rng);
    for (int l = 0; l < lines; ++l) {
      // The same item may appear twice in one order: the warehouse sums it.
      const auto item = kItems[std::uniform_int_distribution<size_t>(0, kItems.size() - 1)(rng)];
      const int64_t quantity = std::uniform_int_distribution<int64_t>(1, 4)(rng);
      const int64_t price = std::uniform_int_distribution<int64_t>(5, 500)(rng);
      items.push_back({{"item_id", item}, {"quantity", quantity}, {"price", price}});
      o.quantity[item] += quantity;
      o.sum += quantity * price;
    }
    o.body = {{"order_id", 0},
              {"user_id", 1 + i % 97},
              {"payment", 1 + i % 2},
              {"notification", 1 + (i / 2) % 2},
              {"created_at", "2023-11-01T16:35:39.645580261+03:00"},
              {"approved_at", "2023-11-01T16:35:39.645580311+03:00"},
              {"sum", o.sum},
              {"items", items},
              {"status", 1},
              {"detail", ""}};
    out.push_back(std::move(o));
  }
  return out;
}

struct HttpAnswer {
  int status = 0;  // 0: the request failed (error says why)
  std::string body;
  json parsed;
  std::string error;
};

HttpAnswer Http(int port, const std::string& method, const std::string& path, const std::string& body = "",
                const std::map<std::string, std::string>& headers = {}, int timeout_s = 10) {
  runtime::HttpClient client("127.0.0.1", port);
  auto res = client.Request(method, path, body, headers, std::chrono::seconds(timeout_s + 2));
  HttpAnswer a;
  if (!res) {
    a.error = res.error().message;
    return a;
  }
  a.status = res->status;
  a.body = res->body;
  a.parsed = json::parse(a.body, nullptr, false);
  if (a.parsed.is_discarded()) a.parsed = nullptr;
  return a;
}

// ---------------------------------------------------------------------------
// The system under test as processes, and their cleanup.

class Harness {
 public:
  explicit Harness(const Settings& settings) : settings_(settings) {
    char tmpl[] = "/tmp/sagaflow-crash-XXXXXX";
    const char* made = mkdtemp(tmpl);
    if (made == nullptr) {
      std::perror("mkdtemp");
      std::abort();
    }
    root_ = made;
    var_ = root_ / "var";
    fs::create_directories(var_);
    std::ofstream(root_ / "owner.pid") << getpid() << "\n";
    for (int n = 0; n < settings_.kafka_nodes; ++n) {
      brokers_ += (n == 0 ? "" : ",") + std::string("127.0.0.1:") + std::to_string(settings_.kafka_port + 2 * n);
    }
    prefix_ = "crash" + std::to_string(settings_.seed) + ".";
    for (const auto& role : kServices) AddInstance(role);
  }

  ~Harness() {
    for (auto& [role, s] : services_) {
      if (s.pid > 0) KillAndReap(s.pid);
      s.pid = -1;
    }
    const bool failed = ::testing::Test::HasFailure();
    if (failed) PrintLogTails();
    if (broker_started_) {
      // A clean stop is quicker than it sounds and leaves nothing behind; the
      // pid file check inside the script makes sure only our broker is stopped.
      std::string out;
      if (BrokerScript("stop", 60s, &out) != 0) {
        std::cerr << "crash test: 'broker stop' failed:\n" << out;
        for (int node = settings_.kafka_nodes == 1 ? 0 : 1; node <= settings_.kafka_nodes; ++node) {
          if (const pid_t pid = BrokerPid(node); pid > 0) kill(pid, SIGKILL);
        }
      }
    }
    std::error_code ec;
    if (failed || settings_.keep) {
      fs::remove_all(var_ / "kafka" / "data", ec);
      for (int node = 1; node <= settings_.kafka_nodes; ++node) {
        fs::remove_all(var_ / "kafka" / ("node-" + std::to_string(node)) / "data", ec);
      }
      std::cerr << "crash test: logs kept in " << root_.string() << "\n";
    } else {
      fs::remove_all(root_, ec);
    }
  }

  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;

  // ---- broker ----

  /// The jars of the repository (or $SAGAFLOW_VAR's, or $SAGAFLOW_KAFKA_LIBS).
  static fs::path KafkaLibs() {
    if (const char* libs = std::getenv("SAGAFLOW_KAFKA_LIBS"); libs != nullptr && *libs != '\0') return libs;
    if (const char* var = std::getenv("SAGAFLOW_VAR"); var != nullptr && *var != '\0') {
      return fs::absolute(fs::path(var) / "kafka" / "libs");
    }
    return fs::path(SAGAFLOW_SOURCE_DIR) / "var" / "kafka" / "libs";
  }

  /// Runs deployment/kafka/broker COMMAND (the cluster's script when the
  /// broker is a cluster and `node` > 0: deployment/kafka/cluster COMMAND node).
  int BrokerScript(const std::string& command, std::chrono::milliseconds timeout, std::string* output,
                   int node = 0) {
    const std::string log = (root_ / "broker-script.log").string();
    const auto before = fs::exists(log) ? fs::file_size(log) : 0;
    SpawnSpec spec;
    if (node > 0) {
      spec.argv = {std::string(SAGAFLOW_SOURCE_DIR) + "/deployment/kafka/cluster", command, std::to_string(node)};
    } else {
      spec.argv = {std::string(SAGAFLOW_SOURCE_DIR) + "/deployment/kafka/broker", command};
    }
    spec.env = {{"SAGAFLOW_VAR", var_.string()},
                {"SAGAFLOW_KAFKA_PORT", std::to_string(settings_.kafka_port)},
                {"SAGAFLOW_KAFKA_CONTROLLER_PORT", std::to_string(settings_.controller_port)},
                {"SAGAFLOW_KAFKA_NODES", std::to_string(settings_.kafka_nodes)},
                {"SAGAFLOW_KAFKA_LIBS", KafkaLibs().string()},
                {"SAGAFLOW_KAFKA_SECURITY", "plaintext"}};
    spec.log_path = log;
    const int rc = Run(spec, timeout);
    if (output != nullptr) {
      std::ifstream in(log);
      in.seekg(static_cast<std::streamoff>(before));
      std::stringstream ss;
      ss << in.rdbuf();
      *output = ss.str();
    }
    return rc;
  }

  /// `broker start`: returns "" once the broker serves, or what went wrong.
  std::string StartBroker() {
    std::string out;
    broker_started_ = true;  // from now on the destructor runs 'broker stop' (a no-op if nothing runs)
    const int rc = BrokerScript("start", 240s, &out);
    if (rc != 0) {
      return "'deployment/kafka/broker start' failed (exit " + std::to_string(rc) + "):\n" + out +
             "\n--- broker log ---\n" + Tail(BrokerLog(settings_.kafka_nodes == 1 ? 0 : 1), 40);
    }
    kafka::KafkaConfig config{brokers_, {}};
    if (auto s = kafka::WaitForBroker(config, 60s); !s.ok()) return s.error().message;
    return "";
  }

  /// The pid of the broker (node 0) or of node N of the cluster.
  pid_t BrokerPid(int node = 0) const {
    std::ifstream in(var_ / "run" / (node == 0 ? std::string("kafka.pid") : "kafka-" + std::to_string(node) + ".pid"));
    pid_t pid = -1;
    in >> pid;
    return pid;
  }
  std::string BrokerLog(int node) const {
    return (var_ / "log" / (node == 0 ? std::string("kafka.log") : "kafka-" + std::to_string(node) + ".log"))
        .string();
  }

  /// `cluster node-start N`: "" once node N serves again, or what went wrong.
  std::string StartNode(int node) {
    std::string out;
    const int rc = BrokerScript("node-start", 240s, &out, node);
    if (rc != 0) {
      return "'deployment/kafka/cluster node-start " + std::to_string(node) + "' failed (exit " +
             std::to_string(rc) + "):\n" + out + "\n--- its log ---\n" + Tail(BrokerLog(node), 40);
    }
    return "";
  }

  /// kill -9 the broker (node 0) or node N of the cluster; returns once the
  /// process is gone (or "" → error text).
  std::string KillBroker(int node = 0) {
    const pid_t pid = BrokerPid(node);
    if (pid <= 0 || !ProcessAlive(pid))
      return "no broker process to kill (pid file: " + std::to_string(pid) + ")";
    kill(pid, SIGKILL);
    const auto deadline = Clock::now() + 30s;
    while (ProcessAlive(pid)) {
      if (Clock::now() > deadline)
        return "the broker (pid " + std::to_string(pid) + ") survived SIGKILL for 30 s";
      std::this_thread::sleep_for(20ms);
    }
    return "";
  }

  // ---- services ----

  /// Adds an instance of `role` (not started): the first is named after the
  /// role, the next ones "<role>-2", "<role>-3"... Returns its name.
  std::string AddInstance(const std::string& role) {
    int index = 1;
    for (const auto& [name, s] : services_) index += s.role == role ? 1 : 0;
    const std::string name = index == 1 ? role : role + "-" + std::to_string(index);
    Service s;
    s.role = role;
    s.index = index;
    s.port = FreePort();
    s.log = (root_ / (name + ".log")).string();
    services_[name] = s;
    return name;
  }

  /// The name of a running instance of `role` (the first one), or "" if none runs.
  std::string Live(const std::string& role) const {
    for (const auto& [name, s] : services_) {
      if (s.role == role && s.pid > 0) return name;
    }
    return "";
  }

  /// The instances of `role`, by name.
  std::vector<std::string> Instances(const std::string& role) const {
    std::vector<std::string> out;
    for (const auto& [name, s] : services_) {
      if (s.role == role) out.push_back(name);
    }
    return out;
  }

  std::vector<std::string> Args(const std::string& name) const {
    const auto& s = services_.at(name);
    const std::string& role = s.role;
    std::vector<std::string> args = {std::string(SAGAFLOW_BIN_DIR) + "/sagaflow",
                                     role,
                                     "--brokers",
                                     brokers_,
                                     "--port",
                                     std::to_string(s.port),
                                     "--data-dir",
                                     (root_ / name).string(),
                                     "--topic-prefix",
                                     prefix_,
                                     "--instance-id",
                                     std::to_string(s.index),
                                     "--log-level",
                                     "info"};
    if (role == "order") {
      args.emplace_back("--accept-timeout-ms");
      args.push_back(std::to_string(settings_.accept_timeout_ms));
    } else if (role == "orchestrator") {
      // Short deadlines: retries and give-ups happen within the test's time.
      for (const char* a : {"--step-timeout-ms", "3000", "--max-step-timeout-ms", "10000"})
        args.emplace_back(a);
    } else if (role == "warehouse") {
      args.emplace_back("--default-stock");
      args.push_back(std::to_string(settings_.default_stock));
    } else if (role == "payment") {
      args.emplace_back("--mistakes");
      args.push_back(std::to_string(settings_.payment_mistakes));
      // A simulated charge takes up to 1.5 s (less than the first deadline):
      // many sagas wait on the pivot at any moment, so every kill, the
      // broker's included, interrupts charges that are deferred or in flight.
      for (const char* a : {"--delay-ms", "0", "1500"}) args.emplace_back(a);
    }
    return args;
  }

  void Spawn(const std::string& name) {
    auto& s = services_.at(name);
    ++s.starts;
    std::ofstream(s.log, std::ios::app) << "===== crash test: start #" << s.starts << " of " << name
                                        << " at t=" << Format("%.1f", Elapsed()) << " s =====\n";
    SpawnSpec spec;
    spec.argv = Args(name);
    spec.log_path = s.log;
    s.pid = scenario::Spawn(spec);
    s.spawned_at = Clock::now();
  }

  /// Waits until GET / says "ok" (the processor runs): "" or what went wrong.
  std::string WaitReady(const std::string& role, std::chrono::seconds timeout) {
    auto& s = services_.at(role);
    const auto deadline = Clock::now() + timeout;
    while (true) {
      if (s.pid > 0) {
        if (auto how = TryReap(s.pid)) {
          s.pid = -1;
          return role + " exited during startup (" + *how + "):\n" + Tail(s.log, 30);
        }
      }
      auto a = Http(s.port, "GET", "/", "", {}, 2);
      if (a.status == 200 && a.parsed.is_object() && a.parsed.value("status", "") == "ok") return "";
      if (Clock::now() > deadline) {
        return role + " did not answer GET / with status ok within " + std::to_string(timeout.count()) +
               " s:\n" + Tail(s.log, 30);
      }
      std::this_thread::sleep_for(100ms);
    }
  }

  /// Waits until every instance in `names` answers GET / with "ok", checking
  /// them together; the seconds each took (from now) go into `ready_after`.
  /// "" or what went wrong.
  std::string WaitAllReady(const std::vector<std::string>& names, std::chrono::seconds timeout,
                           std::map<std::string, double>* ready_after) {
    const auto start = Clock::now();
    std::set<std::string> pending(names.begin(), names.end());
    while (!pending.empty()) {
      for (auto it = pending.begin(); it != pending.end();) {
        auto& s = services_.at(*it);
        if (s.pid > 0) {
          if (auto how = TryReap(s.pid)) {
            s.pid = -1;
            return *it + " exited (" + *how + "):\n" + Tail(s.log, 30);
          }
        }
        auto a = Http(s.port, "GET", "/", "", {}, 1);
        if (a.status == 200 && a.parsed.is_object() && a.parsed.value("status", "") == "ok") {
          (*ready_after)[*it] = Seconds(Clock::now() - start);
          it = pending.erase(it);
        } else {
          ++it;
        }
      }
      if (pending.empty()) break;
      if (Clock::now() > start + timeout) {
        return *pending.begin() + " did not answer GET / with status ok within " +
               std::to_string(timeout.count()) + " s:\n" + Tail(services_.at(*pending.begin()).log, 30);
      }
      std::this_thread::sleep_for(50ms);
    }
    return "";
  }

  void Kill(const std::string& role) {
    auto& s = services_.at(role);
    KillAndReap(s.pid);
    s.pid = -1;
  }

  /// Reaps services that exited although nobody killed them: each is a
  /// failure, recorded, and the service is started again so the run goes on.
  void CheckChildren() {
    for (auto& [role, s] : services_) {
      if (s.pid <= 0) continue;
      if (auto how = TryReap(s.pid)) {
        const std::string what =
            Format("t=%.1fs %s exited on its own (%s)", Elapsed(), role.c_str(), how->c_str());
        std::cerr << "crash test: " << what << "; last lines of its log:\n" << Tail(s.log, 30);
        unexpected_exits_.push_back(what);
        s.pid = -1;
        Spawn(role);
      }
    }
  }

  /// Sleeps until `until`, watching the services meanwhile.
  void SleepUntil(Clock::time_point until) {
    while (true) {
      CheckChildren();
      const auto now = Clock::now();
      if (now >= until) return;
      std::this_thread::sleep_for(std::min<Clock::duration>(until - now, 100ms));
    }
  }

  void PrintLogTails() const {
    for (const auto& [role, s] : services_) {
      std::cerr << "----- last 40 lines of " << s.log << " -----\n" << Tail(s.log, 40);
    }
    for (int node = settings_.kafka_nodes == 1 ? 0 : 1; node <= settings_.kafka_nodes; ++node) {
      const auto broker_log = BrokerLog(node);
      std::cerr << "----- last 40 lines of " << broker_log << " -----\n" << Tail(broker_log, 40);
    }
    const auto script_log = (root_ / "broker-script.log").string();
    std::cerr << "----- last 20 lines of " << script_log << " -----\n" << Tail(script_log, 20);
  }

  double Elapsed() const { return Seconds(Clock::now() - started_); }
  int port(const std::string& role) const { return services_.at(role).port; }
  const std::string& brokers() const { return brokers_; }
  const std::string& prefix() const { return prefix_; }
  const fs::path& root() const { return root_; }
  const std::vector<std::string>& unexpected_exits() const { return unexpected_exits_; }

 private:
  struct Service {
    std::string role;
    int index = 1;  // --instance-id
    int port = 0;
    pid_t pid = -1;
    int starts = 0;
    std::string log;
    Clock::time_point spawned_at;
  };

  const Settings settings_;
  const Clock::time_point started_ = Clock::now();
  fs::path root_;
  fs::path var_;
  std::string brokers_;
  std::string prefix_;
  bool broker_started_ = false;
  std::map<std::string, Service> services_;
  std::vector<std::string> unexpected_exits_;
};

/// Brokers left running by an earlier run of this test that was killed before
/// its cleanup (e.g. by a ctest timeout): stops them so their ports are free.
void StopLeftoverBrokers() {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/tmp", ec)) {
    const auto name = entry.path().filename().string();
    if (name.rfind("sagaflow-crash-", 0) != 0) continue;
    pid_t owner = -1;
    std::ifstream(entry.path() / "owner.pid") >> owner;
    if (owner <= 0 || ProcessAlive(owner)) continue;
    // The broker's pid file, or the cluster nodes' (kafka-N.pid).
    for (const auto& pid_file : fs::directory_iterator(entry.path() / "var" / "run", ec)) {
      const auto file = pid_file.path().filename().string();
      if (file.rfind("kafka", 0) != 0 || pid_file.path().extension() != ".pid") continue;
      pid_t broker = -1;
      std::ifstream(pid_file.path()) >> broker;
      if (broker <= 0 || !ProcessAlive(broker)) continue;
      std::ifstream cmdline("/proc/" + std::to_string(broker) + "/cmdline");
      std::string cmd((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
      if (cmd.find("kafka.Kafka") == std::string::npos) continue;
      std::cerr << "crash test: stopping the broker (pid " << broker << ") left by an earlier run in "
                << entry.path().string() << "\n";
      kill(broker, SIGKILL);
      for (int i = 0; i < 300 && ProcessAlive(broker); ++i) std::this_thread::sleep_for(100ms);
    }
  }
}

// ---------------------------------------------------------------------------
// The load: `concurrency` clients share the planned orders. The first 80% are
// paced (spread evenly over load_seconds) so that the kills fall during the
// load; the last 20% wait until the chaos has
// killed every service and then go as fast as the clients can send them, so
// that many sagas are in flight when the broker is killed right after. A
// refused POST (connection refused while the order service is down, 503,
// timeout) is sent again with the same Idempotency-Key.

struct LoadResult {
  std::vector<core::OrderId> ids;   // per planned order; 0 = never accepted
  std::vector<std::string> errors;  // per planned order: why it was never accepted
  std::atomic<int64_t> posts{0};    // POST attempts
  std::atomic<int64_t> retried{0};  // attempts that were refused and retried
  std::mutex mu;
  std::map<std::string, int64_t> refusals;  // reason -> count
};

//
// With several order instances (`ports`), an order service answers only for
// the partitions it owns (a POST for another partition gets 503 after the
// accept timeout). The clients remember, per partition of the Idempotency-Key,
// the instance that last accepted one, and move to the next instance after a refusal.
class Load {
 public:
  Load(const Settings& s, const std::vector<PlannedOrder>& plan, std::vector<int> ports,
       std::atomic<bool>& chaos_done)
      : settings_(s), plan_(plan), ports_(std::move(ports)), chaos_done_(chaos_done) {
    result_.ids.assign(plan.size(), 0);
    result_.errors.assign(plan.size(), "");
  }

  void Start() {
    start_ = Clock::now();
    for (int t = 0; t < settings_.concurrency; ++t) threads_.emplace_back([this] { Worker(); });
  }
  void Join() {
    for (auto& t : threads_) t.join();
    threads_.clear();
    finished_ = Clock::now();
  }
  bool done() const { return done_count_.load() == static_cast<int>(plan_.size()); }
  int sent() const { return done_count_.load(); }
  /// Makes the workers give up (the test failed): the remaining orders are not sent.
  void Stop() { stop_.store(true); }
  LoadResult& result() { return result_; }
  double seconds() const { return Seconds(finished_ - start_); }

 private:
  void Worker() {
    // A refused connection fails at once; an answer is given time (the order
    // service answers 503 after 10 s).
    std::vector<std::unique_ptr<runtime::HttpClient>> clients;
    for (int port : ports_) clients.push_back(std::make_unique<runtime::HttpClient>("127.0.0.1", port));
    const auto n = static_cast<int>(plan_.size());
    const int last_part = n - std::max(1, n / 5);
    while (true) {
      const int i = next_.fetch_add(1);
      if (i >= n) return;
      const auto release = start_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                                        settings_.load_seconds * std::min(i, last_part) / last_part));
      while (Clock::now() < release || (i >= last_part && !chaos_done_.load())) {
        if (stop_.load()) return;
        std::this_thread::sleep_for(
            std::min<Clock::duration>(std::max<Clock::duration>(release - Clock::now(), 1ms), 50ms));
      }
      Send(clients, i);
      done_count_.fetch_add(1);
    }
  }

  void Send(std::vector<std::unique_ptr<runtime::HttpClient>>& clients, int i) {
    const auto& order = plan_[i];
    const auto body = order.body.dump();
    const std::map<std::string, std::string> headers = {{"Idempotency-Key", order.idempotency_key}};
    auto& preferred = preferred_[static_cast<size_t>(kafka::PartitionOf(order.idempotency_key, kPartitions))];
    const auto deadline = Clock::now() + 300s;
    auto backoff = 50ms;
    std::string last;
    while (true) {
      result_.posts.fetch_add(1);
      int at = preferred.load();
      auto res = clients[static_cast<size_t>(at)]->Request("POST", "/neworder", body, headers, 20s);
      std::string reason;
      if (!res) {
        reason = "transport: " + res.error().message;
      } else if (res->status == 200) {
        auto j = json::parse(res->body, nullptr, false);
        if (j.is_object() && j.contains("order_id") && j["order_id"].is_number_integer()) {
          result_.ids[i] = j["order_id"].get<core::OrderId>();
          return;
        }
        result_.errors[i] = "200 without an order id: " + res->body;
        return;
      } else if (res->status >= 400 && res->status < 500) {
        // Our orders are valid: a 4xx is a bug, not a reason to retry.
        result_.errors[i] = "HTTP " + std::to_string(res->status) + ": " + res->body;
        return;
      } else {
        reason = "HTTP " + std::to_string(res->status);
      }
      {
        std::lock_guard lock(result_.mu);
        ++result_.refusals[reason];
      }
      last = reason;
      if (Clock::now() > deadline || stop_.load()) {
        result_.errors[i] = "not accepted within 300 s; last refusal: " + last;
        return;
      }
      result_.retried.fetch_add(1);
      if (clients.size() > 1) {
        preferred.compare_exchange_strong(at, (at + 1) % static_cast<int>(clients.size()));
        if (res && res->status == 503) continue;  // the refusal took the accept timeout already
      }
      std::this_thread::sleep_for(backoff);
      backoff = std::min<std::chrono::milliseconds>(backoff * 2, 1000ms);
    }
  }

  const Settings& settings_;
  const std::vector<PlannedOrder>& plan_;
  const std::vector<int> ports_;
  std::atomic<bool>& chaos_done_;
  std::array<std::atomic<int>, kPartitions> preferred_{};  // per partition: an index into ports_
  LoadResult result_;
  std::atomic<int> next_{0};
  std::atomic<int> done_count_{0};
  std::atomic<bool> stop_{false};
  Clock::time_point start_;
  Clock::time_point finished_;
  std::vector<std::thread> threads_;
};

// ---------------------------------------------------------------------------
// Reading topics.

template <typename T>
struct Decoded {
  std::string key;
  core::OrderId saga_id = 0;
  T value;
};

template <typename T>
std::vector<Decoded<T>> ReadPayloads(const kafka::KafkaConfig& config, const std::string& topic,
                                     std::vector<std::string>* undecodable) {
  std::vector<Decoded<T>> out;
  auto end = kafka::ReadToEnd(config, topic, {}, [&](const kafka::Record& r) {
    auto m = core::Decode(r.value);
    if (!m.ok()) {
      undecodable->push_back(topic + "@" + std::to_string(r.offset) + ": " + m.error().message);
      return;
    }
    const auto* v = std::get_if<T>(&m->payload);
    if (v == nullptr) {
      undecodable->push_back(topic + "@" + std::to_string(r.offset) + ": unexpected " +
                             std::string(core::PayloadName(m->payload)));
      return;
    }
    out.push_back({r.key, m->saga_id, *v});
  });
  if (!end.ok()) undecodable->push_back("reading " + topic + " failed: " + end.error().message);
  return out;
}

/// A malformed record produced on purpose into a service's input topic.
struct Injected {
  std::string topic;
  std::string key;
  std::string value;
  std::string service;
};

std::string Inject(const kafka::KafkaConfig& config, const std::string& prefix, const Injected& bad) {
  auto producer = kafka::TransactionalProducer::Open(config, prefix + "crash-injector", 30s);
  if (!producer.ok()) return producer.error().message;
  auto& p = *producer.value();
  if (auto s = p.Begin(); !s.ok()) return s.error().message;
  if (auto s = p.Produce(bad.topic, bad.key, bad.value); !s.ok()) return s.error().message;
  if (auto d = p.Commit(); !d.ok()) return d.error().message;
  return "";
}

/// "not enough stock for item 103: requested 4, available 2" -> "not enough stock for item #: requested #,
/// available #".
std::string Shape(const std::string& detail) {
  std::string out;
  bool digits = false;
  for (char c : detail) {
    if (std::isdigit(static_cast<unsigned char>(c))) {
      if (!digits) out += '#';
      digits = true;
    } else {
      out += c;
      digits = false;
    }
  }
  return out.empty() ? "(no detail)" : out;
}

// ---------------------------------------------------------------------------

/// A kill -9 during a run, for the summary.
struct KillRecord {
  std::string what;
  double at_s = 0;         // since the load started
  double down_s = 0;       // pause before the restart
  double restart_s = 0;    // restart until ready
  int64_t in_flight = -1;  // sagas not ended just before the kill (-1: unknown)
};

/// The invariants every run ends with: waits until every order is terminal,
/// reads the orders, payments and stock over REST (from a running instance of
/// each service) and the changelogs and the DLQ from Kafka, asserts, and prints
/// the counts. `plan` and `result` are the orders sent and the ids they got;
/// `injected` the malformed records expected in the DLQ.
void SettleAndCheck(Harness& h, const Settings& settings, const kafka::KafkaConfig& kafka,
                    const core::TopicNames& topics, const std::vector<PlannedOrder>& plan, LoadResult& result,
                    const std::vector<Injected>& injected, const std::vector<KillRecord>& kills,
                    double load_seconds) {
  // ---- every order terminal ----
  const auto settle_start = Clock::now();
  const auto settle_limit = settle_start + 300s;
  int64_t unfinished = -1;
  while (Clock::now() < settle_limit) {
    h.SleepUntil(Clock::now() + 1s);
    auto process = Http(h.port(h.Live("order")), "GET", "/orders?status=2&limit=1000");
    auto fresh = Http(h.port(h.Live("order")), "GET", "/orders?status=1&limit=1000");
    if (process.status != 200 || fresh.status != 200) continue;
    unfinished = process.parsed.value("count", int64_t{-1}) + fresh.parsed.value("count", int64_t{-1});
    if (unfinished == 0) break;
  }
  const double settle_s = Seconds(Clock::now() - settle_start);
  std::cout << Format("crash test: t=%.1f s %s after %.1f s", h.Elapsed(),
                      unfinished == 0 ? "every order terminal" : "orders still not terminal", settle_s)
            << std::endl;

  // ---- collect: the orders over REST, the changelogs and the DLQ from Kafka ----
  std::vector<json> final_orders(plan.size());
  std::vector<HttpAnswer> payments(plan.size());
  {
    std::atomic<size_t> next{0};
    std::vector<std::thread> readers;
    for (int t = 0; t < 8; ++t) {
      readers.emplace_back([&] {
        for (size_t i = next.fetch_add(1); i < plan.size(); i = next.fetch_add(1)) {
          const auto id = std::to_string(result.ids[i]);
          for (int attempt = 0; attempt < 5; ++attempt) {
            auto a = Http(h.port(h.Live("order")), "GET", "/orders/" + id);
            if (a.status != 0) {
              final_orders[i] =
                  a.status == 200 ? a.parsed : json{{"http_status", a.status}, {"body", a.body}};
              break;
            }
          }
          for (int attempt = 0; attempt < 5; ++attempt) {
            payments[i] = Http(h.port(h.Live("payment")), "GET", "/payments/" + id);
            if (payments[i].status != 0) break;
          }
        }
      });
    }
    for (auto& t : readers) t.join();
  }
  std::vector<std::string> unreadable;
  const auto order_records = ReadPayloads<core::OrderRecord>(kafka, topics.order_orders, &unreadable);
  const auto payment_records = ReadPayloads<core::Payment>(kafka, topics.payment_payments, &unreadable);
  const auto notification_records =
      ReadPayloads<core::Notification>(kafka, topics.notification_sent, &unreadable);
  const auto dead_letters = ReadPayloads<core::DeadLetter>(kafka, topics.dlq, &unreadable);
  auto stock = Http(h.port(h.Live("warehouse")), "GET", "/stock");
  auto sagas = Http(h.port(h.Live("orchestrator")), "GET", "/sagas?limit=1");
  EXPECT_TRUE(unreadable.empty()) << "records that could not be read:\n"
                                  << [&] {
                                       std::string s;
                                       for (const auto& u : unreadable) s += "  " + u + "\n";
                                       return s;
                                     }();

  // ---- assert ----
  // Exactly one order per Idempotency-Key: the client saw distinct ids, and
  // the order changelog holds exactly those.
  std::map<core::OrderId, size_t> index;  // order id -> planned order
  for (size_t i = 0; i < plan.size(); ++i) {
    const bool fresh = index.emplace(result.ids[i], i).second;
    EXPECT_TRUE(fresh) << "two Idempotency-Keys got order id " << result.ids[i];
  }
  std::map<std::string, std::set<core::OrderId>> ids_of_key;
  std::set<core::OrderId> changelog_orders;
  for (const auto& r : order_records) {
    changelog_orders.insert(r.value.order.order_id);
    ids_of_key[r.value.idempotency_key].insert(r.value.order.order_id);
  }
  EXPECT_EQ(changelog_orders.size(), plan.size()) << "orders recorded in " << topics.order_orders;
  for (size_t i = 0; i < plan.size(); ++i) {
    const auto& ids = ids_of_key[plan[i].idempotency_key];
    EXPECT_EQ(ids, std::set<core::OrderId>{result.ids[i]})
        << "orders recorded for Idempotency-Key " << plan[i].idempotency_key;
  }

  // Every order terminal; OK quantities per item.
  int ok = 0, not_ok = 0;
  std::map<std::string, int> not_ok_reasons;
  std::map<core::ItemId, int64_t> ok_quantity;
  std::vector<std::string> stuck;
  for (size_t i = 0; i < plan.size(); ++i) {
    const auto& o = final_orders[i];
    const int status = o.is_object() ? o.value("status", 0) : 0;
    if (status == 3) {
      ++ok;
      for (const auto& [item, q] : plan[i].quantity) ok_quantity[item] += q;
    } else if (status == 4) {
      ++not_ok;
      ++not_ok_reasons[Shape(o.value("detail", ""))];
    } else {
      stuck.push_back(std::to_string(result.ids[i]) + ": " + o.dump());
    }
    if (o.is_object() && o.contains("sum")) {
      EXPECT_EQ(o["sum"], plan[i].sum) << "order " << result.ids[i];
    }
  }
  EXPECT_TRUE(stuck.empty()) << stuck.size() << " order(s) not terminal, e.g.:\n"
                             <<
      [&] {
        std::string s;
        for (size_t i = 0; i < std::min<size_t>(stuck.size(), 5); ++i) {
          const auto id = stuck[i].substr(0, stuck[i].find(':'));
          s += "  " + stuck[i] + "\n  saga: " + Http(h.port(h.Live("orchestrator")), "GET", "/sagas/" + id).body +
               "\n";
        }
        return s;
      }();
  std::map<std::string, int64_t> saga_counts;
  if (sagas.status == 200 && sagas.parsed.contains("counts")) {
    for (const auto& [phase, n] : sagas.parsed["counts"].items()) saga_counts[phase] = n.get<int64_t>();
  }
  EXPECT_EQ(saga_counts, (std::map<std::string, int64_t>{{"ended", static_cast<int64_t>(plan.size())}}))
      << "sagas by state (GET /sagas): " << sagas.body;

  // Stock: initial - available == reserved == the OK orders' quantity, per item.
  std::map<core::ItemId, std::pair<int64_t, int64_t>> levels;  // available, reserved
  ASSERT_EQ(stock.status, 200) << stock.body << stock.error;
  for (const auto& item : stock.parsed["items"]) {
    levels[item["item_id"].get<core::ItemId>()] = {item["available"].get<int64_t>(),
                                                   item["reserved"].get<int64_t>()};
  }
  for (const auto& [item, level] : levels) {
    EXPECT_TRUE(std::find(kItems.begin(), kItems.end(), item) != kItems.end())
        << "stock of unknown item " << item;
  }

  // The invariants every failure scenario checks too (tools/scenario): every
  // order terminal and none acknowledged lost; stock conserved per item; one
  // charge of its sum per OK order, none per NOT OK order; one order per
  // Idempotency-Key and at most one payment and notification record per
  // order; orders.dlq holds exactly the injected records, once each.
  {
    scenario::Observation o;
    for (const auto& r : order_records) o.order_records.push_back(r.value);
    for (const auto& r : payment_records) o.payments.push_back(r.value);
    for (const auto& r : notification_records) o.notifications.push_back(r.value);
    for (const auto& d : dead_letters) o.dead_letters.push_back(d.value);
    for (const auto& bad : injected) o.injected.emplace_back(bad.topic, bad.value);
    for (const auto id : result.ids) o.acknowledged.insert(id);
    for (const auto& [item, level] : levels) o.stock_after[item] = {level.first, level.second};
    o.default_stock = settings.default_stock;
    for (const auto& check : {scenario::CheckAllTerminal(o), scenario::CheckStockConserved(o),
                              scenario::CheckOneChargePerOk(o), scenario::CheckNoDuplicates(o),
                              scenario::CheckDlqExact(o)}) {
      EXPECT_TRUE(check.passed) << check.name << " (" << check.numbers << "):\n" << [&] {
        std::string text;
        for (const auto& problem : check.problems) text += "  " + problem + "\n";
        return text;
      }();
    }
  }

  // Payments: the changelog was checked above; GET /payments must agree with it.
  std::map<core::OrderId, std::vector<core::Payment>> payments_of;
  for (const auto& r : payment_records) payments_of[r.value.order_id].push_back(r.value);
  int charged = 0, declined = 0;
  for (const auto& [id, list] : payments_of) {
    for (const auto& p : list) (p.ok ? charged : declined)++;
  }
  for (size_t i = 0; i < plan.size(); ++i) {
    const auto id = result.ids[i];
    const int status = final_orders[i].is_object() ? final_orders[i].value("status", 0) : 0;
    const auto& rest = payments[i];
    if (status == 3) {
      EXPECT_EQ(rest.status, 200) << "GET /payments/" << id << ": " << rest.body;
      if (rest.status == 200) {
        EXPECT_TRUE(rest.parsed.value("ok", false)) << "GET /payments/" << id << ": " << rest.body;
        EXPECT_EQ(rest.parsed.value("amount", int64_t{-1}), plan[i].sum) << "GET /payments/" << id;
      }
    } else if (status == 4) {
      EXPECT_TRUE(rest.status == 404 || (rest.status == 200 && !rest.parsed.value("ok", true)))
          << "NOT OK order " << id << ": GET /payments/" << id << " answered " << rest.status << " "
          << rest.body;
    }
  }

  // Notifications (checked above): the counts for the summary.
  std::map<core::OrderId, int> notifications_of;
  int notified_ok = 0, notified_failed = 0;
  for (const auto& r : notification_records) {
    ++notifications_of[r.value.order_id];
    (r.value.ok ? notified_ok : notified_failed)++;
  }

  EXPECT_TRUE(h.unexpected_exits().empty()) << [&] {
    std::string s = "services exited although nobody killed them:\n";
    for (const auto& e : h.unexpected_exits()) s += "  " + e + "\n";
    return s;
  }();

  // ---- the counts ----
  std::ostringstream out;
  out << "\n===== crash test summary (seed " << settings.seed << ") =====\n";
  out << Format("%-34s %d (Idempotency-Keys %zu, orders in changelog %zu)\n", "orders sent", settings.orders,
                plan.size(), changelog_orders.size());
  out << Format("%-34s %lld (%lld refused and retried)\n", "POST /neworder attempts",
                static_cast<long long>(result.posts.load()), static_cast<long long>(result.retried.load()));
  for (const auto& [reason, n] : result.refusals)
    out << Format("  refused: %-25s %lld\n", reason.c_str(), static_cast<long long>(n));
  out << Format("%-34s %d / %d (not terminal: %zu)\n", "orders OK / NOT OK", ok, not_ok, stuck.size());
  for (const auto& [reason, n] : not_ok_reasons) out << Format("  NOT OK: %-60s %d\n", reason.c_str(), n);
  std::string saga_text;
  for (const auto& [phase, n] : saga_counts) saga_text += phase + " " + std::to_string(n) + " ";
  out << Format("%-34s %s\n", "sagas (orchestrator)", saga_text.c_str());
  out << Format("%-34s %zu records: %d charged, %d declined; orders with >1 record: %zu\n", "payments",
                payment_records.size(), charged, declined,
                static_cast<size_t>(std::count_if(payments_of.begin(), payments_of.end(),
                                                  [](const auto& p) { return p.second.size() > 1; })));
  out << Format("%-34s %zu records: %d sent, %d failed; orders with >1 record: %zu\n", "notifications",
                notification_records.size(), notified_ok, notified_failed,
                static_cast<size_t>(std::count_if(notifications_of.begin(), notifications_of.end(),
                                                  [](const auto& n) { return n.second > 1; })));
  out << Format("%-34s %8s %10s %10s %10s %12s\n", "stock per item", "item", "initial", "available",
                "reserved", "OK quantity");
  for (const auto item : kItems) {
    const auto level = levels.contains(item) ? levels[item] : std::pair<int64_t, int64_t>{-1, -1};
    out << Format("%-34s %8lld %10lld %10lld %10lld %12lld\n", "", static_cast<long long>(item),
                  static_cast<long long>(settings.default_stock), static_cast<long long>(level.first),
                  static_cast<long long>(level.second), static_cast<long long>(ok_quantity[item]));
  }
  out << Format("%-34s %zu\n", "kills -9", kills.size());
  for (const auto& k : kills) {
    const auto back = k.down_s > 0 ? Format("down %.1f s, ready %.1f s after restart", k.down_s, k.restart_s)
                                   : std::string("not restarted");
    out << Format("  %-14s at t=%6.1f s (%4lld sagas in flight), %s\n", k.what.c_str(), k.at_s,
                  static_cast<long long>(k.in_flight), back.c_str());
  }
  out << Format("%-34s %zu (%zu injected on purpose)\n", "dead letters in orders.dlq", dead_letters.size(),
                injected.size());
  out << Format("%-34s %zu\n", "unexpected service exits", h.unexpected_exits().size());
  out << Format("%-34s load %.1f s, then every order terminal after %.1f s, total %.1f s\n", "elapsed",
                load_seconds, settle_s, h.Elapsed());
  std::cout << out.str() << std::flush;
}

bool HasJars(const fs::path& dir) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".jar") return true;
  }
  return false;
}

/// Stops the load's clients whatever happens (an ASSERT returns early).
struct JoinGuard {
  Load& load;
  std::atomic<bool>& chaos_done;
  bool joined = false;
  ~JoinGuard() {
    if (joined) return;
    load.Stop();
    chaos_done.store(true);
    load.Join();
  }
};

/// Waits until the load has sent every order (watching the services), joins
/// its clients and asserts that every order was accepted.
void FinishLoad(Harness& h, JoinGuard& guard, const std::vector<PlannedOrder>& plan, Clock::time_point load_start) {
  auto& load = guard.load;
  const auto load_limit = Clock::now() + 420s;
  while (!load.done() && Clock::now() < load_limit) h.SleepUntil(Clock::now() + 200ms);
  ASSERT_TRUE(load.done()) << "the load did not finish in time";
  load.Join();
  guard.joined = true;
  auto& result = load.result();
  std::cout << Format("crash test: t=%.1f s load sent in %.1f s: %lld POSTs, %lld refused and retried",
                      Seconds(Clock::now() - load_start), load.seconds(),
                      static_cast<long long>(result.posts.load()),
                      static_cast<long long>(result.retried.load()))
            << std::endl;
  for (size_t i = 0; i < plan.size(); ++i) {
    ASSERT_TRUE(result.errors[i].empty())
        << "order " << i << " (" << plan[i].idempotency_key << ") was not accepted: " << result.errors[i];
  }
}

/// Sagas a running orchestrator has not ended yet (-1 if it does not answer).
int64_t SagasInFlight(const Harness& h) {
  const auto name = h.Live("orchestrator");
  if (name.empty()) return -1;
  auto a = Http(h.port(name), "GET", "/sagas?limit=1", "", {}, 2);
  if (a.status != 200 || !a.parsed.contains("counts")) return -1;
  int64_t n = 0;
  for (const auto& [phase, count] : a.parsed["counts"].items()) {
    if (phase != "ended") n += count.get<int64_t>();
  }
  return n;
}

/// Before a run: prints its settings, checks that the jars and the binary are
/// there, stops brokers left by killed runs, and finds free broker ports (the
/// defaults, or free ones when another run has them; a cluster needs six in a row).
void PrepareRun(Settings& settings) {
  std::cout << "crash test: seed " << settings.seed << " (replay with SAGAFLOW_CRASH_SEED=" << settings.seed
            << "); " << settings.orders << " orders at concurrency " << settings.concurrency
            << ", payment mistakes " << settings.payment_mistakes << "%, default stock "
            << settings.default_stock << " for items 101..104, load spread over " << settings.load_seconds
            << " s, " << settings.kafka_nodes << " broker(s)" << std::endl;

  const auto libs = Harness::KafkaLibs();
  ASSERT_TRUE(HasJars(libs))
      << "no Kafka jars in " << libs.string()
      << ": run deployment/kafka/fetch first ('make test' does), or point SAGAFLOW_KAFKA_LIBS at them";
  ASSERT_TRUE(fs::exists(std::string(SAGAFLOW_BIN_DIR) + "/sagaflow"))
      << "no sagaflow binary in " << SAGAFLOW_BIN_DIR << ": build the 'sagaflow' target";

  StopLeftoverBrokers();
  // Node N of a cluster listens on kafka_port + 2(N-1) and controller_port + 2(N-1).
  auto ports = [&] {
    std::vector<int> out;
    for (int n = 0; n < settings.kafka_nodes; ++n) {
      out.push_back(settings.kafka_port + 2 * n);
      out.push_back(settings.controller_port + 2 * n);
    }
    return out;
  };
  auto any_open = [&] {
    const auto all = ports();
    return std::any_of(all.begin(), all.end(), [](int p) { return PortOpen(p); });
  };
  if (!settings.ports_from_env && any_open()) {
    // Another run of this test (another checkout) has the default ports: take free ones.
    const int wanted = settings.kafka_port;
    for (int attempt = 0; attempt < 20 && any_open(); ++attempt) {
      if (settings.kafka_nodes == 1) {
        settings.kafka_port = FreePort();
        do {
          settings.controller_port = FreePort();
        } while (settings.controller_port == settings.kafka_port);
      } else {
        settings.kafka_port = FreePort();
        settings.controller_port = settings.kafka_port + 1;
      }
    }
    std::cout << "crash test: port " << wanted << " and the next are in use; the broker gets "
              << settings.kafka_port << "/" << settings.controller_port << " instead" << std::endl;
  }
  for (int port : ports()) {
    ASSERT_FALSE(PortOpen(port)) << "port " << port << " is in use: the crash test runs its own broker there "
                                 << "(set SAGAFLOW_CRASH_KAFKA_PORT / SAGAFLOW_CRASH_KAFKA_CONTROLLER_PORT)";
  }
}

/// Starts the broker (or cluster), creates the topics and starts one instance
/// of every service, and waits until each is ready.
void StartSystem(Harness& h) {
  const auto t_broker = Clock::now();
  if (auto e = h.StartBroker(); !e.empty()) FAIL() << e;
  std::cout << Format("crash test: broker ready after %.1f s", Seconds(Clock::now() - t_broker)) << std::endl;
  {
    auto s = kafka::CreateTopics(kafka::KafkaConfig{h.brokers(), {}}, core::TopicNames(h.prefix()).All(kPartitions),
                                 60s);
    ASSERT_TRUE(s.ok()) << s.error().message;
  }
  for (const auto& role : kServices) h.Spawn(role);
  for (const auto& role : kServices) {
    if (auto e = h.WaitReady(role, 120s); !e.empty()) FAIL() << e;
  }
  std::cout << Format("crash test: services ready at t=%.1f s", h.Elapsed()) << std::endl;
}

TEST(CrashTest, KillEveryProcessDuringTheLoadAndTheBrokerAfterIt) {
  Settings settings = Settings::FromEnv();
  std::mt19937_64 rng(settings.seed);
  auto uniform = [&](double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng); };
  PrepareRun(settings);
  if (HasFatalFailure()) return;
  auto plan = PlanOrders(settings, rng);  // the outage probe is appended to it later
  Harness h(settings);
  std::cout << "crash test: working directory " << h.root().string() << ", broker " << h.brokers()
            << ", topic prefix " << h.prefix() << std::endl;

  const kafka::KafkaConfig kafka{h.brokers(), {}};
  const core::TopicNames topics(h.prefix());
  StartSystem(h);
  if (HasFatalFailure()) return;

  // ---- the chaos plan: each service once in random order, the orchestrator once more ----
  std::vector<std::string> victims = kServices;
  std::shuffle(victims.begin(), victims.end(), rng);
  {
    // A second orchestrator kill, not right after the first one.
    const auto first = std::find(victims.begin(), victims.end(), "orchestrator") - victims.begin();
    std::vector<size_t> slots;
    for (size_t at = 0; at <= victims.size(); ++at) {
      if (at != static_cast<size_t>(first) && at != static_cast<size_t>(first) + 1) slots.push_back(at);
    }
    const auto at = slots[std::uniform_int_distribution<size_t>(0, slots.size() - 1)(rng)];
    victims.insert(victims.begin() + static_cast<std::ptrdiff_t>(at), "orchestrator");
  }
  std::map<std::string, std::string> input_topic = {{"order", topics.status},
                                                    {"orchestrator", topics.order},
                                                    {"warehouse", topics.warehouse_reserve},
                                                    {"payment", topics.payment_pay},
                                                    {"notification", topics.notification_send}};

  auto in_flight = [&] { return SagasInFlight(h); };
  std::vector<KillRecord> kills;
  std::vector<Injected> injected;

  std::atomic<bool> chaos_done{false};
  Load load(settings, plan, {h.port("order")}, chaos_done);
  // Stop the load threads whatever happens below (ASSERTs return early).
  JoinGuard join_guard{load, chaos_done};

  const auto load_start = Clock::now();
  load.Start();
  const double slot = settings.load_seconds * 0.85 / static_cast<double>(victims.size());
  for (size_t k = 0; k < victims.size(); ++k) {
    const auto& role = victims[k];
    const double at = static_cast<double>(k) * slot + uniform(0.1, 0.75) * slot;
    auto when =
        std::max(load_start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(at)),
                 Clock::now() + 1s);
    const bool inject =
        std::none_of(injected.begin(), injected.end(), [&](const Injected& i) { return i.service == role; });
    if (inject) {
      // Just before the kill, a malformed record for the victim: its dead
      // letter must be written once, whether or not the kill interrupts it.
      const auto before =
          when - std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(uniform(0, 1.5)));
      h.SleepUntil(before);
      Injected bad{input_topic.at(role), "malformed-" + role,
                   "not a flatbuffer: injected on purpose for " + role + " (seed " +
                       std::to_string(settings.seed) + ")",
                   role};
      if (auto e = Inject(kafka, h.prefix(), bad); !e.empty())
        FAIL() << "injecting a malformed record: " << e;
      injected.push_back(bad);
    }
    h.SleepUntil(when);
    KillRecord record{role, 0, uniform(0.3, 3.0), 0, in_flight()};
    record.at_s = Seconds(Clock::now() - load_start);
    h.Kill(role);
    std::cout << Format(
                     "crash test: t=%.1f s kill -9 %s (%d of %d orders sent, %lld sagas in flight); restart "
                     "in %.1f s",
                     record.at_s, role.c_str(), load.sent(), settings.orders,
                     static_cast<long long>(record.in_flight), record.down_s)
              << std::endl;
    h.SleepUntil(Clock::now() +
                 std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(record.down_s)));
    const auto restart = Clock::now();
    h.Spawn(role);
    if (auto e = h.WaitReady(role, 120s); !e.empty()) FAIL() << "restarting " << role << ": " << e;
    record.restart_s = Seconds(Clock::now() - restart);
    std::cout << Format("crash test: %s ready %.1f s after its restart", role.c_str(), record.restart_s)
              << std::endl;
    kills.push_back(record);
  }
  chaos_done.store(true);

  // ---- the rest of the load ----
  FinishLoad(h, join_guard, plan, load_start);
  if (HasFatalFailure()) return;
  auto& result = load.result();

  // ---- the broker ----
  // Right after the burst that ends the load: sagas are still in flight.
  h.SleepUntil(Clock::now() +
               std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(uniform(0, 0.5))));
  KillRecord broker_kill{"broker", 0, settings.broker_down_seconds, 0, in_flight()};
  broker_kill.at_s = Seconds(Clock::now() - load_start);
  if (auto e = h.KillBroker(); !e.empty()) FAIL() << e;
  std::cout << Format("crash test: t=%.1f s kill -9 the broker (%lld sagas in flight); restart in %.1f s",
                      broker_kill.at_s, static_cast<long long>(broker_kill.in_flight), broker_kill.down_s)
            << std::endl;
  const auto broker_back_at = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                 std::chrono::duration<double>(broker_kill.down_s));
  // While the broker is away, a new order is refused promptly with 503 and a
  // JSON error, not left hanging. The client retries it with the same
  // Idempotency-Key once the broker is back, and it becomes one more order to check.
  PlannedOrder probe = plan.front();
  probe.idempotency_key = "crash-" + std::to_string(settings.seed) + "-outage-probe";
  HttpAnswer probe_answer;
  double probe_seconds = 0;
  if (broker_kill.down_s >= 8) {
    h.SleepUntil(Clock::now() + 3s);
    const auto sent = Clock::now();
    // The client gives up 5 s after the accept timeout: an endpoint that hangs
    // instead of refusing fails the status check below.
    const int probe_deadline_s = static_cast<int>(settings.accept_timeout_ms / 1000) + 5;
    probe_answer = Http(h.port("order"), "POST", "/neworder", probe.body.dump(),
                        {{"Idempotency-Key", probe.idempotency_key}}, probe_deadline_s);
    probe_seconds = Seconds(Clock::now() - sent);
    std::cout << Format("crash test: POST /neworder during the outage: HTTP %d after %.1f s: %s",
                        probe_answer.status, probe_seconds, probe_answer.body.c_str())
              << std::endl;
    EXPECT_EQ(probe_answer.status, 503) << probe_answer.body << probe_answer.error;
    EXPECT_TRUE(probe_answer.parsed.is_object() && probe_answer.parsed.contains("error")) << probe_answer.body;
  }
  h.SleepUntil(broker_back_at);
  const auto broker_restart = Clock::now();
  if (auto e = h.StartBroker(); !e.empty()) FAIL() << "restarting the broker: " << e;
  broker_kill.restart_s = Seconds(Clock::now() - broker_restart);
  kills.push_back(broker_kill);
  std::cout << Format("crash test: broker back after %.1f s", broker_kill.restart_s) << std::endl;

  if (probe_answer.status != 0) {
    core::OrderId probe_id = 0;
    std::string last;
    const auto limit = Clock::now() + 120s;
    while (probe_id == 0 && Clock::now() < limit) {
      auto a = Http(h.port("order"), "POST", "/neworder", probe.body.dump(),
                    {{"Idempotency-Key", probe.idempotency_key}}, 30);
      if (a.status == 200) {
        probe_id = a.parsed.value("order_id", core::OrderId{0});
      } else {
        last = std::to_string(a.status) + " " + a.body + a.error;
        h.SleepUntil(Clock::now() + 500ms);
      }
    }
    ASSERT_NE(probe_id, 0) << "the outage probe was never accepted after the broker came back: " << last;
    plan.push_back(probe);
    result.ids.push_back(probe_id);
    result.errors.emplace_back();
  }

  SettleAndCheck(h, settings, kafka, topics, plan, result, injected, kills, load.seconds());
}

// ---------------------------------------------------------------------------
// Scale-out (ctest label `crash`, each about 2 minutes).

/// POSTs `order` to the order service on `port` until it is accepted, then
/// waits until it is terminal. Returns its id and the seconds from `since` to
/// its end (0 and an error text if that did not happen before `deadline`).
struct Probe {
  core::OrderId id = 0;
  double accepted_s = 0;  // since `since`
  double terminal_s = 0;  // since `since`
  std::string error;
};
Probe ProbeOrder(Harness& h, int port, const PlannedOrder& order, Clock::time_point since,
                 Clock::time_point deadline) {
  Probe p;
  std::string last;
  while (p.id == 0) {
    if (Clock::now() > deadline) {
      p.error = "not accepted in time; last answer: " + last;
      return p;
    }
    auto a = Http(port, "POST", "/neworder", order.body.dump(), {{"Idempotency-Key", order.idempotency_key}}, 30);
    if (a.status == 200) {
      p.id = a.parsed.value("order_id", core::OrderId{0});
    } else {
      last = std::to_string(a.status) + " " + a.body + a.error;
      h.SleepUntil(Clock::now() + 100ms);
    }
  }
  p.accepted_s = Seconds(Clock::now() - since);
  while (true) {
    auto a = Http(port, "GET", "/orders/" + std::to_string(p.id) + "?wait=5", "", {}, 10);
    const int status = a.status == 200 ? a.parsed.value("status", 0) : 0;
    if (status == 3 || status == 4) break;
    if (Clock::now() > deadline) {
      p.error = "order " + std::to_string(p.id) + " not terminal in time: " + a.body + a.error;
      return p;
    }
    h.CheckChildren();
  }
  p.terminal_s = Seconds(Clock::now() - since);
  return p;
}

// One instance of each service takes the load; a second instance of each
// joins mid-load and takes over partitions, restoring their state;
// then one instance of each service, chosen at random, is killed -9 and
// the survivor takes its partitions back. The load's clients send each order
// to whichever order instance accepts its Idempotency-Key.
TEST(ScaleOut, RebalanceUnderLoadAddsASecondInstanceOfEachServiceThenKillsOne) {
  Settings settings = Settings::FromEnv(1200, 40, 19392);
  std::mt19937_64 rng(settings.seed);
  auto uniform = [&](double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng); };
  PrepareRun(settings);
  if (HasFatalFailure()) return;
  auto plan = PlanOrders(settings, rng);
  Harness h(settings);
  std::cout << "crash test: working directory " << h.root().string() << ", broker " << h.brokers()
            << ", topic prefix " << h.prefix() << std::endl;
  const kafka::KafkaConfig kafka{h.brokers(), {}};
  const core::TopicNames topics(h.prefix());
  StartSystem(h);
  if (HasFatalFailure()) return;

  const std::vector<std::string> scaled = {"order", "orchestrator", "warehouse", "payment", "notification"};
  std::map<std::string, std::string> second;  // role -> its second instance (started mid-load)
  for (const auto& role : scaled) second[role] = h.AddInstance(role);

  std::atomic<bool> chaos_done{false};
  Load load(settings, plan, {h.port("order"), h.port(second.at("order"))}, chaos_done);
  JoinGuard join_guard{load, chaos_done};
  const auto load_start = Clock::now();
  auto at = [&](double fraction) {
    return load_start + std::chrono::duration_cast<Clock::duration>(
                            std::chrono::duration<double>(settings.load_seconds * fraction));
  };
  load.Start();

  // ---- scale out: the second instances join ----
  h.SleepUntil(at(uniform(0.2, 0.3)));
  const auto joined = Clock::now();
  const int64_t in_flight_at_join = SagasInFlight(h);
  for (const auto& role : scaled) h.Spawn(second.at(role));
  std::cout << Format("crash test: t=%.1f s second instances of %zu services started (%d of %d orders sent, "
                      "%lld sagas in flight)",
                      Seconds(joined - load_start), scaled.size(), load.sent(), settings.orders,
                      static_cast<long long>(in_flight_at_join))
            << std::endl;
  // Ready: every task of the instance restored its partition's state and processes input.
  std::vector<std::string> joining;
  for (const auto& role : scaled) joining.push_back(second.at(role));
  std::map<std::string, double> ready_after;
  if (auto e = h.WaitAllReady(joining, 120s, &ready_after); !e.empty()) FAIL() << e;
  std::string join_summary;
  for (const auto& role : scaled) {
    join_summary += Format("  %-13s second instance processing its partitions %.1f s after its start\n",
                           role.c_str(), ready_after.at(second.at(role)));
  }
  // The first instances, which gave partitions away, process again too.
  if (auto e = h.WaitAllReady(scaled, 120s, &ready_after); !e.empty()) FAIL() << e;
  std::cout << "crash test: after the scale-out:\n" << join_summary << std::flush;

  // ---- one instance of each scaled service killed -9 ----
  h.SleepUntil(at(uniform(0.55, 0.65)));
  std::vector<std::string> order_of_kills = scaled;
  std::shuffle(order_of_kills.begin(), order_of_kills.end(), rng);
  std::vector<KillRecord> kills;
  for (const auto& role : order_of_kills) {
    const auto instances = h.Instances(role);
    const auto victim = instances[std::uniform_int_distribution<size_t>(0, instances.size() - 1)(rng)];
    KillRecord record{victim, Seconds(Clock::now() - load_start), 0, 0, SagasInFlight(h)};
    h.Kill(victim);
    std::cout << Format("crash test: t=%.1f s kill -9 %s (%d of %d orders sent, %lld sagas in flight); not restarted",
                        record.at_s, victim.c_str(), load.sent(), settings.orders,
                        static_cast<long long>(record.in_flight))
              << std::endl;
    kills.push_back(record);
    h.SleepUntil(Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(uniform(0.2, 1.5))));
  }
  chaos_done.store(true);

  FinishLoad(h, join_guard, plan, load_start);
  if (HasFatalFailure()) return;
  std::cout << "crash test: scale-out\n" << join_summary << std::flush;
  SettleAndCheck(h, settings, kafka, topics, plan, load.result(), {}, kills, load.seconds());
}

// The services on a three-node cluster (replication factor 3,
// min.insync.replicas 2). Mid-load one node, chosen at random, is killed -9;
// an order posted right after must still end (two nodes keep a quorum and an
// in-sync majority); the node is restarted on its data. Every acknowledged
// order (each order of the load is retried until a POST answers 200) ends
// terminal and the invariants hold.
TEST(ScaleOut, ThreeBrokerClusterKeepsEveryAcknowledgedOrderWhenABrokerIsKilled) {
  Settings settings = Settings::FromEnv(1200, 40, 19492);
  settings.kafka_nodes = 3;
  std::mt19937_64 rng(settings.seed);
  auto uniform = [&](double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng); };
  PrepareRun(settings);
  if (HasFatalFailure()) return;
  auto plan = PlanOrders(settings, rng);
  Harness h(settings);
  std::cout << "crash test: working directory " << h.root().string() << ", brokers " << h.brokers()
            << ", topic prefix " << h.prefix() << std::endl;
  const kafka::KafkaConfig kafka{h.brokers(), {}};
  const core::TopicNames topics(h.prefix());
  StartSystem(h);
  if (HasFatalFailure()) return;

  std::atomic<bool> chaos_done{false};
  Load load(settings, plan, {h.port("order")}, chaos_done);
  JoinGuard join_guard{load, chaos_done};
  const auto load_start = Clock::now();
  load.Start();

  // ---- one node killed -9 mid-load ----
  h.SleepUntil(load_start + std::chrono::duration_cast<Clock::duration>(
                                std::chrono::duration<double>(settings.load_seconds * uniform(0.3, 0.45))));
  const int node = std::uniform_int_distribution<int>(1, 3)(rng);
  KillRecord kill{"broker node " + std::to_string(node), 0, uniform(8, 15), 0, SagasInFlight(h)};
  kill.at_s = Seconds(Clock::now() - load_start);
  const auto killed_at = Clock::now();
  if (auto e = h.KillBroker(node); !e.empty()) FAIL() << e;
  std::cout << Format("crash test: t=%.1f s kill -9 broker node %d (%d of %d orders sent, %lld sagas in flight)",
                      kill.at_s, node, load.sent(), settings.orders, static_cast<long long>(kill.in_flight))
            << std::endl;
  // A client's view of the outage: an order posted right after the kill is
  // accepted and ends while the node is down.
  PlannedOrder probe = plan.front();
  probe.idempotency_key = "crash-" + std::to_string(settings.seed) + "-broker-kill-probe";
  const auto probe_result = ProbeOrder(h, h.port("order"), probe, killed_at, killed_at + 90s);
  ASSERT_TRUE(probe_result.error.empty()) << "with two of three nodes up: " << probe_result.error;
  std::cout << Format("crash test: an order posted right after the kill: accepted after %.1f s, ended after %.1f s",
                      probe_result.accepted_s, probe_result.terminal_s)
            << std::endl;
  h.SleepUntil(killed_at + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(kill.down_s)));
  const auto restart = Clock::now();
  if (auto e = h.StartNode(node); !e.empty()) FAIL() << e;
  kill.down_s = Seconds(restart - killed_at);
  kill.restart_s = Seconds(Clock::now() - restart);
  std::cout << Format("crash test: node %d back after %.1f s down, ready %.1f s after its restart", node,
                      kill.down_s, kill.restart_s)
            << std::endl;
  chaos_done.store(true);

  FinishLoad(h, join_guard, plan, load_start);
  if (HasFatalFailure()) return;
  auto& result = load.result();
  plan.push_back(probe);
  result.ids.push_back(probe_result.id);
  result.errors.emplace_back();
  std::cout << Format("crash test: broker kill to the end of an order posted after it: %.1f s (accepted after %.1f s)\n",
                      probe_result.terminal_s, probe_result.accepted_s)
            << std::flush;
  SettleAndCheck(h, settings, kafka, topics, plan, result, {}, {kill}, load.seconds());
}

}  // namespace
}  // namespace sagaflow::crash
