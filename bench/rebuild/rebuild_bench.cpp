// How long an orchestrator takes to rebuild its sagas, measured with the
// production code (the orchestrator service started in-process) against the
// real broker:
//   1. empty disk, from the snapshots in orders.saga.state (the normal path);
//   2. empty disk, replaying the whole orders.saga.events history (what the
//      snapshots save);
//   3. restart on an intact disk (nothing to catch up).
// It first writes N completed sagas, as the orchestrator would: every event
// to orders.saga.events and each saga's final state to orders.saga.state (one
// record per saga, as after compaction), under a fresh topic prefix.

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "sagaflow/bench/load_driver.hpp"
#include "sagaflow/core/codec.hpp"
#include "sagaflow/core/kafka/kafka_client.hpp"
#include "sagaflow/core/log.hpp"
#include "sagaflow/core/saga_aggregate.hpp"
#include "sagaflow/eventstore/projection_store.hpp"
#include "sagaflow/orchestrator/orchestrator_service.hpp"

namespace {

using namespace sagaflow;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Runs a whole happy-path saga through Decide/Apply and returns the events of
// each decision (one record each, as the orchestrator writes them) and the final state.
std::pair<std::vector<std::vector<core::SagaEvent>>, core::SagaState> CompletedSaga(const core::SagaDefinition& def,
                                                                       core::OrderId id, core::TimeMs now) {
  core::Order order{id, 2, core::PaymentType::kCard, core::NotificationType::kEmail, "", "", 100,
                    {{10, 2, 45}, {15, 1, 10}}};
  core::SagaState state;
  std::vector<std::vector<core::SagaEvent>> events;
  auto feed = [&](const core::SagaInput& input) {
    auto decided = core::Decide(def, state, input, now).events;
    for (const auto& e : decided) state = core::Apply(def, std::move(state), e);
    events.push_back(std::move(decided));
  };
  feed(core::OrderPlaced{order});
  for (auto step : {core::Step::kReserveStock, core::Step::kCharge, core::Step::kNotify}) {
    feed(core::StepReply{step, 1, true, "ok"});
  }
  return {std::move(events), std::move(state)};
}

core::Status Produce(const kafka::KafkaConfig& config, const core::TopicNames& topics, int64_t sagas) {
  auto producer = kafka::TransactionalProducer::Open(config, topics.prefix + "rebuild-bench", std::chrono::seconds(60));
  if (!producer.ok()) return producer.error();
  auto& p = *producer.value();
  const auto def = core::OrderSagaDefinition();
  const auto now = core::NowMs();
  const auto started = Clock::now();
  auto last_report = started;
  constexpr int64_t kPerTransaction = 2000;
  for (int64_t i = 0; i < sagas; i += kPerTransaction) {
    if (auto s = p.Begin(); !s.ok()) return s;
    for (int64_t id = i + 1; id <= std::min(sagas, i + kPerTransaction); ++id) {
      auto [events, state] = CompletedSaga(def, id, now);
      const auto key = core::SagaKey(id);
      for (auto& decision : events) {
        const core::Message m{"e", id, "", now, 1, core::SagaEvents{std::move(decision)}};
        if (auto s = p.Produce(topics.saga_events, key, core::Encode(m)); !s.ok()) return s;
      }
      if (auto s = p.Produce(topics.saga_state, key, core::Encode({"s", id, "", now, 1, state})); !s.ok()) return s;
    }
    auto committed = p.Commit();
    if (!committed.ok()) return committed.error();
    if (Clock::now() - last_report > std::chrono::seconds(2)) {
      std::cerr << "  written " << std::min(sagas, i + kPerTransaction) << " / " << sagas << " sagas\n";
      last_report = Clock::now();
    }
  }
  std::cerr << "  written " << sagas << " sagas in " << Seconds(Clock::now() - started) << " s\n";
  return core::Status::Ok();
}

// Starts an orchestrator on `dir` and returns how long Start() took (the catch-up and rebuild).
core::Result<double> TimeStart(const runtime::ServiceOptions& base, const std::filesystem::path& dir) {
  auto options = base;
  options.data_dir = dir.string();
  auto service = orchestrator::MakeOrchestrator(options, {});
  const auto started = Clock::now();
  auto s = service->Start();
  const double took = Seconds(Clock::now() - started);
  service->Stop();
  if (!s.ok()) return s.error();
  return took;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Measures how long the orchestrator takes to rebuild N completed sagas from Kafka"};
  std::string brokers = "127.0.0.1:9092";
  int64_t sagas = 100'000;
  std::string json_path;
  std::string work_dir = "var/bench/rebuild";
  app.add_option("--brokers", brokers, "Kafka bootstrap servers")->capture_default_str();
  app.add_option("--sagas", sagas, "Completed sagas to write and rebuild")
      ->check(CLI::Range(int64_t{1}, int64_t{10'000'000}))
      ->capture_default_str();
  app.add_option("--json", json_path, "Also write the results as JSON to this file");
  app.add_option("--work-dir", work_dir, "Where the orchestrator data directories go (deleted afterwards)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  core::InitLogging("rebuild-bench", "warn");

  kafka::KafkaConfig config{brokers, {}};
  if (auto s = kafka::WaitForBroker(config, std::chrono::seconds(30)); !s.ok()) {
    std::cerr << "rebuild-bench: " << s.error().message << "\n";
    return 2;
  }
  const std::string prefix = "rebuild" + std::to_string(core::NowMs()) + ".";
  const core::TopicNames topics(prefix);
  if (auto s = kafka::CreateTopics(config, topics.All(3), std::chrono::seconds(30)); !s.ok()) {
    std::cerr << "rebuild-bench: " << s.error().message << "\n";
    return 2;
  }
  std::cerr << "rebuild-bench: writing " << sagas << " completed sagas under topic prefix " << prefix << "\n";
  if (auto s = Produce(config, topics, sagas); !s.ok()) {
    std::cerr << "rebuild-bench: " << s.error().message << "\n";
    return 1;
  }

  runtime::ServiceOptions base;
  base.brokers = brokers;
  base.topic_prefix = prefix;
  base.partitions = 3;
  const std::filesystem::path root = std::filesystem::absolute(work_dir) / prefix;
  std::filesystem::create_directories(root);

  std::cerr << "rebuild-bench: 1/3 empty disk, from snapshots\n";
  auto from_snapshots = TimeStart(base, root / "snapshots");
  std::cerr << "rebuild-bench: 2/3 empty disk, replaying the whole event history\n";
  // Mark the snapshot topic as applied, so the start-up replays orders.saga.events from offset 0.
  auto history_dir = root / "history";
  {
    auto end = kafka::EndOffsets(config, topics.saga_state);
    auto store = eventstore::ProjectionStore::Open(history_dir);
    if (!end.ok() || !store.ok() || !store.value()->Commit({}, end.value()).ok()) {
      std::cerr << "rebuild-bench: cannot prepare the history run\n";
      return 1;
    }
  }
  auto from_history = TimeStart(base, history_dir);
  std::cerr << "rebuild-bench: 3/3 restart on an intact disk\n";
  auto restart = TimeStart(base, root / "snapshots");
  std::filesystem::remove_all(root);

  for (const auto* r : {&from_snapshots, &from_history, &restart}) {
    if (!r->ok()) {
      std::cerr << "rebuild-bench: " << r->error().message << "\n";
      return 1;
    }
  }
  const auto machine = bench::CollectMachineInfo();
  const int64_t events = sagas * 8;
  std::printf("orchestrator rebuild of %lld completed sagas (%lld events)\n", static_cast<long long>(sagas),
              static_cast<long long>(events));
  std::printf("machine: %s, %d cores, %s, %s, %s\n\n", machine.hostname.c_str(), machine.nproc,
              machine.cpu_model.c_str(), machine.kernel.c_str(), machine.date.c_str());
  std::printf("%-44s %10s %14s\n", "start-up", "seconds", "sagas/s");
  auto row = [&](const char* name, double s) { std::printf("%-44s %10.2f %14.0f\n", name, s, sagas / s); };
  row("empty disk, from orders.saga.state snapshots", from_snapshots.value());
  row("empty disk, replaying orders.saga.events", from_history.value());
  row("intact disk (nothing to catch up)", restart.value());
  std::printf("\nsnapshots vs history: %.1fx faster\n", from_history.value() / from_snapshots.value());

  nlohmann::json out = {{"sagas", sagas},
                        {"events", events},
                        {"seconds_from_snapshots", from_snapshots.value()},
                        {"seconds_from_history", from_history.value()},
                        {"seconds_intact_disk", restart.value()},
                        {"machine",
                         {{"hostname", machine.hostname},
                          {"nproc", machine.nproc},
                          {"cpu_model", machine.cpu_model},
                          {"kernel", machine.kernel},
                          {"date", machine.date}}}};
  if (!json_path.empty()) std::ofstream(json_path) << out.dump(2) << "\n";
  std::cout << out.dump() << "\n";
  return 0;
}
