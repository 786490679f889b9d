// Restarts and disk loss, with all five services in-process against the real
// broker: an orchestrator stopped in the middle of sagas carries them on when
// it comes back, and a warehouse or orchestrator whose data directory was
// deleted rebuilds the same state from Kafka.

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "sagaflow/core/codec.hpp"
#include "sagaflow/core/kafka/kafka_client.hpp"
#include "sagaflow/core/saga_aggregate.hpp"
#include "support/kafka_env.hpp"
#include "support/test_system.hpp"

namespace sagaflow::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

json OrderWith(std::vector<std::pair<int64_t, int64_t>> items, int64_t sum) {
  json order = ReferenceOrder();
  order["sum"] = sum;
  order["items"] = json::array();
  for (const auto& [id, quantity] : items) order["items"].push_back({{"item_id", id}, {"quantity", quantity}, {"price", 10}});
  return order;
}

class Recovery : public SystemTest {
 protected:

  void Restart(const std::string& service, bool wipe) {
    const auto started = std::chrono::steady_clock::now();
    system_->StopService(service);
    if (wipe) {
      system_->WipeData(service);
      ASSERT_FALSE(std::filesystem::exists(system_->data_dir(service)));
    }
    auto s = system_->StartService(service);
    ASSERT_TRUE(s.ok()) << s.error().message;
    std::printf("%s restarted%s in %lld ms\n", service.c_str(), wipe ? " on an empty disk" : "",
                static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                           std::chrono::steady_clock::now() - started)
                                           .count()));
  }

  // Places orders and waits for all of them to end.
  std::vector<json> Run(const std::vector<json>& orders, std::vector<core::OrderId>& ids) {
    std::vector<core::OrderId> placed;
    for (const auto& o : orders) placed.push_back(system_->PlaceOrder(o));
    ids.insert(ids.end(), placed.begin(), placed.end());
    return system_->WaitForAllFinal(placed);
  }

  // GET /sagas/{id} without the parts a rebuild from snapshots may not have.
  json SagaState(core::OrderId id) {
    auto reply = system_->Get("orchestrator", "/sagas/" + std::to_string(id));
    EXPECT_EQ(reply.status, 200) << "saga " << id << ": " << reply.body << reply.error;
    json state = reply.json;
    if (state.is_object()) state.erase("events");
    if (state.is_object()) state.erase("history_complete");
    return state;
  }

  // The payment changelog holds exactly one payment for each of `ids`, and no other.
  ::testing::AssertionResult ChargedOnceEach(const std::vector<core::OrderId>& ids) {
    auto payments = system_->ReadTopicByKey(system_->topics().payment_payments);
    if (payments.size() != ids.size()) {
      return ::testing::AssertionFailure() << payments.size() << " orders charged, want " << ids.size();
    }
    for (auto id : ids) {
      const auto n = payments[std::to_string(id)].size();
      if (n != 1) return ::testing::AssertionFailure() << "order " << id << " has " << n << " payment record(s)";
    }
    return ::testing::AssertionSuccess();
  }

};

// (a) Sagas waiting on a slow payment when the orchestrator stops: the
// replies that arrive meanwhile are taken up by the next instance.
TEST_F(Recovery, OrchestratorRestartedMidSagaCompletesPendingSagas) {
  ASSERT_NO_FATAL_FAILURE(Boot());
  auto& sys = *system_;
  sys.SetDelay("payment", 1500, 1500);

  std::vector<core::OrderId> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(sys.PlaceOrder(OrderWith({{10 + i, 1}}, 100 + i)));
  for (auto id : ids) ASSERT_NE(id, 0);

  std::string last;
  const bool waiting_on_charge = WaitFor(
      [&] {
        auto running = sys.Get("orchestrator", "/sagas?state=running");
        last = running.body;
        if (running.status != 200 || running.json["counts"].value("running", 0) != 5) return false;
        for (auto id : ids) {
          auto saga = sys.Get("orchestrator", "/sagas/" + std::to_string(id));
          if (!saga.json.contains("pending") || !saga.json["pending"].is_object() ||
              saga.json["pending"]["step"] != "charge") {
            return false;
          }
        }
        return true;
      },
      30s);
  ASSERT_TRUE(waiting_on_charge) << "not all 5 sagas waiting on the charge: " << last;

  ASSERT_NO_FATAL_FAILURE(Restart("orchestrator", /*wipe=*/false));

  auto finals = sys.WaitForAllFinal(ids, 40s);
  for (const auto& order : finals) EXPECT_EQ(order.value("status", 0), 3) << order.dump(2);
  for (auto id : ids) {
    auto payment = sys.Get("payment", "/payments/" + std::to_string(id));
    EXPECT_EQ(payment.status, 200) << payment.body;
    EXPECT_EQ(payment.json.value("ok", false), true) << payment.body;
  }
  // Each order was charged once.
  EXPECT_TRUE(ChargedOnceEach(ids));
  auto ended = sys.Get("orchestrator", "/sagas?state=ended");
  EXPECT_EQ(ended.json["counts"].value("ended", 0), 5) << ended.body;
  EXPECT_EQ(ended.json["counts"].value("running", 0), 0) << ended.body;
  EXPECT_TRUE(StockConserved(sys.Stock(), sys.options().default_stock, finals));
}

// (b) A warehouse that lost its disk rebuilds stock levels and reservations
// (reserved, released, rejected, restocked) exactly, and carries on.
TEST_F(Recovery, WarehouseWithWipedDiskRebuildsIdenticalStockAndReservations) {
  TestSystemOptions options;
  options.default_stock = 50;
  ASSERT_NO_FATAL_FAILURE(Boot(options));
  auto& sys = *system_;
  std::vector<core::OrderId> ids;
  std::vector<json> finals;
  auto add = [&](std::vector<json> more) { finals.insert(finals.end(), more.begin(), more.end()); };

  add(Run({OrderWith({{10, 2}, {15, 1}}, 100), OrderWith({{10, 3}}, 101), OrderWith({{20, 4}, {15, 2}}, 102)}, ids));
  sys.SetMistakes("payment", 100);  // declined: reservations released
  add(Run({OrderWith({{10, 5}}, 200), OrderWith({{20, 1}, {30, 7}}, 201)}, ids));
  sys.SetMistakes("payment", 0);
  sys.SetMistakes("warehouse", 100);  // refused: rejected reservation
  add(Run({OrderWith({{10, 1}}, 300)}, ids));
  sys.SetMistakes("warehouse", 0);
  add(Run({OrderWith({{40, 51}}, 400)}, ids));  // more than there is
  auto restock = sys.Post("warehouse", "/stock", {{"items", {{{"item_id", 10}, {"quantity", 9}}}}});
  ASSERT_EQ(restock.status, 202) << restock.body;  // applied by item 10's owner moments later

  int ok = 0;
  for (const auto& f : finals) ok += f.value("status", 0) == 3;
  ASSERT_EQ(ok, 3) << "expected 3 OK orders of " << finals.size();
  const std::map<core::ItemId, int64_t> restocked{{10, 9}};
  ASSERT_TRUE(WaitFor([&] { return bool(StockConserved(sys.Stock(), 50, finals, restocked)); }, 5s));

  auto stock_before = sys.Get("warehouse", "/stock");
  ASSERT_EQ(stock_before.status, 200);
  ASSERT_EQ(stock_before.json["items"].size(), 4u) << stock_before.body;
  std::map<core::OrderId, json> reservations_before;
  std::map<std::string, int> states;
  for (auto id : ids) {
    auto r = sys.Get("warehouse", "/reservations/" + std::to_string(id));
    ASSERT_EQ(r.status, 200) << r.body;
    reservations_before[id] = r.json;
    ++states[r.json["state"].get<std::string>()];
  }
  EXPECT_EQ(states, (std::map<std::string, int>{{"reserved", 3}, {"released", 2}, {"rejected", 2}}));

  ASSERT_NO_FATAL_FAILURE(Restart("warehouse", /*wipe=*/true));

  auto stock_after = sys.Get("warehouse", "/stock");
  EXPECT_EQ(stock_after.json, stock_before.json);
  for (auto id : ids) {
    auto r = sys.Get("warehouse", "/reservations/" + std::to_string(id));
    EXPECT_EQ(r.json, reservations_before[id]) << "order " << id;
  }

  // It carries on from the rebuilt state: a new order reserves from it, and an
  // old order's compensation (none pending here) cannot double-release.
  add(Run({OrderWith({{10, 2}}, 500)}, ids));
  EXPECT_EQ(finals.back().value("status", 0), 3) << finals.back().dump(2);
  EXPECT_TRUE(WaitFor([&] { return bool(StockConserved(sys.Stock(), 50, finals, restocked)); }, 5s));
  EXPECT_TRUE(StockConserved(sys.Stock(), 50, finals, restocked));
}

// (c) An orchestrator that lost its disk rebuilds every saga from Kafka:
// ended sagas read the same, and sagas in flight when it stopped complete.
TEST_F(Recovery, OrchestratorWithWipedDiskRebuildsSagasAndCarriesOnRunningOnes) {
  ASSERT_NO_FATAL_FAILURE(Boot());
  auto& sys = *system_;
  std::vector<core::OrderId> ended_ids;
  auto finals = Run({ReferenceOrder(), OrderWith({{11, 1}}, 50)}, ended_ids);
  sys.SetMistakes("payment", 100);
  auto declined = Run({OrderWith({{12, 3}}, 60)}, ended_ids);
  finals.insert(finals.end(), declined.begin(), declined.end());
  sys.SetMistakes("payment", 0);
  sys.SetMistakes("notification", 100);
  auto unnotified = Run({OrderWith({{13, 1}}, 70)}, ended_ids);
  finals.insert(finals.end(), unnotified.begin(), unnotified.end());
  sys.SetMistakes("notification", 0);

  std::map<core::OrderId, json> before;
  for (auto id : ended_ids) before[id] = SagaState(id);
  auto list_before = sys.Get("orchestrator", "/sagas");

  // Two more sagas, stuck on a slow payment when the orchestrator goes away.
  sys.SetDelay("payment", 1500, 1500);
  std::vector<core::OrderId> running{sys.PlaceOrder(OrderWith({{14, 1}}, 80)), sys.PlaceOrder(OrderWith({{14, 2}}, 81))};
  ASSERT_TRUE(WaitFor(
      [&] {
        for (auto id : running) {
          auto saga = sys.Get("orchestrator", "/sagas/" + std::to_string(id));
          if (!saga.json.contains("pending") || !saga.json["pending"].is_object() ||
              saga.json["pending"]["step"] != "charge") {
            return false;
          }
        }
        return true;
      },
      30s));

  ASSERT_NO_FATAL_FAILURE(Restart("orchestrator", /*wipe=*/true));

  for (auto id : ended_ids) EXPECT_EQ(SagaState(id), before[id]) << "saga " << id;
  auto running_finals = sys.WaitForAllFinal(running, 40s);
  for (const auto& order : running_finals) EXPECT_EQ(order.value("status", 0), 3) << order.dump(2);
  finals.insert(finals.end(), running_finals.begin(), running_finals.end());
  auto list_after = sys.Get("orchestrator", "/sagas?state=ended");
  EXPECT_EQ(list_after.json["counts"].value("ended", 0), 6) << list_after.body;
  EXPECT_EQ(list_before.json["counts"].value("ended", 0), 4) << list_before.body;
  std::vector<core::OrderId> all = ended_ids;
  all.insert(all.end(), running.begin(), running.end());
  EXPECT_TRUE(ChargedOnceEach(all));
  EXPECT_TRUE(WaitFor([&] { return bool(StockConserved(sys.Stock(), sys.options().default_stock, finals)); }, 5s));
  EXPECT_TRUE(StockConserved(sys.Stock(), sys.options().default_stock, finals));
}

// (c, history) GET /sagas/{id} lists the same events after a rebuild from an empty disk.
// A wiped orchestrator rebuilds from the snapshots, not from the whole event
// history: the saga's state and step history survive, the event list does not,
// and the API says so instead of showing a partial list as if it were complete.
TEST_F(Recovery, OrchestratorWithWipedDiskSaysItsEventListStartsAtTheRebuild) {
  ASSERT_NO_FATAL_FAILURE(Boot());
  auto& sys = *system_;
  std::vector<core::OrderId> ids;
  (void)Run({ReferenceOrder()}, ids);
  sys.SetMistakes("payment", 100);
  (void)Run({ReferenceOrder()}, ids);

  std::map<core::OrderId, json> before;
  for (auto id : ids) {
    auto saga = sys.Get("orchestrator", "/sagas/" + std::to_string(id));
    ASSERT_EQ(saga.status, 200) << saga.body;
    ASSERT_FALSE(saga.json["events"].empty()) << saga.body;
    EXPECT_TRUE(saga.json["history_complete"].get<bool>()) << saga.body;
    before[id] = saga.json;
  }

  ASSERT_NO_FATAL_FAILURE(Restart("orchestrator", /*wipe=*/true));

  for (auto id : ids) {
    auto saga = sys.Get("orchestrator", "/sagas/" + std::to_string(id));
    ASSERT_EQ(saga.status, 200) << saga.body;
    EXPECT_FALSE(saga.json["history_complete"].get<bool>()) << saga.body;
    EXPECT_TRUE(saga.json["events"].empty()) << saga.body;
    for (const char* field : {"state", "status", "detail", "steps", "order", "started_at", "ended_at"}) {
      EXPECT_EQ(saga.json[field], before[id][field]) << "saga " << id << " field " << field;
    }
  }
}

// The orchestrator records a decision's events as one record, and reads the
// log earlier versions wrote, one SagaEvent per record: from the stored
// offsets on a restart, and from the events topic on an empty disk.
TEST_F(Recovery, OrchestratorWritesADecisionAsOneRecordAndReadsTheOneEventPerRecordLog) {
  ASSERT_NO_FATAL_FAILURE(Boot());
  auto& sys = *system_;
  std::vector<core::OrderId> ids;
  const auto finals = Run({OrderWith({{10, 1}}, 10)}, ids);
  ASSERT_EQ(finals.front().value("status", 0), 3) << finals.front().dump(2);
  const core::OrderId id = ids.front();

  // Four decisions (placed, reserved, charged, notified), eight events.
  auto records = sys.ReadTopicByKey(sys.topics().saga_events)[core::SagaKey(id)];
  ASSERT_EQ(records.size(), 4u);
  size_t written = 0;
  for (const auto& r : records) {
    ASSERT_TRUE(r.message.has_value());
    ASSERT_TRUE(std::holds_alternative<core::SagaEvents>(r.message->payload)) << core::PayloadName(r.message->payload);
    written += core::SagaEventsOf(r.message->payload).size();
  }
  EXPECT_EQ(written, 8u);
  auto saga = sys.Get("orchestrator", "/sagas/" + std::to_string(id));
  EXPECT_EQ(saga.json["events"].size(), 8u) << saga.body;
  EXPECT_TRUE(saga.json.value("history_complete", false)) << saga.body;

  // While the orchestrator is down, a saga's whole history as an earlier version wrote it.
  sys.StopService("orchestrator");
  const core::OrderId old_id = 900'001;
  const core::SagaDefinition def = core::OrderSagaDefinition();
  core::SagaState state;
  std::vector<core::SagaEvent> history;
  auto feed = [&](const core::SagaInput& input) {
    for (const auto& e : core::Decide(def, state, input, core::NowMs()).events) {
      state = core::Apply(def, std::move(state), e);
      history.push_back(e);
    }
  };
  auto reply = [&](core::Step step) {
    core::LegKey leg = core::kNoLeg;
    for (const auto& l : state.legs) {
      if (l.step == step && l.status == core::LegStatus::kAwaited) leg = l.leg;
    }
    feed(core::StepReply{step, state.pending ? state.pending->attempt : 1, true, "", leg});
  };
  feed(core::OrderPlaced{core::Order{.order_id = old_id, .user_id = 7, .sum = 10, .items = {{10, 1, 10}}}});
  reply(core::Step::kReserveStock);
  reply(core::Step::kCharge);
  reply(core::Step::kNotify);
  ASSERT_EQ(state.phase, core::SagaPhase::kEnded);
  ASSERT_EQ(history.size(), 8u);
  {
    auto producer = kafka::TransactionalProducer::Open(sys.kafka(), sys.prefix() + "earlier-orchestrator", 30s);
    ASSERT_TRUE(producer.ok()) << producer.error().message;
    ASSERT_TRUE(producer.value()->Begin().ok());
    for (const auto& e : history) {
      const core::Message m{"ev-" + std::to_string(e.at_ms), old_id, "", e.at_ms, 1, e};
      ASSERT_TRUE(producer.value()->Produce(sys.topics().saga_events, core::SagaKey(old_id), core::Encode(m)).ok());
    }
    auto committed = producer.value()->Commit();
    ASSERT_TRUE(committed.ok()) << committed.error().message;
  }

  auto expect_old_saga = [&](bool wiped) {
    SCOPED_TRACE(wiped ? "rebuilt on an empty disk" : "restored from the stored offsets");
    auto old = sys.Get("orchestrator", "/sagas/" + std::to_string(old_id));
    ASSERT_EQ(old.status, 200) << old.body;
    EXPECT_EQ(old.json.value("state", ""), "ended") << old.body;
    EXPECT_EQ(old.json.value("status_text", ""), core::ToString(core::OrderStatus::kOk)) << old.body;
    EXPECT_EQ(old.json["events"].size(), 8u) << old.body;
    EXPECT_TRUE(old.json.value("history_complete", false)) << old.body;
  };
  auto s = sys.StartService("orchestrator");
  ASSERT_TRUE(s.ok()) << s.error().message;
  expect_old_saga(false);
  EXPECT_EQ(sys.Get("orchestrator", "/sagas/" + std::to_string(id)).json["events"].size(), 8u);

  ASSERT_NO_FATAL_FAILURE(Restart("orchestrator", /*wipe=*/true));
  expect_old_saga(true);
  auto rebuilt = sys.Get("orchestrator", "/sagas/" + std::to_string(id));
  EXPECT_EQ(rebuilt.json.value("state", ""), "ended") << rebuilt.body;
}

}  // namespace
}  // namespace sagaflow::testing
