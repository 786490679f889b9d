// How fast `sagaflow replay` reads and folds a big saga history, measured
// with the production code against the real broker:
//   1. read only: every record of orders.saga.events, nothing done with it;
//   2. replay: read, decode and fold every saga with core::Apply (the summary);
//   3. replay --verify: also re-run core::Decide on every recorded input.
// It first writes completed sagas (8 events each, as the orchestrator records
// them) to orders.saga.events under a fresh topic prefix, unless --prefix
// names a prefix written by an earlier run.

#include <CLI/CLI.hpp>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>

#include "sagaflow/core/codec.hpp"
#include "sagaflow/core/kafka/kafka_client.hpp"
#include "sagaflow/core/log.hpp"
#include "sagaflow/core/saga_aggregate.hpp"
#include "sagaflow/replay/replay_command.hpp"
#include "sagaflow/replay/replayer.hpp"
#include "support/completed_saga.hpp"

namespace {

using namespace sagaflow;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

core::Status Write(const kafka::KafkaConfig& config, const core::TopicNames& topics, int64_t events,
                   int32_t partitions, bool one_record_per_event) {
  if (auto s = kafka::CreateTopics(config, {core::TopicSpec{topics.saga_events, partitions, false, true}},
                                   std::chrono::seconds(30));
      !s.ok()) {
    return s;
  }
  auto producer = kafka::TransactionalProducer::Open(config, topics.prefix + "replay-bench", std::chrono::seconds(60));
  if (!producer.ok()) return producer.error();
  auto& p = *producer.value();
  const auto def = core::OrderSagaDefinition();
  const auto now = core::NowMs();
  int64_t written = 0;
  core::OrderId id = 0;
  auto last_report = Clock::now();
  while (written < events) {
    if (auto s = p.Begin(); !s.ok()) return s;
    for (int i = 0; i < 2000 && written < events; ++i) {
      ++id;
      const auto key = core::SagaKey(id);
      auto saga = bench::MakeCompletedSaga(def, id, now);
      if (saga.state.status != core::OrderStatus::kOk) return core::Error{core::Errc::kInternal, "a saga did not end OK"};
      for (auto& decision : saga.decisions) {
        if (written == events) break;
        if (static_cast<int64_t>(decision.size()) > events - written) decision.resize(events - written);
        written += static_cast<int64_t>(decision.size());
        for (auto& payload : bench::DecisionRecords(std::move(decision), one_record_per_event)) {
          const core::Message m{"e", id, "", now, 1, std::move(payload)};
          if (auto s = p.Produce(topics.saga_events, key, core::Encode(m)); !s.ok()) return s;
        }
      }
    }
    auto committed = p.Commit();
    if (!committed.ok()) return committed.error();
    if (Clock::now() - last_report > std::chrono::seconds(2)) {
      std::cerr << "  written " << written << " / " << events << " events\n";
      last_report = Clock::now();
    }
  }
  return core::Status::Ok();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Replay benchmark: read and fold a big orders.saga.events from Kafka"};
  std::string brokers = "127.0.0.1:9092", prefix;
  int64_t events = 1'000'000;
  int32_t partitions = 3;
  int runs = 3;
  app.add_option("--brokers", brokers)->capture_default_str();
  app.add_option("--events", events, "Events to write")->capture_default_str();
  app.add_option("--partitions", partitions)->capture_default_str();
  app.add_option("--prefix", prefix, "Reuse the events of an earlier run under this prefix");
  bool one_record_per_event = false;
  app.add_flag("--one-record-per-event", one_record_per_event,
               "Write each event as a record of its own, as orchestrators wrote them before a decision's events "
               "shared one record");
  app.add_option("--runs", runs, "Timed runs of each kind (the best is reported)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  core::InitLogging("replay-bench", "warn");

  const kafka::KafkaConfig config{brokers, {}};
  if (prefix.empty()) {
    prefix = "replaybench" + std::to_string(core::NowMs()) + ".";
    std::cerr << "writing " << events << " events under prefix " << prefix << "\n";
    const auto started = Clock::now();
    if (auto s = Write(config, core::TopicNames(prefix), events, partitions, one_record_per_event); !s.ok()) {
      std::cerr << "writing failed: " << s.error().message << "\n";
      return 1;
    }
    std::cerr << "written in " << Seconds(Clock::now() - started) << " s\n";
  }
  const core::TopicNames topics(prefix);
  replay::SourceOptions source;
  source.brokers = brokers;
  source.topic_prefix = prefix;

  double read_only = 1e9, replay_s = 1e9, verify_s = 1e9;
  int64_t records = 0, sagas = 0, replayed_events = 0;
  for (int run = 0; run < runs; ++run) {
    auto t0 = Clock::now();
    int64_t n = 0;
    auto read = kafka::ReadBulk(config, topics.saga_events, {},
                                [&](std::span<const kafka::RecordView> batch) { n += static_cast<int64_t>(batch.size()); });
    if (!read.ok()) {
      std::cerr << read.error().message << "\n";
      return 1;
    }
    read_only = std::min(read_only, Seconds(Clock::now() - t0));
    records = n;

    for (bool verify : {false, true}) {
      replay::Replayer replayer(core::OrderSagaDefinition(), {.verify = verify});
      t0 = Clock::now();
      if (auto s = replay::ReadSagaLog(source, replayer); !s.ok()) {
        std::cerr << s.error().message << "\n";
        return 1;
      }
      const double took = Seconds(Clock::now() - t0);
      (verify ? verify_s : replay_s) = std::min(verify ? verify_s : replay_s, took);
      sagas = static_cast<int64_t>(replayer.Sagas().size());
      replayed_events = replayer.totals().events;
      if (replayer.totals().records != records || replayer.totals().undecodable != 0) {
        std::cerr << "replayed " << replayer.totals().records << " records of " << records << " ("
                  << replayer.totals().undecodable << " undecodable)\n";
        return 1;
      }
    }
  }
  nlohmann::json out = {{"prefix", prefix},
                        {"records", records},
                        {"events", replayed_events},
                        {"sagas", sagas},
                        {"read_only_s", read_only},
                        {"replay_s", replay_s},
                        {"replay_verify_s", verify_s},
                        {"replay_events_per_s", static_cast<int64_t>(static_cast<double>(replayed_events) / replay_s)}};
  std::cout << out.dump(2) << "\n";
  return 0;
}
