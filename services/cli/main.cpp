// The sagaflow binary: one subcommand per role. This file only parses the
// command line and wires the service libraries together.

#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "sagaflow/bench/load_driver.hpp"
#include "sagaflow/core/kafka/kafka_client.hpp"
#include "sagaflow/core/log.hpp"
#include "sagaflow/notification/notification_service.hpp"
#include "sagaflow/orchestrator/orchestrator_service.hpp"
#include "sagaflow/order/order_service.hpp"
#include "sagaflow/payment/payment_service.hpp"
#include "sagaflow/warehouse/warehouse_service.hpp"

namespace {

using namespace sagaflow;

struct Common {
  runtime::ServiceOptions service;
  std::string log_level = "info";
  std::vector<std::string> kafka_properties;
};

void AddCommon(CLI::App* app, Common& c, int default_port, const std::string& role) {
  app->add_option("--brokers", c.service.brokers, "Kafka bootstrap servers")->capture_default_str();
  app->add_option("--port", c.service.http_port, "HTTP port")->default_val(default_port)->capture_default_str();
  app->add_option("--host", c.service.http_host, "HTTP bind address")->capture_default_str();
  app->add_option("--data-dir", c.service.data_dir, "RocksDB projection directory")
      ->default_val("var/data/" + role)
      ->capture_default_str();
  app->add_option("--topic-prefix", c.service.topic_prefix,
                  "Prefix of every topic, group and transactional id (isolates systems sharing a broker)");
  app->add_option("--instance-id", c.service.instance_id, "Instance id, unique among instances of this role")
      ->capture_default_str();
  app->add_option("--partitions", c.service.partitions, "Partitions of topics this service creates")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app->add_flag("--sync-writes", c.service.sync_writes,
                "fsync RocksDB's WAL on every commit (survive machine crashes, slower)");
  app->add_option("--commit-interval-ms", c.service.commit_interval_ms,
                  "Least time between two transactions of one partition's task; input arriving meanwhile "
                  "joins the batch (more throughput under load, more latency)")
      ->check(CLI::Range(0, 10000))
      ->capture_default_str();
  app->add_option("--kafka-property", c.kafka_properties, "Extra librdkafka property key=value (repeatable)");
  app->add_option("--log-level", c.log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
      ->capture_default_str();
}

void AddParticipant(CLI::App* app, runtime::ParticipantOptions& p, std::vector<int>& delay) {
  app->add_option("--mistakes", p.mistakes, "Percentage of requests failed on purpose (also POST /set)")
      ->check(CLI::Range(0, 100))
      ->capture_default_str();
  app->add_option("--delay-ms", delay,
                  "Simulated processing delay per request: MS or MIN MAX (also POST /set {\"delay_ms\":[MIN,MAX]})")
      ->expected(1, 2)
      ->check(CLI::Range(0, 600000));
}

bool ApplyKafkaProperties(Common& c) {
  for (const auto& kv : c.kafka_properties) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::cerr << "sagaflow: --kafka-property expects key=value, got '" << kv << "'\n";
      return false;
    }
    c.service.kafka_properties[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return true;
}

// Runs a service until SIGINT/SIGTERM or a fatal error.
int Serve(const std::string& role, Common& c, const std::function<std::unique_ptr<runtime::Service>()>& make) {
  if (!ApplyKafkaProperties(c)) return 2;
  core::InitLogging(role, c.log_level);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  // Block the signals in every thread; this one waits for them.
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  auto service = make();
  spdlog::info("starting {} (brokers {}, data {}, port {})", role, c.service.brokers, c.service.data_dir,
               c.service.http_port);
  if (auto s = service->Start(); !s.ok()) {
    spdlog::error("cannot start {}: {}", role, s.error().message);
    return 1;
  }
  spdlog::info("{} ready", role);
  while (!service->Done()) {
    timespec timeout{0, 200'000'000};
    const int sig = sigtimedwait(&signals, nullptr, &timeout);
    if (sig == SIGINT || sig == SIGTERM) {
      spdlog::info("{} received, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
      break;
    }
  }
  const bool failed = service->Done() && !service->Wait().ok();
  service->Stop();
  spdlog::shutdown();
  return failed ? 1 : 0;
}

runtime::ParticipantOptions WithDelay(runtime::ParticipantOptions p, const std::vector<int>& delay) {
  if (!delay.empty()) {
    p.delay_min_ms = delay[0];
    p.delay_max_ms = delay.size() > 1 ? delay[1] : delay[0];
  }
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "sagaflow: an event-sourced order saga over Apache Kafka.\n"
      "Each subcommand runs one role; see 'sagaflow <role> --help'."};
  app.require_subcommand(1);

  Common order_c, orch_c, wh_c, pay_c, notif_c;
  auto* order = app.add_subcommand("order", "REST ingress: POST /neworder, GET /orders/{id}");
  AddCommon(order, order_c, 8281, "order");
  int64_t accept_timeout_ms = 10000;
  order->add_option("--accept-timeout-ms", accept_timeout_ms, "How long POST /neworder waits before answering 503")
      ->check(CLI::Range(100, 600000))
      ->capture_default_str();

  auto* orch = app.add_subcommand("orchestrator", "Drives the order sagas (GET /sagas/{id})");
  AddCommon(orch, orch_c, 8282, "orchestrator");
  core::OrderSagaTimings timings;
  orch->add_option("--step-timeout-ms", timings.deadline_ms, "Deadline of a step's first attempt")
      ->check(CLI::Range(int64_t{50}, int64_t{3'600'000}))
      ->capture_default_str();
  orch->add_option("--max-attempts", timings.max_attempts,
                   "Attempts of reserve and notify before giving up (charge and compensations retry until answered)")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  orch->add_option("--backoff-multiplier", timings.backoff_multiplier, "Each retry waits this much longer")
      ->check(CLI::Range(1.0, 10.0))
      ->capture_default_str();
  orch->add_option("--max-step-timeout-ms", timings.max_deadline_ms, "Cap of a step's deadline")
      ->check(CLI::Range(int64_t{50}, int64_t{86'400'000}))
      ->capture_default_str();

  std::vector<int> wh_delay, pay_delay, notif_delay;
  warehouse::WarehouseOptions wh_o;
  auto* wh = app.add_subcommand("warehouse", "Reserves stock (GET/POST /stock, POST /set)");
  AddCommon(wh, wh_c, 8283, "warehouse");
  AddParticipant(wh, wh_o.participant, wh_delay);
  wh->add_option("--default-stock", wh_o.default_stock, "Stock of an item never seen before")
      ->check(CLI::Range(int64_t{0}, int64_t{1'000'000'000'000}))
      ->capture_default_str();

  runtime::ParticipantOptions pay_o, notif_o;
  auto* pay = app.add_subcommand("payment", "Charges the customer: the pivot (GET /payments/{id}, POST /set)");
  AddCommon(pay, pay_c, 8284, "payment");
  AddParticipant(pay, pay_o, pay_delay);
  auto* notif = app.add_subcommand("notification", "Notifies the customer (GET /notifications/{id}, POST /set)");
  AddCommon(notif, notif_c, 8285, "notification");
  AddParticipant(notif, notif_o, notif_delay);

  auto* topics = app.add_subcommand("topics", "Manage the Kafka topics");
  topics->require_subcommand(1);
  auto* create = topics->add_subcommand("create", "Create every topic that does not exist yet (idempotent)");
  std::string brokers = "127.0.0.1:9092", prefix;
  int32_t partitions = 3;
  create->add_option("--brokers", brokers, "Kafka bootstrap servers")->capture_default_str();
  create->add_option("--topic-prefix", prefix, "Prefix of every topic name");
  create->add_option("--partitions", partitions, "Partitions per topic")->check(CLI::Range(1, 1000))->capture_default_str();

  bench::LoadOptions load;
  std::string bench_json, bench_chart;
  double bench_timeout_s = 60, bench_duration_s = 0;
  auto* bench_cmd = app.add_subcommand(
      "bench", "Drive orders through a running system (loopback only): sagas/s, latency percentiles, CPU per saga");
  bench_cmd->add_option("--order-url", load.order_url, "Order service base URL (127.0.0.1 or localhost)")
      ->capture_default_str();
  auto* bench_orders = bench_cmd->add_option("--orders", load.orders, "Orders to place (default 1000 unless --duration-s)")
      ->check(CLI::Range(int64_t{1}, int64_t{100'000'000}));
  bench_cmd->add_option("--duration-s", bench_duration_s, "Seconds to place orders for (with --orders: whichever ends first)")
      ->check(CLI::Range(0.1, 86'400.0));
  bench_cmd->add_option("--concurrency", load.concurrency, "Closed loop: orders in flight at once")
      ->check(CLI::Range(1, 10'000))
      ->capture_default_str();
  bench_cmd->add_option("--rate", load.rate, "Open loop: orders per second, latency from each order's due time")
      ->check(CLI::Range(0.001, 1'000'000.0));
  bench_cmd->add_option("--connections", load.connections, "Open loop: keep-alive connections that send the orders")
      ->check(CLI::Range(1, 4'096))
      ->capture_default_str();
  bench_cmd->add_option("--timeout-s", bench_timeout_s, "Seconds an order may take before it fails")
      ->check(CLI::Range(0.1, 86'400.0))
      ->capture_default_str();
  bench_cmd->add_option("--json", bench_json, "Also write the results as JSON to FILE");
  bench_cmd->add_option("--chart", bench_chart, "Also draw throughput, latency and CPU over time as SVG to FILE");
  bench_cmd->add_option("--items", load.items, "Distinct item ids (fewer = more contention)")
      ->check(CLI::Range(int64_t{1}, int64_t{1'000'000'000}))
      ->capture_default_str();
  bench_cmd->add_option("--first-item", load.first_item_id, "Lowest item id (ids FIRST..FIRST+ITEMS-1)")
      ->check(CLI::Range(int64_t{0}, int64_t{1'000'000'000'000}))
      ->capture_default_str();
  bench_cmd->add_option("--items-per-order", load.items_per_order, "Distinct items in each order")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  bench_cmd->add_option("--max-quantity", load.max_quantity, "Largest quantity of an item line")
      ->check(CLI::Range(1, 1'000'000))
      ->capture_default_str();
  bench_cmd->add_option("--seed", load.seed, "Seed of the order generator")->capture_default_str();
  bench_cmd->add_flag("--retry", load.retry, "Retry failed POSTs (same Idempotency-Key)");

  CLI11_PARSE(app, argc, argv);

  if (*bench_cmd) {
    load.timeout = std::chrono::milliseconds(static_cast<int64_t>(bench_timeout_s * 1000));
    load.duration = std::chrono::milliseconds(static_cast<int64_t>(bench_duration_s * 1000));
    if (bench_orders->count() == 0) load.orders = load.duration.count() > 0 ? 0 : 1000;
    if (auto error = bench::Validate(load)) return app.exit(CLI::ValidationError(*error));
    return bench::RunBenchCommand(load, bench_json, bench_chart);
  }

  if (*order) {
    return Serve("order", order_c, [&] {
      return order::MakeOrder(order_c.service, {std::chrono::milliseconds(accept_timeout_ms)});
    });
  }
  if (*orch) {
    if (timings.max_deadline_ms < timings.deadline_ms) timings.max_deadline_ms = timings.deadline_ms;
    return Serve("orchestrator", orch_c, [&] { return orchestrator::MakeOrchestrator(orch_c.service, {timings}); });
  }
  if (*wh) {
    wh_o.participant = WithDelay(wh_o.participant, wh_delay);
    return Serve("warehouse", wh_c, [&] { return warehouse::MakeWarehouse(wh_c.service, wh_o); });
  }
  if (*pay) {
    return Serve("payment", pay_c, [&] { return payment::MakePayment(pay_c.service, WithDelay(pay_o, pay_delay)); });
  }
  if (*notif) {
    return Serve("notification", notif_c,
                 [&] { return notification::MakeNotification(notif_c.service, WithDelay(notif_o, notif_delay)); });
  }
  if (*create) {
    core::InitLogging("topics", "info");
    kafka::KafkaConfig config{brokers, {}};
    if (auto s = kafka::WaitForBroker(config, std::chrono::seconds(60)); !s.ok()) {
      spdlog::error("{}", s.error().message);
      return 1;
    }
    auto all = core::TopicNames(prefix).All(partitions);
    if (auto s = kafka::CreateTopics(config, all, std::chrono::seconds(30)); !s.ok()) {
      spdlog::error("{}", s.error().message);
      return 1;
    }
    spdlog::info("{} topics present (partitions {} for new ones)", all.size(), partitions);
    return 0;
  }
  return 0;
}
