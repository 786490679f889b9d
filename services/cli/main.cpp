// The sagaflow binary: one subcommand per role. This file only parses the
// command line and wires the service libraries together.

#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <iostream>
#include <thread>

#include "sagaflow/bench/load_driver.hpp"
#include "sagaflow/core/kafka/access_check.hpp"
#include "sagaflow/core/kafka/kafka_client.hpp"
#include "sagaflow/core/log.hpp"
#include "sagaflow/notification/notification_service.hpp"
#include "sagaflow/orchestrator/orchestrator_service.hpp"
#include "sagaflow/order/order_service.hpp"
#include "sagaflow/payment/payment_service.hpp"
#include "sagaflow/replay/dlq.hpp"
#include "sagaflow/replay/replay_command.hpp"
#include "sagaflow/scenario/runner.hpp"
#include "sagaflow/warehouse/warehouse_service.hpp"

namespace {

using namespace sagaflow;

struct Common {
  runtime::ServiceOptions service;
  std::string log_level = "info";
  std::vector<std::string> kafka_properties;
  std::string kafka_config_file;
};

constexpr const char* kKafkaPropertyHelp =
    "Extra librdkafka property key=value (repeatable; wins over --kafka-config-file)";
constexpr const char* kKafkaConfigFileHelp =
    "File of librdkafka properties, key=value a line, e.g. security.protocol, sasl.mechanism, sasl.username, "
    "sasl.password (mode 0600: it holds a password; deployment/up writes one per service under "
    "$SAGAFLOW_VAR/credentials/)";

// Fills `out` from --kafka-config-file, then --kafka-property; false (after
// one line on stderr naming `command`) when the file or a property is bad.
bool LoadKafkaSettings(const std::string& command, const std::string& file, const std::vector<std::string>& properties,
                       std::map<std::string, std::string>& out) {
  if (!file.empty()) {
    auto loaded = kafka::LoadKafkaProperties(file);
    if (!loaded.ok()) {
      std::cerr << "sagaflow " << command << ": --kafka-config-file: " << loaded.error().message << "\n";
      return false;
    }
    for (auto& [k, v] : loaded.value()) out[k] = v;
  }
  for (const auto& kv : properties) {
    auto parsed = kafka::ParseKafkaProperty(kv);
    if (!parsed.ok()) {
      std::cerr << "sagaflow " << command << ": --kafka-property " << parsed.error().message << "\n";
      return false;
    }
    out[parsed->first] = parsed->second;
  }
  return true;
}

void AddCommon(CLI::App* app, Common& c, int default_port, const std::string& role) {
  app->add_option("--brokers", c.service.brokers, "Kafka bootstrap servers")->capture_default_str();
  app->add_option("--port", c.service.http_port, "HTTP port")->default_val(default_port)->capture_default_str();
  app->add_option("--host", c.service.http_host, "HTTP bind address")->capture_default_str();
  app->add_option("--data-dir", c.service.data_dir, "RocksDB projection directory")
      ->default_val("var/data/" + role)
      ->capture_default_str();
  app->add_option("--topic-prefix", c.service.topic_prefix,
                  "Prefix of every topic, group and transactional id (isolates systems sharing a broker)");
  app->add_option("--instance-id", c.service.instance_id,
                  "Instance id, unique among running instances of this role (it names the instance's "
                  "transactional producer)")
      ->capture_default_str();
  app->add_option("--partitions", c.service.partitions, "Partitions of topics this service creates")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app->add_flag("--sync-writes", c.service.sync_writes,
                "fsync RocksDB's WAL on every commit (survive machine crashes, slower)");
  app->add_option("--commit-interval-ms", c.service.commit_interval_ms,
                  "When input keeps waiting (the service is behind), let a batch fill until this long after "
                  "the previous transaction began: fewer, larger transactions under load. Input reaching an idle "
                  "service is committed at once, except input nobody waits for (the order service's final "
                  "statuses), which waits this long for the next transaction. 0: commit every batch as soon as "
                  "it is handled")
      ->check(CLI::Range(0, 10000))
      ->capture_default_str();
  app->add_flag("--producer-per-task", c.service.producer_per_task,
                "Give each partition's task its own transactional producer and transactions (a task "
                "moves to another instance at once when this one dies, at the cost of one transaction per "
                "task per cycle) instead of one producer and one transaction per cycle for the instance "
                "(partitions of an instance that died without coming back move after the 10 s "
                "transaction timeout)");
  app->add_option("--admin-token-file", c.service.admin_token_file,
                  "File (mode 0600) whose first line is the token admin requests must send as "
                  "'Authorization: Bearer TOKEN' (POST /set, POST /stock); without it they answer 403")
      ->check(CLI::ExistingFile);
  app->add_option("--kafka-property", c.kafka_properties, kKafkaPropertyHelp);
  app->add_option("--kafka-config-file", c.kafka_config_file, kKafkaConfigFileHelp);
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

// Runs a service until SIGINT/SIGTERM or a fatal error.
int Serve(const std::string& role, Common& c, const std::function<std::unique_ptr<runtime::Service>()>& make) {
  if (!LoadKafkaSettings(role, c.kafka_config_file, c.kafka_properties, c.service.kafka_properties)) return 2;
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
  const int code = failed ? 1 : 0;
  // Stop() closed the consumer, the producers and the HTTP server. Releasing
  // librdkafka's handles can still wait for good on a broker thread after the
  // cluster was replaced (seen with librdkafka 2.0 after a wiped broker), and
  // a process that does not exit is not restarted by its supervisor: give the
  // release a deadline, then exit anyway.
  std::promise<void> released;
  auto released_future = released.get_future();
  std::thread([&service, &released] {
    service.reset();
    released.set_value();
  }).detach();
  if (released_future.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    spdlog::warn("{}: releasing the Kafka clients did not finish within 10 s; exiting without it", role);
    spdlog::shutdown();
    std::_Exit(code);
  }
  spdlog::shutdown();
  return code;
}

// The options every reader of the history shares (replay, replay export, dlq).
struct SourceFlags {
  replay::SourceOptions source;
  std::string since;
  std::vector<std::string> kafka_properties;
  std::string kafka_config_file;
  // Off: a problem is reported as one line by the command itself.
  std::string log_level = "off";
};

void AddSource(CLI::App* app, SourceFlags& f, bool with_file, bool with_since) {
  app->add_option("--brokers", f.source.brokers, "Kafka bootstrap servers")->capture_default_str();
  app->add_option("--topic-prefix", f.source.topic_prefix, "Prefix of every topic name");
  if (with_file) {
    app->add_option("--file", f.source.file, "Read an export file ('sagaflow replay export') instead of Kafka");
  }
  if (with_since) {
    app->add_option("--since", f.since,
                    "Only sagas started at or after TIME (2026-11-27T06:00:00Z, ms since the epoch, or 2h ago)");
  }
  app->add_option("--kafka-property", f.kafka_properties, kKafkaPropertyHelp);
  app->add_option("--kafka-config-file", f.kafka_config_file, kKafkaConfigFileHelp);
  app->add_option("--log-level", f.log_level, "Log level of the Kafka client on stderr")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
      ->capture_default_str();
}

// Fills in what the flags say; false (after one line on stderr) when a value is bad.
bool ResolveSource(SourceFlags& f, const char* command) {
  core::InitLogging(command, f.log_level);
  if (!LoadKafkaSettings(command, f.kafka_config_file, f.kafka_properties, f.source.kafka_properties)) return false;
  if (!f.since.empty()) {
    auto since = replay::ParseTime(f.since, core::NowMs());
    if (!since.ok()) {
      std::cerr << "sagaflow " << command << ": --since " << since.error().message << "\n";
      return false;
    }
    f.source.since_ms = since.value();
  }
  f.source.progress = isatty(STDERR_FILENO) != 0;
  return true;
}

void AddTimings(CLI::App* app, core::OrderSagaTimings& timings) {
  app->add_option("--step-timeout-ms", timings.deadline_ms, "Deadline of a step's first attempt")
      ->check(CLI::Range(int64_t{50}, int64_t{3'600'000}))
      ->capture_default_str();
  app->add_option("--max-attempts", timings.max_attempts,
                  "Attempts of reserve and notify before giving up (charge and compensations retry until answered)")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  app->add_option("--backoff-multiplier", timings.backoff_multiplier, "Each retry waits this much longer")
      ->check(CLI::Range(1.0, 10.0))
      ->capture_default_str();
  app->add_option("--max-step-timeout-ms", timings.max_deadline_ms, "Cap of a step's deadline")
      ->check(CLI::Range(int64_t{50}, int64_t{86'400'000}))
      ->capture_default_str();
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
  AddTimings(orch, timings);

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
  std::vector<std::string> create_properties;
  std::string create_config_file;
  create->add_option("--kafka-property", create_properties, kKafkaPropertyHelp);
  create->add_option("--kafka-config-file", create_config_file,
                     std::string(kKafkaConfigFileHelp) + "; on a secured broker, the admin's");

  auto* acls = app.add_subcommand("acls", "The Kafka ACLs of each service's principal");
  acls->require_subcommand(1);
  auto* acls_print = acls->add_subcommand(
      "print",
      "Print every service principal's ACLs, one a line: PRINCIPAL RESOURCE PATTERN NAME OPERATION "
      "(deployment/kafka/acls apply creates them)");
  std::string acls_prefix;
  acls_print->add_option("--topic-prefix", acls_prefix, "Prefix of every topic, group and transactional id");
  auto* acls_check = acls->add_subcommand(
      "check",
      "Check that the broker enforces them, as one service's principal: a client without credentials is refused; "
      "the principal reads its input but not another topic, cannot write a topic it does not own nor use another "
      "service's transactional id. Exit 0 if all hold, 1 if one does not, 2 on bad input");
  std::string check_brokers = "127.0.0.1:9092", check_service, check_config_file;
  std::vector<std::string> check_properties;
  int check_timeout_s = 15;
  acls_check->add_option("--brokers", check_brokers, "Kafka bootstrap servers")->capture_default_str();
  acls_check->add_option("--service", check_service, "The service whose principal is checked")
      ->required()
      ->check(CLI::IsMember({"order", "orchestrator", "warehouse", "payment", "notification"}));
  acls_check->add_option("--kafka-config-file", check_config_file,
                         std::string(kKafkaConfigFileHelp) + "; the service's own")
      ->required();
  acls_check->add_option("--kafka-property", check_properties, kKafkaPropertyHelp);
  acls_check->add_option("--topic-prefix", acls_prefix, "Prefix of every topic, group and transactional id");
  acls_check->add_option("--timeout-s", check_timeout_s, "Bound of each broker call, seconds")
      ->check(CLI::Range(1, 300))
      ->capture_default_str();

  // ---- replay: the saga history ----
  SourceFlags replay_flags;
  replay::ReplayOptions replay_o;
  std::string stuck;
  int64_t replay_saga = 0;
  auto* replay_cmd = app.add_subcommand(
      "replay",
      "Rebuild every saga from orders.saga.events (Kafka or an export file) with the production code: summary, "
      "timelines, --verify");
  replay_cmd->require_subcommand(0, 1);
  AddSource(replay_cmd, replay_flags, true, true);
  replay_cmd->add_option("--saga", replay_saga, "Show the timeline of this saga (order id)");
  replay_cmd->add_option("--state", replay_o.state, "Only sagas in STATE: running, compensating, ended, ok, not_ok")
      ->check(CLI::IsMember({"running", "compensating", "ended", "ok", "not_ok"}));
  replay_cmd->add_option("--stuck", stuck, "Only sagas in flight for longer than AGE (90s, 5m, 2h, 1d)");
  replay_cmd->add_flag("--json", replay_o.json, "JSON lines instead of tables");
  replay_cmd->add_flag("--verify", replay_o.verify,
                       "Re-run today's decide on the recorded inputs and check the invariants (exit 1 on a finding)");
  replay_cmd->add_flag("--participants", replay_o.participants,
                       "With --verify: cross-check the participants' changelogs and the orders (needs --brokers)");
  AddTimings(replay_cmd, replay_o.timings);
  SourceFlags export_flags;
  std::string export_out;
  auto* export_cmd = replay_cmd->add_subcommand("export", "Copy orders.saga.events from Kafka into a checksummed file");
  AddSource(export_cmd, export_flags, false, true);
  export_cmd->add_option("--out", export_out, "The file to write")->required();

  // ---- dlq: dead letters ----
  SourceFlags dlq_flags;
  replay::DlqOptions dlq_o;
  auto* dlq_cmd = app.add_subcommand("dlq", "List, show and re-drive dead letters (orders.dlq)");
  dlq_cmd->require_subcommand(1);
  auto add_dlq_filters = [&](CLI::App* sub) {
    AddSource(sub, dlq_flags, false, false);
    sub->add_option("--reason", dlq_o.reason, "Only dead letters whose reason contains TEXT");
    sub->add_option("--topic", dlq_o.topic, "Only dead letters from this source topic");
    sub->add_flag("--json", dlq_o.json, "JSON lines instead of tables");
  };
  auto* dlq_list = dlq_cmd->add_subcommand("list", "List dead letters: id, time, service, source, key, reason");
  add_dlq_filters(dlq_list);
  std::string dlq_id;
  auto* dlq_show = dlq_cmd->add_subcommand("show", "Show one dead letter, decoded where possible, hex where not");
  add_dlq_filters(dlq_show);
  dlq_show->add_option("id", dlq_id, "PARTITION:OFFSET in orders.dlq (from 'dlq list')")->required();
  std::vector<std::string> redrive_ids;
  bool redrive_all = false;
  auto* dlq_redrive = dlq_cmd->add_subcommand(
      "redrive", "Send dead letters back to their source topic (validated first; each at most once)");
  add_dlq_filters(dlq_redrive);
  dlq_redrive->add_option("ids", redrive_ids, "PARTITION:OFFSET of each dead letter (from 'dlq list')");
  dlq_redrive->add_flag("--all", redrive_all, "Every dead letter that matches --reason/--topic");

  bench::LoadOptions load;
  std::string bench_json, bench_chart;
  double bench_timeout_s = 60, bench_duration_s = 0, bench_warmup_s = 0;
  auto* bench_cmd = app.add_subcommand(
      "bench", "Drive orders through a running system (loopback only): sagas/s, latency percentiles, CPU per saga");
  bench_cmd->add_option("--order-url", load.order_url, "Order service base URL (127.0.0.1 or localhost)")
      ->capture_default_str();
  auto* bench_orders = bench_cmd->add_option("--orders", load.orders, "Orders to place (default 1000 unless --duration-s)")
      ->check(CLI::Range(int64_t{1}, int64_t{100'000'000}));
  bench_cmd->add_option("--duration-s", bench_duration_s, "Seconds to place orders for (with --orders: whichever ends first)")
      ->check(CLI::Range(0.1, 86'400.0));
  bench_cmd->add_option("--warmup-s", bench_warmup_s,
                        "First drive the same load this many seconds and drop its figures (a broker started "
                        "minutes ago costs several times the CPU per saga it costs warm; 60 is a good warm-up)")
      ->capture_default_str();
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

  // ---- scenario: failure scenarios (deployment/scenarios/*.yaml) ----
  scenario::RunOptions scenario_o;
  int scenario_http_base = 0;
  int scenario_controller_port = 0;
  std::string scenario_kafka_config_file;
  std::vector<std::string> scenario_kafka_properties;
  auto* scenario_cmd = app.add_subcommand("scenario", "Failure scenarios: start a system, inject faults, check what survived");
  scenario_cmd->require_subcommand(1);
  auto* scenario_run = scenario_cmd->add_subcommand(
      "run", "Run scenario files (deployment/scenarios/*.yaml); exit 0 all checks passed, 1 a check failed, 2 bad input");
  scenario_run->add_option("files", scenario_o.files, "Scenario files")->required()->check(CLI::ExistingFile);
  scenario_run->add_option("--backend", scenario_o.backend,
                           "local (processes of its own), compose (deployment/docker/compose) or attached (the system "
                           "that runs at --brokers and --http-port-base, e.g. make up; no process control)")
      ->check(CLI::IsMember({"local", "compose", "attached"}))
      ->capture_default_str();
  scenario_run->add_flag("--json", scenario_o.json, "Print the results as JSON on stdout (progress goes to stderr)");
  scenario_run->add_flag("--keep", scenario_o.keep, "Keep every scenario's data and logs (kept anyway when it fails)");
  scenario_run->add_option("--jobs", scenario_o.jobs,
                           "local: scenarios run at once, each job with its own broker, ports (Kafka +10, HTTP +200 "
                           "per job) and var directory (<var-dir>/job-J); lines carry the scenario's name")
      ->check(CLI::Range(1, scenario::kMaxJobs))
      ->capture_default_str();
  scenario_run->add_option("--repo", scenario_o.local.repo_root, "Repository root (default: found from the binary)");
  scenario_run->add_option("--var-dir", scenario_o.local.var_dir,
                           "local: runtime directory (default $SAGAFLOW_VAR/scenarios or <repo>/var/scenarios)");
  scenario_run->add_option("--kafka-port", scenario_o.local.kafka_port, "local: the broker's port")
      ->check(CLI::Range(1, 65535))
      ->capture_default_str();
  scenario_run->add_option("--kafka-controller-port", scenario_controller_port, "local: the controller's port (default: kafka port + 1)")
      ->check(CLI::Range(1, 65535));
  scenario_run->add_option("--http-port-base", scenario_http_base,
                           "The services' ports are BASE+1 (order) .. BASE+5 (notification); default 18480 local, 8280 compose")
      ->check(CLI::Range(1, 65530));
  scenario_run->add_option("--compose-script", scenario_o.compose.script, "compose: the script (default <repo>/deployment/docker/compose)");
  scenario_run->add_option("--brokers", scenario_o.compose.brokers, "compose, attached: the system's broker(s)")
      ->capture_default_str();
  scenario_run->add_option("--topic-prefix", scenario_o.compose.topic_prefix, "compose, attached: the system's topic prefix");
  scenario_run->add_option("--kafka-config-file", scenario_kafka_config_file,
                           std::string("compose, attached: ") + kKafkaConfigFileHelp +
                               "; compose default: the admin's, $SAGAFLOW_CREDENTIALS_DIR/admin.properties "
                               "(default $SAGAFLOW_VAR/credentials or <repo>/var/credentials), which its 'up' writes");
  scenario_run->add_option("--kafka-property", scenario_kafka_properties, kKafkaPropertyHelp);
  scenario_run->add_option("--admin-token-file", scenario_o.compose.admin_token_file,
                           "compose: the services' admin token (default $SAGAFLOW_VAR/admin-token or <repo>/var/admin-token)");

  CLI11_PARSE(app, argc, argv);

  if (*scenario_run) {
    core::InitLogging("scenario", "warn");
    namespace fs = std::filesystem;
    auto& local = scenario_o.local;
    if (local.repo_root.empty()) {
      // build/bin/sagaflow -> the repository; else the current directory.
      std::error_code ec;
      const auto exe = fs::read_symlink("/proc/self/exe", ec);
      const auto from_exe = exe.parent_path().parent_path().parent_path();
      local.repo_root = !ec && fs::exists(from_exe / "deployment" / "kafka" / "broker") ? from_exe.string()
                                                                                          : fs::current_path().string();
    }
    if (!fs::exists(fs::path(local.repo_root) / "deployment" / "kafka" / "broker")) {
      std::cerr << "sagaflow scenario run: " << local.repo_root
                << " is not the sagaflow repository (no deployment/kafka/broker): pass --repo\n";
      return scenario::kExitBadInput;
    }
    const char* var = std::getenv("SAGAFLOW_VAR");
    const fs::path var_root = var != nullptr && *var != '\0' ? fs::path(var) : fs::path(local.repo_root) / "var";
    if (local.var_dir.empty()) local.var_dir = (var_root / "scenarios").string();
    local.sagaflow_binary = fs::read_symlink("/proc/self/exe").string();
    local.kafka_controller_port = scenario_controller_port > 0 ? scenario_controller_port : local.kafka_port + 1;
    if (scenario_http_base > 0) {
      local.http_port_base = scenario_http_base;
      scenario_o.compose.http_port_base = scenario_http_base;
    }
    if (scenario_o.compose.script.empty()) {
      scenario_o.compose.script = (fs::path(local.repo_root) / "deployment" / "docker" / "compose").string();
    }
    if (scenario_o.compose.admin_token_file.empty()) {
      scenario_o.compose.admin_token_file = (var_root / "admin-token").string();
    }
    if (!LoadKafkaSettings("scenario run", scenario_kafka_config_file, scenario_kafka_properties,
                           scenario_o.compose.kafka_properties)) {
      return scenario::kExitBadInput;
    }
    if (scenario_o.backend == "compose" && scenario_kafka_config_file.empty() &&
        scenario_kafka_properties.empty()) {
      // The credentials deployment/docker/compose up writes (it runs before the first scenario).
      const char* dir = std::getenv("SAGAFLOW_CREDENTIALS_DIR");
      scenario_o.compose.admin_credentials_file =
          ((dir != nullptr && *dir != '\0') ? fs::path(dir) : var_root / "credentials") / "admin.properties";
    }
    return scenario::RunScenarios(scenario_o, std::cout, std::cerr);
  }

  if (*bench_cmd) {
    load.timeout = std::chrono::milliseconds(static_cast<int64_t>(bench_timeout_s * 1000));
    load.duration = std::chrono::milliseconds(static_cast<int64_t>(bench_duration_s * 1000));
    load.warmup = std::chrono::milliseconds(static_cast<int64_t>(bench_warmup_s * 1000));
    if (bench_orders->count() == 0) load.orders = load.duration.count() > 0 ? 0 : 1000;
    if (auto error = bench::Validate(load)) return app.exit(CLI::ValidationError(*error));
    return bench::RunBenchCommand(load, bench_json, bench_chart);
  }

  if (*replay_cmd) {
    if (*export_cmd) {
      if (!ResolveSource(export_flags, "replay export")) return replay::kExitBadInput;
      return replay::RunExport(export_flags.source, export_out, std::cout, std::cerr);
    }
    if (!ResolveSource(replay_flags, "replay")) return replay::kExitBadInput;
    replay_o.source = replay_flags.source;
    if (replay_saga != 0) replay_o.saga = replay_saga;
    if (!stuck.empty()) {
      auto age = replay::ParseDuration(stuck);
      if (!age.ok()) {
        std::cerr << "sagaflow replay: --stuck " << age.error().message << "\n";
        return replay::kExitBadInput;
      }
      replay_o.stuck_ms = age.value();
    }
    if (replay_o.participants && !replay_o.verify) {
      std::cerr << "sagaflow replay: --participants goes with --verify\n";
      return replay::kExitBadInput;
    }
    if (replay_o.timings.max_deadline_ms < replay_o.timings.deadline_ms) {
      replay_o.timings.max_deadline_ms = replay_o.timings.deadline_ms;
    }
    return replay::RunReplay(replay_o, std::cout, std::cerr);
  }
  if (*dlq_cmd) {
    if (!ResolveSource(dlq_flags, "dlq")) return replay::kExitBadInput;
    dlq_o.source = dlq_flags.source;
    if (*dlq_list) return replay::RunDlqList(dlq_o, std::cout, std::cerr);
    if (*dlq_show) return replay::RunDlqShow(dlq_o, dlq_id, std::cout, std::cerr);
    return replay::RunDlqRedrive(dlq_o, redrive_ids, redrive_all, std::cout, std::cerr);
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
  if (*acls_print) {
    for (const auto& acl : core::AllAclBindings(core::TopicNames(acls_prefix))) std::cout << core::ToString(acl) << "\n";
    return 0;
  }
  if (*acls_check) {
    core::InitLogging("acls", "off");
    kafka::KafkaConfig config{check_brokers, {}};
    if (!LoadKafkaSettings("acls check", check_config_file, check_properties, config.overrides)) return 2;
    bool all = true;
    for (const auto& check : kafka::CheckAccess(config, check_service, core::TopicNames(acls_prefix),
                                                std::chrono::seconds(check_timeout_s))) {
      std::cout << (check.passed ? "ok      " : "FAILED  ") << check.expectation << ": " << check.observed
                << "\n";
      all = all && check.passed;
    }
    std::cout << (all ? "the broker at " + check_brokers + " enforces the ACLs of User:" + check_service
                      : "the broker at " + check_brokers + " does NOT enforce the ACLs of User:" + check_service)
              << "\n";
    return all ? 0 : 1;
  }
  if (*create) {
    core::InitLogging("topics", "info");
    kafka::KafkaConfig config{brokers, {}};
    if (!LoadKafkaSettings("topics create", create_config_file, create_properties, config.overrides)) return 2;
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
