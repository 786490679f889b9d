// `sagaflow replay` and `sagaflow dlq` against the real broker: the reference
// scenarios run through the whole system, then the history is replayed,
// verified against today's code and the participants' own records, exported
// and replayed from the file; a dead letter is re-driven exactly once.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <sstream>
#include <string>
#include <vector>

#include "sagaflow/core/codec.hpp"
#include "sagaflow/core/kafka/kafka_client.hpp"
#include "sagaflow/replay/dlq.hpp"
#include "sagaflow/replay/replay_command.hpp"
#include "support/kafka_env.hpp"
#include "support/temp_dir.hpp"
#include "support/test_system.hpp"

namespace sagaflow::testing {
namespace {

using namespace std::chrono_literals;

struct CommandRun {
  int code = -1;
  std::string out;
  std::string err;
};

class ReplayTest : public SystemTest {
 protected:
  replay::SourceOptions Source() const {
    replay::SourceOptions source;
    source.brokers = system_->kafka().brokers;
    source.topic_prefix = system_->prefix();
    return source;
  }

  CommandRun Replay(replay::ReplayOptions options) {
    if (options.source.file.empty()) {
      options.source.brokers = system_->kafka().brokers;
      options.source.topic_prefix = system_->prefix();
    }
    std::ostringstream out, err;
    CommandRun run;
    run.code = replay::RunReplay(options, out, err);
    run.out = out.str();
    run.err = err.str();
    return run;
  }

  // Runs the reference check script's four orders; returns their ids (OK,
  // notification failed, payment declined, warehouse refused).
  std::vector<core::OrderId> ReferenceScenarios() {
    auto& sys = *system_;
    std::vector<core::OrderId> ids;
    for (const char* service : {"", "notification", "payment", "warehouse"}) {
      if (*service != '\0') sys.SetMistakes(service, 100);
      const auto id = sys.PlaceOrder();
      EXPECT_NE(id, 0);
      const auto final_order = sys.WaitForFinal(id);
      EXPECT_TRUE(final_order.contains("status") &&
                  (final_order["status"] == 3 || final_order["status"] == 4))
          << final_order.dump();
      ids.push_back(id);
    }
    return ids;
  }
};

TEST_F(ReplayTest, ReferenceScenariosVerifyAgainstTheCodeAndTheParticipants) {
  ASSERT_NO_FATAL_FAILURE(Boot());
  const auto ids = ReferenceScenarios();
  ASSERT_EQ(ids.size(), 4u);

  replay::ReplayOptions verify;
  verify.verify = true;
  verify.participants = true;
  const CommandRun run = Replay(verify);
  EXPECT_EQ(run.code, replay::kExitOk) << run.out << run.err;
  EXPECT_NE(run.out.find("verified 4 saga(s)"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("4 agree, 0 diverge; 0 invariant violation(s); participants: 0 mismatch(es) -- OK"),
            std::string::npos)
      << run.out;

  const CommandRun summary = Replay({});
  EXPECT_EQ(summary.code, replay::kExitOk) << summary.err;
  EXPECT_NE(summary.out.find(": 4 saga(s)"), std::string::npos) << summary.out;
  EXPECT_NE(summary.out.find("in flight: 0"), std::string::npos) << summary.out;
  // The declined charge releases the reservation; the refused reservation
  // releases its other leg (the reference order has two items).
  EXPECT_NE(summary.out.find("compensations 2"), std::string::npos) << summary.out;

  // --since: the sagas started at or after a time; none after the last one.
  replay::ReplayOptions later;
  later.source.since_ms = core::NowMs() + 60'000;
  const CommandRun none = Replay(later);
  EXPECT_EQ(none.code, replay::kExitOk) << none.err;
  EXPECT_NE(none.out.find(": 0 saga(s)"), std::string::npos) << none.out;
  replay::ReplayOptions earlier;
  earlier.source.since_ms = core::NowMs() - 3'600'000;
  const CommandRun all = Replay(earlier);
  EXPECT_NE(all.out.find(": 4 saga(s)"), std::string::npos) << all.out;
}

TEST_F(ReplayTest, TimelineShowsTheCompensationOfThePaymentFailure) {
  ASSERT_NO_FATAL_FAILURE(Boot());
  const auto ids = ReferenceScenarios();
  ASSERT_EQ(ids.size(), 4u);
  replay::ReplayOptions timeline;
  timeline.saga = ids[2];
  const CommandRun run = Replay(timeline);
  ASSERT_EQ(run.code, replay::kExitOk) << run.err;
  EXPECT_NE(run.out.find("charge replied NOT OK"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("-> compensate: release_stock"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("[compensation] release_stock requested, attempt 1"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("[compensation] release_stock leg 10 replied OK"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("[compensation] release_stock leg 15 replied OK"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("final: ended NOT OK"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("compensated: release_stock"), std::string::npos) << run.out;

  // The same from an export file, without the broker.
  TempDir dir;
  const std::string file = dir / "history.sgf";
  std::ostringstream out, err;
  ASSERT_EQ(replay::RunExport(Source(), file, out, err), replay::kExitOk) << err.str();
  replay::ReplayOptions from_file;
  from_file.source.file = file;
  from_file.saga = ids[2];
  const CommandRun replayed = Replay(from_file);
  EXPECT_EQ(replayed.code, replay::kExitOk) << replayed.err;
  EXPECT_EQ(replayed.out.substr(0, replayed.out.find("final:")), run.out.substr(0, run.out.find("final:")));
  from_file.saga.reset();
  from_file.verify = true;
  const CommandRun verified = Replay(from_file);
  EXPECT_EQ(verified.code, replay::kExitOk) << verified.out;

  replay::ReplayOptions unknown;
  unknown.saga = 1;
  const CommandRun missing = Replay(unknown);
  EXPECT_EQ(missing.code, replay::kExitBadInput);
  EXPECT_NE(missing.err.find("no saga 1 in the history"), std::string::npos) << missing.err;
}

TEST_F(ReplayTest, AMissingTopicIsOneLine) {
  replay::ReplayOptions options;
  options.source.brokers = TestKafka().brokers;
  options.source.topic_prefix = UniquePrefix("never-created");
  std::ostringstream out, err;
  EXPECT_EQ(replay::RunReplay(options, out, err), replay::kExitBadInput);
  const std::string message = err.str();
  EXPECT_EQ(std::count(message.begin(), message.end(), '\n'), 1) << message;
  EXPECT_NE(message.find("orders.saga.events"), std::string::npos) << message;
}

TEST_F(ReplayTest, ADeadLetterIsRedrivenOnceAndAnInvalidOneIsRefused) {
  ASSERT_NO_FATAL_FAILURE(Boot());
  auto& sys = *system_;
  const auto& topics = sys.topics();
  const core::OrderId id = 4'242'424'242;

  // Dead-letter on purpose: a valid order placement (as a service that had
  // failed to handle it would have), and garbage the orchestrator dead-letters itself.
  core::Order order{.order_id = id, .user_id = 2, .payment = core::PaymentType::kCard,
                    .notification = core::NotificationType::kEmail, .created_at = "2026-01-01T00:00:00Z",
                    .approved_at = "2026-01-01T00:00:00Z", .sum = 100,
                    .items = {core::Item{.item_id = 10, .quantity = 1, .price = 100}}};
  const std::string placed = core::Encode(core::Message{"test-placed", id, "", core::NowMs(), 1, core::OrderPlaced{order}});
  core::Message letter{"test-letter", 0, "", core::NowMs(), 1,
                       core::DeadLetter{"dead-lettered on purpose by the test", topics.order, 0, 0,
                                        core::SagaKey(id), placed, "test"}};
  auto producer = kafka::TransactionalProducer::Open(sys.kafka(), sys.prefix() + "test-injector", 30s);
  ASSERT_TRUE(producer.ok()) << producer.error().message;
  ASSERT_TRUE(producer.value()->Begin().ok());
  ASSERT_TRUE(producer.value()->Produce(topics.dlq, core::SagaKey(id), core::Encode(letter)).ok());
  ASSERT_TRUE(producer.value()->Produce(topics.order, "777", "garbage").ok());
  auto delivered = producer.value()->Commit();
  ASSERT_TRUE(delivered.ok()) << delivered.error().message;
  const std::string letter_id = std::to_string((*delivered)[0].partition) + ":" + std::to_string((*delivered)[0].offset);

  replay::DlqOptions dlq;
  dlq.source = Source();
  std::string listing;
  ASSERT_TRUE(WaitFor(
      [&] {
        std::ostringstream out, err;
        if (replay::RunDlqList(dlq, out, err) != replay::kExitOk) return false;
        listing = out.str();
        return listing.find("2 dead letter(s)") != std::string::npos;
      },
      30s))
      << listing;
  EXPECT_NE(listing.find("dead-lettered on purpose by the test"), std::string::npos) << listing;

  {
    std::ostringstream out, err;
    ASSERT_EQ(replay::RunDlqShow(dlq, letter_id, out, err), replay::kExitOk) << err.str();
    EXPECT_NE(out.str().find("OrderPlaced: order " + std::to_string(id)), std::string::npos) << out.str();
    EXPECT_NE(out.str().find("re-drive: possible"), std::string::npos) << out.str();
  }

  // Every dead letter: the valid one goes back, the garbage is refused.
  {
    std::ostringstream out, err;
    EXPECT_EQ(replay::RunDlqRedrive(dlq, {}, true, out, err), replay::kExitFindings) << err.str();
    EXPECT_NE(out.str().find(letter_id + ": re-driven to " + topics.order), std::string::npos) << out.str();
    EXPECT_NE(out.str().find("1 re-driven, 1 refused, 0 already re-driven"), std::string::npos) << out.str();
  }
  // The orchestrator runs the re-driven saga to its end.
  ASSERT_TRUE(WaitFor(
      [&] {
        auto saga = sys.Get("orchestrator", "/sagas/" + std::to_string(id));
        return saga.status == 200 && saga.json.value("state", "") == "ended";
      },
      30s));

  // A second run re-drives nothing.
  {
    std::ostringstream out, err;
    EXPECT_EQ(replay::RunDlqRedrive(dlq, {letter_id}, false, out, err), replay::kExitOk) << err.str();
    EXPECT_NE(out.str().find(letter_id + ": already re-driven"), std::string::npos) << out.str();
    EXPECT_NE(out.str().find("0 re-driven, 0 refused, 1 already re-driven"), std::string::npos) << out.str();
  }
  int64_t placements = 0;
  for (const auto& record : sys.ReadTopic(topics.order)) placements += record.record.key == core::SagaKey(id);
  EXPECT_EQ(placements, 1);
}

}  // namespace
}  // namespace sagaflow::testing
