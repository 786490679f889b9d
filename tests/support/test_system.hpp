#pragma once
/// The whole sagaflow system in one test process: the five services (order,
/// orchestrator, warehouse, payment, notification) started in-process against
/// the test broker, with one unique topic prefix, ephemeral HTTP ports and
/// data directories inside one TempDir, plus REST helpers to drive it.
///
/// Lifecycle: construct with options, call Start() (ASSERT on it), use, and
/// let the destructor stop every service still running. A single service can
/// be stopped (its object is destroyed, releasing its RocksDB), its data
/// directory wiped, and started again as a new instance on the same directory.
///
/// A second instance of a service is named "<service>@<n>" (Instance()): it
/// has its own data directory, HTTP port and instance id, joins the same
/// consumer group, and is started, stopped and called like any service.
///
/// Thread safety: the REST helpers may be called from several threads at
/// once; Start/StopService/StartService/WipeData from the test thread only.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "sagaflow/core/codec.hpp"
#include "sagaflow/core/kafka/kafka_client.hpp"
#include "sagaflow/core/saga_definition.hpp"
#include "sagaflow/core/topics.hpp"
#include "sagaflow/order/order_service.hpp"
#include "sagaflow/runtime/participant.hpp"
#include "sagaflow/runtime/service.hpp"
#include "support/temp_dir.hpp"

namespace sagaflow::testing {

/// How the system under test is configured.
struct TestSystemOptions {
  /// Part of the topic prefix and temp dir name, for finding a test's records and logs.
  std::string name = "system";
  int32_t partitions = 2;
  runtime::ParticipantOptions warehouse;
  runtime::ParticipantOptions payment;
  runtime::ParticipantOptions notification;
  int64_t default_stock = 1'000'000;
  core::OrderSagaTimings timings;
  order::OrderOptions order;
  /// Services run a transactional producer per partition task (--producer-per-task).
  bool producer_per_task = false;
  /// spdlog level while the system runs; "" reads $SAGAFLOW_TEST_LOG_LEVEL, default "warn".
  std::string log_level;
};

/// An HTTP answer: status (0 if the request itself failed), raw body, and the
/// body parsed as JSON (null if it is not JSON).
struct HttpReply {
  int status = 0;
  std::string body;
  nlohmann::json json;
  std::map<std::string, std::string> headers;
  /// The transport error when status == 0.
  std::string error;
};

/// Stock of one item as GET /stock reports it.
struct StockEntry {
  int64_t available = 0;
  int64_t reserved = 0;
  bool operator==(const StockEntry&) const = default;
};

/// One committed record of a topic, decoded (message is nullopt if it does not decode).
struct TopicRecord {
  kafka::Record record;
  std::optional<core::Message> message;
};

/// One HTTP request to 127.0.0.1:`port` (a test failure nowhere: see HttpReply::error).
HttpReply HttpCall(int port, const std::string& method, const std::string& path, const std::string& body = "",
                   const std::string& content_type = "application/json",
                   const std::map<std::string, std::string>& headers = {});

/// The reference system's check-script order.
nlohmann::json ReferenceOrder();

/// See the file comment.
class TestSystem {
 public:
  /// Service names, in start order.
  static const std::vector<std::string>& ServiceNames();

  explicit TestSystem(TestSystemOptions options = {});
  ~TestSystem();
  TestSystem(const TestSystem&) = delete;
  TestSystem& operator=(const TestSystem&) = delete;

  /// Creates the topics and starts all five services (in parallel). Fails
  /// with the first service's error; services that did start keep running
  /// until the destructor.
  core::Status Start();

  /// The name of instance `n` (1, 2, ...) of `service`: "order" for 1, "order@2" for 2.
  static std::string Instance(const std::string& service, int n);

  /// Stops `service` and destroys it (closing its store). No-op if stopped.
  void StopService(const std::string& service);
  /// Starts a new instance of a stopped `service` on the same data directory.
  /// Waits until every task of `service` restored its state and processes input.
  core::Status WaitReady(const std::string& service);
  /// Waits until the running `instances` of one service share all its
  /// partitions between them (each at least one) and every task processes input.
  core::Status WaitBalanced(const std::vector<std::string>& instances);
  core::Status StartService(const std::string& service);
  /// Starts instance `n` (>= 2: Instance(service, n)) of `service` next to the
  /// others, with its own data directory, instance id and HTTP port, in the same
  /// consumer group (the instances share the partitions); waits until it is ready.
  core::Status StartInstance(const std::string& service, int n);
  /// Deletes the data directory of a stopped `service`. Aborts if it runs.
  void WipeData(const std::string& service);
  bool Running(const std::string& service) const;

  // ---- REST ----
  int port(const std::string& service) const;
  HttpReply Get(const std::string& service, const std::string& path) const;
  HttpReply Post(const std::string& service, const std::string& path, const nlohmann::json& body,
                 const std::map<std::string, std::string>& headers = {}) const;
  /// Any method with a raw body (for malformed input).
  HttpReply Request(const std::string& service, const std::string& method, const std::string& path,
                    const std::string& body = "", const std::string& content_type = "application/json",
                    const std::map<std::string, std::string>& headers = {}) const;

  /// POST /neworder; returns the order id, or 0 (and a test failure) if it was refused.
  core::OrderId PlaceOrder(const nlohmann::json& body = ReferenceOrder(), const std::string& idempotency_key = "");
  /// Waits until GET /orders/{id} reports status 3 (OK) or 4 (NOT OK); returns
  /// that order, or (after a test failure) the last answer seen.
  nlohmann::json WaitForFinal(core::OrderId id, std::chrono::milliseconds timeout = std::chrono::seconds(30));
  /// WaitForFinal for several orders with one shared deadline.
  std::vector<nlohmann::json> WaitForAllFinal(const std::vector<core::OrderId>& ids,
                                              std::chrono::milliseconds timeout = std::chrono::seconds(45));

  /// POST /set {"mistakes": percent} on a participant; a test failure if refused.
  void SetMistakes(const std::string& service, int percent);
  /// POST /set {"delay_ms": [min, max]} on a participant.
  void SetDelay(const std::string& service, int min_ms, int max_ms);
  /// GET /stock as item -> (available, reserved); items never touched are absent.
  std::map<core::ItemId, StockEntry> Stock(const std::string& warehouse = "warehouse") const;
  /// A counter or gauge from GET /metrics: the sum of the series of `name`
  /// (without the sagaflow_ prefix) whose labels contain every `label_filters` entry
  /// (e.g. "result=\"ok\"").
  double Metric(const std::string& service, const std::string& name,
                const std::vector<std::string>& label_filters = {}) const;

  /// Every committed record of `topic` (e.g. topics().payment_payments), in
  /// offset order per partition; a test failure if the topic cannot be read.
  std::vector<TopicRecord> ReadTopic(const std::string& topic) const;
  /// ReadTopic grouped by record key (the order id for every saga topic).
  std::map<std::string, std::vector<TopicRecord>> ReadTopicByKey(const std::string& topic) const;

  const std::string& prefix() const { return prefix_; }
  const core::TopicNames& topics() const { return topics_; }
  const kafka::KafkaConfig& kafka() const { return kafka_; }
  const TestSystemOptions& options() const { return options_; }
  /// The admin token the services were started with (Request sends it unless told otherwise).
  const std::string& admin_token() const { return admin_token_; }
  std::string data_dir(const std::string& service) const;

 private:
  std::unique_ptr<runtime::Service> Make(const std::string& instance) const;
  void StopAll();

  TestSystemOptions options_;
  kafka::KafkaConfig kafka_;
  std::string prefix_;
  core::TopicNames topics_;
  TempDir dir_;
  std::string admin_token_;
  std::string admin_token_file_;
  mutable std::mutex mu_;  // guards services_ and ports_
  std::map<std::string, std::unique_ptr<runtime::Service>> services_;
  std::map<std::string, int> ports_;
  spdlog::level::level_enum previous_level_;
};

/// A test fixture owning one TestSystem, named after the running test.
class SystemTest : public ::testing::Test {
 protected:
  /// Starts the system (use with ASSERT_NO_FATAL_FAILURE).
  void Boot(TestSystemOptions options = {});
  std::unique_ptr<TestSystem> system_;
};

/// Stock conservation against the final orders of a test: for every item,
/// available + reserved == default stock + restocked, and reserved == the
/// quantities of the OK orders (`final_orders` as GET /orders/{id} returns them).
/// Items no order touched and nothing restocked need not appear in `stock`.
::testing::AssertionResult StockConserved(const std::map<core::ItemId, StockEntry>& stock, int64_t default_stock,
                                          const std::vector<nlohmann::json>& final_orders,
                                          const std::map<core::ItemId, int64_t>& restocked = {});

}  // namespace sagaflow::testing
