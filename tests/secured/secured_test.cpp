// The secured broker: SASL/SCRAM authentication and per-service ACLs.
//
// Starts a broker of its own with SAGAFLOW_KAFKA_SECURITY=sasl (free ports,
// its own SAGAFLOW_VAR under /tmp/sagaflow-secured-XXXXXX; not the plaintext
// broker of the integration fixture), creates the topics as the admin and the
// services' ACLs with deployment/kafka/acls, runs the five services as
// processes each with its own credentials file, and checks that:
//   - a saga completes (every service can do its part under its ACLs);
//   - a client with a wrong password is refused;
//   - kafka::CheckAccess as the payment service (the check `sagaflow acls
//     check` runs against the Compose stack): a client without credentials is
//     refused, and the payment service's credentials can read its own input
//     but cannot read a topic it does not need, write one it does not own, nor
//     use another service's transactional id.
// The broker and the services are stopped at the end, also on failure.

#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "sagaflow/scenario/process.hpp"
#include "sagaflow/core/kafka/access_check.hpp"
#include "sagaflow/core/kafka/kafka_client.hpp"
#include "sagaflow/core/topics.hpp"
#include "sagaflow/runtime/http_client.hpp"
#include "support/kafka_env.hpp"
#include "support/test_system.hpp"

namespace sagaflow {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using scenario::SpawnSpec;
using nlohmann::json;

const char* const kRoles[] = {"order", "orchestrator", "warehouse", "payment", "notification"};

struct Answer {
  int status = 0;
  json body;
};

Answer Http(int port, const std::string& method, const std::string& path, const std::string& body = "") {
  runtime::HttpClient client("127.0.0.1", port);
  auto res = client.Request(method, path, body, {{"Content-Type", "application/json"}}, 5s);
  if (!res) return {};
  auto parsed = json::parse(res->body, nullptr, false);
  return {res->status, parsed.is_discarded() ? json() : parsed};
}

class SecuredBroker : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sagaflow-secured-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    var_ = root_ / "var";
    kafka_port_ = scenario::FreePort();
    do {
      controller_port_ = scenario::FreePort();
    } while (controller_port_ == kafka_port_);
    brokers_ = "127.0.0.1:" + std::to_string(kafka_port_);
  }

  void TearDown() override {
    for (auto& [role, pid] : pids_) {
      if (pid > 0) scenario::KillAndReap(pid);
    }
    if (broker_started_) {
      std::string out;
      if (Script("kafka/broker", {"stop"}, 120s, &out) != 0) std::cerr << "secured test: 'broker stop' failed:\n" << out;
    }
    if (!HasFailure()) {
      std::error_code ec;
      fs::remove_all(root_, ec);
    } else {
      std::cerr << "secured test: files kept in " << root_ << "\n";
    }
  }

  std::map<std::string, std::string> Env() const {
    std::map<std::string, std::string> env = {
        {"SAGAFLOW_VAR", var_.string()},
        {"SAGAFLOW_KAFKA_PORT", std::to_string(kafka_port_)},
        {"SAGAFLOW_KAFKA_CONTROLLER_PORT", std::to_string(controller_port_)},
        {"SAGAFLOW_KAFKA_SECURITY", "sasl"},
        {"SAGAFLOW_BIN", std::string(SAGAFLOW_BIN_DIR) + "/sagaflow"}};
    if (const char* libs = std::getenv("SAGAFLOW_KAFKA_LIBS"); libs != nullptr && *libs != '\0') {
      env["SAGAFLOW_KAFKA_LIBS"] = libs;
    } else if (const char* var = std::getenv("SAGAFLOW_VAR"); var != nullptr && *var != '\0') {
      env["SAGAFLOW_KAFKA_LIBS"] = fs::absolute(fs::path(var) / "kafka" / "libs").string();
    } else {
      env["SAGAFLOW_KAFKA_LIBS"] = std::string(SAGAFLOW_SOURCE_DIR) + "/var/kafka/libs";
    }
    return env;
  }

  // Runs deployment/<script> ARGS to completion; its output in *out.
  int Script(const std::string& script, const std::vector<std::string>& args, std::chrono::milliseconds timeout,
             std::string* out) {
    const std::string log = (root_ / "scripts.log").string();
    const auto before = fs::exists(log) ? fs::file_size(log) : 0;
    SpawnSpec spec;
    spec.argv = {std::string(SAGAFLOW_SOURCE_DIR) + "/deployment/" + script};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    spec.env = Env();
    spec.log_path = log;
    const int rc = scenario::Run(spec, timeout);
    std::ifstream in(log);
    in.seekg(static_cast<std::streamoff>(before));
    out->assign(std::istreambuf_iterator<char>(in), {});
    return rc;
  }

  std::string Credentials(const std::string& principal) const {
    return (var_ / "credentials" / (principal + ".properties")).string();
  }

  kafka::KafkaConfig ConfigOf(const std::string& principal) const {
    auto props = kafka::LoadKafkaProperties(Credentials(principal));
    EXPECT_TRUE(props.ok()) << props.error().message;
    return {brokers_, props.ok() ? props.value() : std::map<std::string, std::string>{}};
  }

  void StartService(const std::string& role) {
    const int port = scenario::FreePort();
    ports_[role] = port;
    SpawnSpec spec;
    spec.argv = {std::string(SAGAFLOW_BIN_DIR) + "/sagaflow",
                 role,
                 "--brokers",
                 brokers_,
                 "--port",
                 std::to_string(port),
                 "--data-dir",
                 (root_ / role).string(),
                 "--kafka-config-file",
                 Credentials(role)};
    spec.log_path = (root_ / (role + ".log")).string();
    pids_[role] = scenario::Spawn(spec);
  }

  // "" once GET / answers 200, or what went wrong.
  std::string WaitHealthy(const std::string& role, std::chrono::seconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (auto how = scenario::TryReap(pids_[role])) {
        pids_[role] = -1;
        return role + " exited (" + *how + "):\n" + scenario::Tail((root_ / (role + ".log")).string(), 30);
      }
      if (Http(ports_[role], "GET", "/").status == 200) return "";
      std::this_thread::sleep_for(100ms);
    }
    return role + " not healthy within " + std::to_string(timeout.count()) + " s:\n" +
           scenario::Tail((root_ / (role + ".log")).string(), 30);
  }

  fs::path root_, var_;
  int kafka_port_ = 0, controller_port_ = 0;
  std::string brokers_;
  bool broker_started_ = false;
  std::map<std::string, pid_t> pids_;
  std::map<std::string, int> ports_;
};

TEST_F(SecuredBroker, ServicesRunWithTheirCredentialsAndStrangersAreRefused) {
  std::string out;
  broker_started_ = true;
  ASSERT_EQ(Script("kafka/broker", {"start"}, 180s, &out), 0)
      << out << "\n--- broker log ---\n" << scenario::Tail((var_ / "log" / "kafka.log").string(), 40);
  for (const char* principal : {"admin", "order", "orchestrator", "warehouse", "payment", "notification"}) {
    const auto mode = fs::status(Credentials(principal)).permissions();
    EXPECT_EQ(mode & (fs::perms::group_all | fs::perms::others_all), fs::perms::none) << principal;
  }

  // Topics as the admin, then the services' ACLs.
  SpawnSpec create;
  create.argv = {std::string(SAGAFLOW_BIN_DIR) + "/sagaflow", "topics", "create", "--brokers", brokers_,
                 "--kafka-config-file", Credentials("admin")};
  create.log_path = (root_ / "topics.log").string();
  ASSERT_EQ(scenario::Run(create, 90s), 0) << scenario::Tail(create.log_path, 20);
  ASSERT_EQ(Script("kafka/acls", {"apply"}, 120s, &out), 0) << out;

  // A client with a wrong password gets nothing (without credentials: CheckAccess below).
  auto wrong = ConfigOf("payment");
  wrong.overrides["sasl.password"] = "not-the-password";
  auto refused = kafka::WaitForBroker(wrong, 20s);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("refused the credentials"), std::string::npos) << refused.error().message;

  // The five services with their own credentials complete a saga.
  for (const char* role : kRoles) StartService(role);
  for (const char* role : kRoles) ASSERT_EQ(WaitHealthy(role, 90s), "");
  auto placed = Http(ports_["order"], "POST", "/neworder", testing::ReferenceOrder().dump());
  ASSERT_EQ(placed.status, 200) << placed.body.dump();
  const auto id = placed.body.value("order_id", int64_t{0});
  ASSERT_NE(id, 0);
  json order;
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        order = Http(ports_["order"], "GET", "/orders/" + std::to_string(id)).body;
        return order.is_object() && (order.value("status", 0) == 3 || order.value("status", 0) == 4);
      },
      60s))
      << order.dump();
  EXPECT_EQ(order.value("status", 0), 3) << order.dump();  // 3: OK

  // What `sagaflow acls check` checks (deployment/docker/compose runs it against the Compose
  // stack): no client without credentials gets an answer, and the payment service's principal may
  // read its input, but not a topic it does not need, nor write one it does not own (even with a
  // transactional id of its own), nor use another service's transactional id.
  for (const auto& check : kafka::CheckAccess(ConfigOf("payment"), "payment", core::TopicNames(), 15s)) {
    EXPECT_TRUE(check.passed) << check.expectation << ": " << check.observed;
  }
}

// Credentials files with other passwords than the broker's storage was given, and nothing else
// changed: what a fresh clone next to an old Compose volume looks like (the clone makes new files
// on the host; the broker's record of its users lives in the volume). The storage's SCRAM users
// have the old passwords, among them the admin's, with which the broker authenticates to itself
// to write transaction markers. Its start must set the new ones, or every transaction stays
// open: a commit returns but read_committed readers never see it.
TEST_F(SecuredBroker, TransactionsCompleteAfterTheCredentialsChangeOverKeptData) {
  std::string out;
  broker_started_ = true;
  ASSERT_EQ(Script("kafka/broker", {"start"}, 180s, &out), 0) << out;
  ASSERT_EQ(Script("kafka/broker", {"stop"}, 120s, &out), 0) << out;
  for (const char* principal : {"admin", "order", "orchestrator", "warehouse", "payment", "notification"}) {
    auto props = kafka::LoadKafkaProperties(Credentials(principal));
    ASSERT_TRUE(props.ok()) << props.error().message;
    std::ofstream file(Credentials(principal), std::ios::trunc);
    for (auto& [key, value] : props.value()) {
      file << key << "=" << (key == "sasl.password" ? "changed-" + value : value) << "\n";
    }
  }
  ASSERT_EQ(Script("kafka/broker", {"start"}, 180s, &out), 0)
      << out << "\n--- broker log ---\n" << scenario::Tail((var_ / "log" / "kafka.log").string(), 40);
  EXPECT_NE(out.find("setting the SCRAM user 'admin'"), std::string::npos) << out;

  const auto admin = ConfigOf("admin");
  const std::string topic = "credentials-changed";
  ASSERT_TRUE(kafka::CreateTopics(admin, {{topic, 1, false, false}}, 30s).ok());
  auto producer = kafka::TransactionalProducer::Open(admin, "credentials-changed-tx", 30s);
  ASSERT_TRUE(producer.ok()) << producer.error().message;
  std::vector<std::string> seen;
  for (const std::string value : {"first", "second"}) {
    auto& p = *producer.value();
    ASSERT_TRUE(p.Begin().ok());
    ASSERT_TRUE(p.Produce(topic, value, value).ok());
    auto committed = p.Commit();
    ASSERT_TRUE(committed.ok()) << value << ": " << committed.error().message;
    // Visible to read_committed readers once the broker wrote the transaction's marker.
    EXPECT_TRUE(testing::WaitFor(
        [&] {
          seen.clear();
          auto end = kafka::ReadToEnd(admin, topic, {}, [&](const kafka::Record& r) { seen.push_back(r.value); });
          return end.ok() && !seen.empty() && seen.back() == value;
        },
        30s))
        << value << " never became visible to read_committed readers; read: " << seen.size() << " record(s)";
    if (HasFailure()) return;
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"first", "second"}));
}

}  // namespace
}  // namespace sagaflow
