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
#include <thread>

#include "sagaflow/bench/load_driver.hpp"
#include "sagaflow/core/codec.hpp"
#include "sagaflow/core/kafka/kafka_client.hpp"
#include "sagaflow/core/log.hpp"
#include "sagaflow/core/saga_aggregate.hpp"
#include "sagaflow/eventstore/projection_store.hpp"
#include "sagaflow/orchestrator/orchestrator_service.hpp"
#include "support/completed_saga.hpp"

namespace {

using namespace sagaflow;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

constexpr int32_t kPartitions = 3;

core::Status Produce(const kafka::KafkaConfig& config, const core::TopicNames& topics, int64_t sagas,
                     int32_t partitions, bool one_record_per_event) {
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
      auto [decisions, state] = bench::MakeCompletedSaga(def, id, now);
      if (state.status != core::OrderStatus::kOk) return core::Error{core::Errc::kInternal, "a saga did not end OK"};
      const auto key = core::SagaKey(id);
      for (auto& decision : decisions) {
        for (auto& payload : bench::DecisionRecords(std::move(decision), one_record_per_event)) {
          const core::Message m{"e", id, "", now, 1, std::move(payload)};
          if (auto s = p.Produce(topics.saga_events, key, core::Encode(m)); !s.ok()) return s;
        }
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
  // The orchestrator's final snapshots carry a watermark: no saga is in flight from there on in
  // the events partition. Every saga here has ended, so the last snapshot of each partition says
  // the end of its events partition, and a rebuild from snapshots reads no events (as in
  // production, where it reads those of the sagas in flight).
  auto events_end = kafka::EndOffsets(config, topics.saga_events);
  if (!events_end.ok()) return events_end.error();
  if (auto s = p.Begin(); !s.ok()) return s;
  for (int32_t partition = 0; partition < partitions; ++partition) {
    for (int64_t id = sagas; id >= 1; --id) {
      const auto key = core::SagaKey(id);
      if (kafka::PartitionOf(key, partitions) != partition) continue;
      auto state = bench::MakeCompletedSaga(def, id, now).state;
      core::Message m{"s", id, "", now, 1, std::move(state)};
      m.events_watermark = events_end.value()[{topics.saga_events, partition}];
      if (auto s = p.Produce(topics.saga_state, key, core::Encode(m)); !s.ok()) return s;
      break;
    }
  }
  if (auto committed = p.Commit(); !committed.ok()) return committed.error();
  std::cerr << "  written " << sagas << " sagas in " << Seconds(Clock::now() - started) << " s\n";
  return core::Status::Ok();
}

// Starts an orchestrator on `dir` and returns how long it took until every
// task it was assigned had restored its state and processed input (Ready()):
// Start() returns before the tasks restore, on their own threads.
core::Result<double> TimeStart(const runtime::ServiceOptions& base, const std::filesystem::path& dir) {
  auto options = base;
  options.data_dir = dir.string();
  auto service = orchestrator::MakeOrchestrator(options, {});
  const auto started = Clock::now();
  if (auto s = service->Start(); !s.ok()) return s.error();
  const auto deadline = started + std::chrono::minutes(10);
  while (!service->Ready() && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const double took = Seconds(Clock::now() - started);
  const bool ready = service->Ready();
  service->Stop();
  if (!ready) return core::Error{core::Errc::kTimeout, "the orchestrator was not ready after 10 minutes"};
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
  bool one_record_per_event = false;
  app.add_flag("--one-record-per-event", one_record_per_event,
               "Write each event as a record of its own, as orchestrators wrote them before a decision's events "
               "shared one record");
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
  if (auto s = kafka::CreateTopics(config, topics.All(kPartitions), std::chrono::seconds(30)); !s.ok()) {
    std::cerr << "rebuild-bench: " << s.error().message << "\n";
    return 2;
  }
  std::cerr << "rebuild-bench: writing " << sagas << " completed sagas under topic prefix " << prefix << "\n";
  if (auto s = Produce(config, topics, sagas, kPartitions, one_record_per_event); !s.ok()) {
    std::cerr << "rebuild-bench: " << s.error().message << "\n";
    return 1;
  }

  runtime::ServiceOptions base;
  base.brokers = brokers;
  base.topic_prefix = prefix;
  base.partitions = kPartitions;
  const std::filesystem::path root = std::filesystem::absolute(work_dir) / prefix;
  std::filesystem::create_directories(root);

  std::cerr << "rebuild-bench: 1/3 empty disk, from snapshots\n";
  auto from_snapshots = TimeStart(base, root / "snapshots");
  std::cerr << "rebuild-bench: 2/3 empty disk, replaying the whole event history\n";
  // Mark the snapshot topic as applied and the events as applied up to offset 0, so the
  // start-up replays orders.saga.events from its beginning instead of rebuilding from snapshots.
  auto history_dir = root / "history";
  {
    auto end = kafka::EndOffsets(config, topics.saga_state);
    auto store = eventstore::ProjectionStore::Open(history_dir);
    eventstore::OffsetMap applied;
    if (end.ok()) applied = end.value();
    for (int32_t p = 0; p < base.partitions; ++p) applied[{topics.saga_events, p}] = 0;
    if (!end.ok() || !store.ok() || !store.value()->Commit({}, applied).ok()) {
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
  // Every saga written is the same saga under another id.
  const auto sample = bench::MakeCompletedSaga(core::OrderSagaDefinition(), 1, 0);
  int64_t events_per_saga = 0;
  for (const auto& d : sample.decisions) events_per_saga += static_cast<int64_t>(d.size());
  const int64_t events = sagas * events_per_saga;
  const int64_t records = one_record_per_event ? events : sagas * static_cast<int64_t>(sample.decisions.size());
  std::printf("orchestrator rebuild of %lld completed sagas (%lld events in %lld records)\n",
              static_cast<long long>(sagas), static_cast<long long>(events), static_cast<long long>(records));
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
                        {"records", records},
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
