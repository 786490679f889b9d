// The order saga end to end: all five services in-process against the real
// broker, driven over their REST APIs. Covers the reference system's check
// script, stock limits and restocks, idempotent order submission, a mixed load
// with injected payment failures, dead-lettering of malformed records, and
// the 4xx answers to bad HTTP input.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "sagaflow/core/codec.hpp"
#include "sagaflow/core/kafka/kafka_client.hpp"
#include "support/kafka_env.hpp"
#include "support/test_system.hpp"

namespace sagaflow::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using StepResult = std::pair<std::string, std::string>;  // (step, "OK" / "NOT OK")

std::vector<StepResult> Steps(const json& order) {
  std::vector<StepResult> out;
  if (!order.contains("steps")) return out;
  for (const auto& s : order["steps"]) out.emplace_back(s["step"].get<std::string>(), s["result"].get<std::string>());
  return out;
}

std::string Detail(const json& j) { return j.contains("detail") ? j["detail"].get<std::string>() : ""; }

json OrderWith(std::vector<std::pair<int64_t, int64_t>> items, int64_t sum = 10000) {
  json order = ReferenceOrder();
  order["sum"] = sum;
  order["items"] = json::array();
  for (const auto& [id, quantity] : items) order["items"].push_back({{"item_id", id}, {"quantity", quantity}, {"price", 10}});
  return order;
}

// Every 4xx of the REST edge is {"error": "<message>", "status": <code>}.
::testing::AssertionResult IsJsonError(const HttpReply& reply, int status) {
  if (reply.status != status) {
    return ::testing::AssertionFailure() << "status " << reply.status << " (want " << status << "): " << reply.body
                                         << reply.error;
  }
  if (!reply.json.is_object() || !reply.json.contains("error") || !reply.json["error"].is_string() ||
      reply.json["error"].get<std::string>().empty() || reply.json.value("status", 0) != status) {
    return ::testing::AssertionFailure() << "not a JSON error: " << reply.body;
  }
  return ::testing::AssertionSuccess() << reply.json["error"].get<std::string>();
}

class SagaScenarios : public SystemTest {
 protected:

  // GET /stock may trail the final status by the warehouse's local commit: wait briefly for it.
  ::testing::AssertionResult Conserved(const std::vector<json>& finals,
                                       const std::map<core::ItemId, int64_t>& restocked = {}) {
    const auto default_stock = system_->options().default_stock;
    WaitFor([&] { return bool(StockConserved(system_->Stock(), default_stock, finals, restocked)); }, 5s);
    return StockConserved(system_->Stock(), default_stock, finals, restocked);
  }

};

// The reference's check script: four orders, mistakes set one after the other
// and left set, exactly as deployment/check.sh does.
TEST_F(SagaScenarios, ReferenceCheckScriptOutcomes) {
  ASSERT_NO_FATAL_FAILURE(Boot());
  auto& sys = *system_;
  std::vector<json> finals;

  // 1. No mistakes: OK, every step OK.
  const auto ok_id = sys.PlaceOrder();
  ASSERT_NE(ok_id, 0);
  auto ok = sys.WaitForFinal(ok_id);
  finals.push_back(ok);
  ASSERT_EQ(ok["status"], 3) << ok.dump(2);
  EXPECT_EQ(ok["status_text"], "OK");
  EXPECT_EQ(Detail(ok), "");
  // The reservation fans out one leg per item (10 and 15): one step record each.
  EXPECT_EQ(Steps(ok), (std::vector<StepResult>{{"reserve_stock", "OK"}, {"reserve_stock", "OK"}, {"charge", "OK"}, {"notify", "OK"}}));
  ASSERT_EQ(ok["steps"].size(), 4u);
  EXPECT_EQ(ok["steps"][0]["service"], "warehouse");
  EXPECT_EQ(ok["steps"][1]["service"], "warehouse");
  EXPECT_EQ((std::set<int64_t>{ok["steps"][0].value("item_id", -1), ok["steps"][1].value("item_id", -1)}),
            (std::set<int64_t>{10, 15}));
  EXPECT_EQ(ok["steps"][2]["service"], "payment");
  EXPECT_EQ(ok["steps"][3]["service"], "notification");
  for (const auto& s : ok["steps"]) EXPECT_FALSE(s["time"].get<std::string>().empty());
  auto payment = sys.Get("payment", "/payments/" + std::to_string(ok_id));
  ASSERT_EQ(payment.status, 200) << payment.body;
  EXPECT_EQ(payment.json["ok"], true);
  EXPECT_EQ(payment.json["amount"], 10000);
  auto reservation = sys.Get("warehouse", "/reservations/" + std::to_string(ok_id));
  ASSERT_EQ(reservation.status, 200) << reservation.body;
  EXPECT_EQ(reservation.json["state"], "reserved");
  auto notified = sys.Get("notification", "/notifications/" + std::to_string(ok_id));
  ASSERT_EQ(notified.status, 200) << notified.body;
  EXPECT_EQ(notified.json["ok"], true);

  // 2. notification mistakes=100: still OK, the failed notification in the detail.
  sys.SetMistakes("notification", 100);
  const auto notify_id = sys.PlaceOrder();
  ASSERT_NE(notify_id, 0);
  auto notify = sys.WaitForFinal(notify_id);
  finals.push_back(notify);
  ASSERT_EQ(notify["status"], 3) << notify.dump(2);
  EXPECT_NE(Detail(notify).find("notify"), std::string::npos) << Detail(notify);
  EXPECT_EQ(Steps(notify),
            (std::vector<StepResult>{{"reserve_stock", "OK"}, {"reserve_stock", "OK"}, {"charge", "OK"}, {"notify", "NOT OK"}}));
  notified = sys.Get("notification", "/notifications/" + std::to_string(notify_id));
  ASSERT_EQ(notified.status, 200) << notified.body;
  EXPECT_EQ(notified.json["ok"], false);

  // 3. payment mistakes=100: the charge is declined, the reservation released, NOT OK.
  sys.SetMistakes("payment", 100);
  const auto declined_id = sys.PlaceOrder();
  ASSERT_NE(declined_id, 0);
  auto declined = sys.WaitForFinal(declined_id);
  finals.push_back(declined);
  ASSERT_EQ(declined["status"], 4) << declined.dump(2);
  EXPECT_EQ(declined["status_text"], "NOT OK");
  EXPECT_NE(Detail(declined).find("charge failed"), std::string::npos) << Detail(declined);
  EXPECT_NE(Detail(declined).find("compensated: release_stock"), std::string::npos) << Detail(declined);
  EXPECT_EQ(Steps(declined), (std::vector<StepResult>{{"reserve_stock", "OK"}, {"reserve_stock", "OK"}, {"charge", "NOT OK"},
                                                      {"release_stock", "OK"}, {"release_stock", "OK"}}));
  payment = sys.Get("payment", "/payments/" + std::to_string(declined_id));
  ASSERT_EQ(payment.status, 200) << payment.body;
  EXPECT_EQ(payment.json["ok"], false);
  EXPECT_NE(payment.json["detail"].get<std::string>().find("declined"), std::string::npos) << payment.body;
  reservation = sys.Get("warehouse", "/reservations/" + std::to_string(declined_id));
  ASSERT_EQ(reservation.status, 200) << reservation.body;
  EXPECT_EQ(reservation.json["state"], "released");
  EXPECT_EQ(sys.Get("notification", "/notifications/" + std::to_string(declined_id)).status, 404);

  // 4. warehouse mistakes=100: NOT OK, nothing reserved, never charged.
  sys.SetMistakes("warehouse", 100);
  const auto refused_id = sys.PlaceOrder();
  ASSERT_NE(refused_id, 0);
  auto refused = sys.WaitForFinal(refused_id);
  finals.push_back(refused);
  ASSERT_EQ(refused["status"], 4) << refused.dump(2);
  EXPECT_NE(Detail(refused).find("reserve_stock failed"), std::string::npos) << Detail(refused);
  // The first leg refused fails the step; the other leg, unanswered then, is released.
  EXPECT_EQ(Steps(refused), (std::vector<StepResult>{{"reserve_stock", "NOT OK"}, {"release_stock", "OK"}}));
  EXPECT_EQ(sys.Get("payment", "/payments/" + std::to_string(refused_id)).status, 404);
  reservation = sys.Get("warehouse", "/reservations/" + std::to_string(refused_id));
  ASSERT_EQ(reservation.status, 200) << reservation.body;
  EXPECT_EQ(reservation.json["state"], "mixed") << reservation.body;  // one leg rejected, the other released
  ASSERT_EQ(reservation.json["legs"].size(), 2u) << reservation.body;

  EXPECT_TRUE(Conserved(finals));
  auto stock = sys.Stock();
  EXPECT_EQ(stock[10].reserved, 4);  // two OK orders x 2
  EXPECT_EQ(stock[15].reserved, 2);

  auto ended = sys.Get("orchestrator", "/sagas?state=ended");
  ASSERT_EQ(ended.status, 200) << ended.body;
  EXPECT_EQ(ended.json["counts"].value("ended", 0), 4) << ended.body;
  EXPECT_EQ(ended.json["sagas"].size(), 4u);
  auto saga = sys.Get("orchestrator", "/sagas/" + std::to_string(declined_id));
  ASSERT_EQ(saga.status, 200) << saga.body;
  EXPECT_EQ(saga.json["state"], "ended");
  EXPECT_EQ(saga.json["status_text"], "NOT OK");
  EXPECT_FALSE(saga.json["events"].empty());
}

TEST_F(SagaScenarios, ReservationLargerThanStockFailsWithNotEnoughStock) {
  TestSystemOptions options;
  options.default_stock = 5;
  ASSERT_NO_FATAL_FAILURE(Boot(options));
  auto& sys = *system_;

  const auto too_big = sys.PlaceOrder(OrderWith({{10, 6}}));
  ASSERT_NE(too_big, 0);
  auto refused = sys.WaitForFinal(too_big);
  ASSERT_EQ(refused["status"], 4) << refused.dump(2);
  EXPECT_NE(Detail(refused).find("not enough stock"), std::string::npos) << Detail(refused);
  EXPECT_NE(Detail(refused).find("item 10"), std::string::npos) << Detail(refused);
  EXPECT_EQ(Steps(refused), (std::vector<StepResult>{{"reserve_stock", "NOT OK"}}));
  EXPECT_EQ(sys.Get("payment", "/payments/" + std::to_string(too_big)).status, 404);

  // All or nothing: one short item refuses the whole order and holds nothing of the others.
  const auto mixed = sys.PlaceOrder(OrderWith({{11, 1}, {10, 6}}));
  auto mixed_final = sys.WaitForFinal(mixed);
  ASSERT_EQ(mixed_final["status"], 4) << mixed_final.dump(2);

  // What fits still goes through, and stock is what is left.
  const auto fits = sys.PlaceOrder(OrderWith({{10, 5}}));
  auto fits_final = sys.WaitForFinal(fits);
  ASSERT_EQ(fits_final["status"], 3) << fits_final.dump(2);
  auto stock = sys.Stock();
  EXPECT_EQ(stock[10], (StockEntry{0, 5}));
  EXPECT_FALSE(stock.contains(11) && stock[11].reserved != 0);
  EXPECT_TRUE(Conserved({refused, mixed_final, fits_final}));
}

TEST_F(SagaScenarios, RestockMakesRoomAndIsCountedInConservation) {
  TestSystemOptions options;
  options.default_stock = 5;
  ASSERT_NO_FATAL_FAILURE(Boot(options));
  auto& sys = *system_;
  std::vector<json> finals;

  finals.push_back(sys.WaitForFinal(sys.PlaceOrder(OrderWith({{10, 4}}))));
  ASSERT_EQ(finals.back()["status"], 3) << finals.back().dump(2);
  finals.push_back(sys.WaitForFinal(sys.PlaceOrder(OrderWith({{10, 3}}))));
  ASSERT_EQ(finals.back()["status"], 4) << finals.back().dump(2);  // 1 left

  auto restock = sys.Post("warehouse", "/stock", {{"items", {{{"item_id", 10}, {"quantity", 5}}, {{"item_id", 20}, {"quantity", 7}}}}});
  // Accepted once recorded; each item's owner applies it moments later.
  ASSERT_EQ(restock.status, 202) << restock.body;
  ASSERT_EQ(restock.json["accepted"].size(), 2u) << restock.body;
  EXPECT_EQ(restock.json["accepted"][1], (json{{"item_id", 20}, {"quantity", 7}}));
  std::map<core::ItemId, StockEntry> stock;
  EXPECT_TRUE(WaitFor(
      [&] {
        stock = sys.Stock();
        return stock[10] == StockEntry{6, 4} && stock[20] == StockEntry{12, 0};  // 20 starts at the default
      },
      10s))
      << "item 10: " << stock[10].available << "/" << stock[10].reserved << ", item 20: " << stock[20].available
      << "/" << stock[20].reserved;

  finals.push_back(sys.WaitForFinal(sys.PlaceOrder(OrderWith({{10, 3}, {20, 10}}))));
  ASSERT_EQ(finals.back()["status"], 3) << finals.back().dump(2);
  EXPECT_TRUE(Conserved(finals, {{10, 5}, {20, 7}}));
  stock = sys.Stock();
  EXPECT_EQ(stock[10], (StockEntry{3, 7}));
  EXPECT_EQ(stock[20], (StockEntry{2, 10}));

  EXPECT_TRUE(IsJsonError(sys.Post("warehouse", "/stock", {{"items", {{{"item_id", 10}, {"quantity", 0}}}}}), 400));
  EXPECT_TRUE(IsJsonError(sys.Post("warehouse", "/stock", {{"items", json::array()}}), 400));
  EXPECT_TRUE(IsJsonError(sys.Post("warehouse", "/stock", {{"items", {{{"item_id", "x"}, {"quantity", 1}}}}}), 400));
  EXPECT_EQ(sys.Stock()[10], (StockEntry{3, 7}));
}

TEST_F(SagaScenarios, SameIdempotencyKeyGivesOneOrderAndOneSaga) {
  ASSERT_NO_FATAL_FAILURE(Boot());
  auto& sys = *system_;
  const auto first = sys.PlaceOrder(ReferenceOrder(), "key-1");
  ASSERT_NE(first, 0);
  const auto again = sys.PlaceOrder(ReferenceOrder(), "key-1");
  EXPECT_EQ(again, first);

  // Two at once with a new key: still one order.
  std::vector<core::OrderId> concurrent(4, 0);
  std::vector<std::thread> posters;
  for (size_t i = 0; i < concurrent.size(); ++i) {
    posters.emplace_back([&, i] { concurrent[i] = sys.PlaceOrder(ReferenceOrder(), "key-2"); });
  }
  for (auto& t : posters) t.join();
  for (auto id : concurrent) EXPECT_EQ(id, concurrent[0]);
  EXPECT_NE(concurrent[0], first);

  auto finals = sys.WaitForAllFinal({first, concurrent[0]});
  EXPECT_EQ(finals[0]["status"], 3) << finals[0].dump(2);
  EXPECT_EQ(finals[1]["status"], 3) << finals[1].dump(2);

  auto orders = sys.Get("order", "/orders");
  ASSERT_EQ(orders.status, 200) << orders.body;
  EXPECT_EQ(orders.json["count"], 2) << orders.body;
  auto sagas = sys.Get("orchestrator", "/sagas");
  ASSERT_EQ(sagas.status, 200) << sagas.body;
  std::set<core::OrderId> saga_ids;
  for (const auto& s : sagas.json["sagas"]) saga_ids.insert(s["saga_id"].get<core::OrderId>());
  EXPECT_EQ(saga_ids, (std::set<core::OrderId>{first, concurrent[0]}));
  EXPECT_TRUE(Conserved(finals));
  // Each order was handed to the orchestrator once and charged once.
  EXPECT_EQ(sys.ReadTopic(sys.topics().order).size(), 2u);
  auto payments = sys.ReadTopicByKey(sys.topics().payment_payments);
  EXPECT_EQ(payments.size(), 2u);
  for (const auto& [key, records] : payments) EXPECT_EQ(records.size(), 1u) << "payments of order " << key;
}

// A client retrying with its key after the saga ended (nothing else going on)
// gets its order back without waiting for a commit, as does a POST of an
// existing order id (409).
TEST_F(SagaScenarios, ReplayedIdempotencyKeyIsAnsweredWithoutWaitingForACommit) {
  TestSystemOptions options;
  options.order.accept_timeout = 3s;
  ASSERT_NO_FATAL_FAILURE(Boot(options));
  auto& sys = *system_;
  const auto id = sys.PlaceOrder(ReferenceOrder(), "retry-key");
  ASSERT_NE(id, 0);
  ASSERT_EQ(sys.WaitForFinal(id)["status"], 3);

  // With nothing else going on, a replay that waited for some other order's
  // Kafka commit would get 503 after the accept timeout (3 s here): 200 and 409
  // show that both are answered from the committed state.
  auto replay = sys.Post("order", "/neworder", ReferenceOrder(), {{"Idempotency-Key", "retry-key"}});
  EXPECT_EQ(replay.status, 200) << replay.body;
  EXPECT_EQ(replay.json.value("order_id", core::OrderId{0}), id) << replay.body;

  auto existing = ReferenceOrder();
  existing["order_id"] = id;
  auto conflict = sys.Post("order", "/neworder", existing);
  EXPECT_TRUE(IsJsonError(conflict, 409)) << conflict.status << " " << conflict.body;
}

TEST_F(SagaScenarios, MixedLoadWithPaymentFailuresEndsEveryOrderAndConservesStock) {
  TestSystemOptions options;
  options.payment.mistakes = 50;
  options.default_stock = 1000;
  ASSERT_NO_FATAL_FAILURE(Boot(options));
  auto& sys = *system_;

  constexpr int kOrders = 30;
  constexpr int kPosters = 3;
  std::vector<core::OrderId> ids(kOrders, 0);
  std::vector<std::thread> posters;
  for (int p = 0; p < kPosters; ++p) {
    posters.emplace_back([&, p] {
      for (int i = p; i < kOrders; i += kPosters) {
        // Items 1..4 overlap between orders; sums differ so each charge can be told apart.
        ids[i] = sys.PlaceOrder(OrderWith({{1 + i % 4, 1 + i % 3}, {5, 1}}, 1000 + i));
      }
    });
  }
  for (auto& t : posters) t.join();
  for (auto id : ids) ASSERT_NE(id, 0);
  ASSERT_EQ(std::set<core::OrderId>(ids.begin(), ids.end()).size(), ids.size()) << "order ids must be unique";

  auto finals = sys.WaitForAllFinal(ids, 50s);
  int ok = 0, not_ok = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    const auto& order = finals[i];
    const int status = order.value("status", 0);
    ASSERT_TRUE(status == 3 || status == 4) << order.dump(2);
    auto payment = sys.Get("payment", "/payments/" + std::to_string(ids[i]));
    ASSERT_EQ(payment.status, 200) << "order " << ids[i] << ": " << payment.body;
    auto reservation = sys.Get("warehouse", "/reservations/" + std::to_string(ids[i]));
    ASSERT_EQ(reservation.status, 200) << reservation.body;
    if (status == 3) {
      ++ok;
      EXPECT_EQ(payment.json["ok"], true) << payment.body;
      EXPECT_EQ(payment.json["amount"], 1000 + static_cast<int64_t>(i)) << payment.body;
      EXPECT_EQ(reservation.json["state"], "reserved");
      EXPECT_EQ(Steps(order), (std::vector<StepResult>{{"reserve_stock", "OK"}, {"reserve_stock", "OK"}, {"charge", "OK"}, {"notify", "OK"}}));
    } else {
      ++not_ok;
      EXPECT_EQ(payment.json["ok"], false) << payment.body;
      EXPECT_EQ(reservation.json["state"], "released");
      EXPECT_EQ(Steps(order), (std::vector<StepResult>{{"reserve_stock", "OK"}, {"reserve_stock", "OK"}, {"charge", "NOT OK"},
                                                       {"release_stock", "OK"}, {"release_stock", "OK"}}));
    }
  }
  EXPECT_EQ(ok + not_ok, kOrders);
  // Exactly one payment per order in the payment changelog, OK iff the order
  // is OK and of the order's sum; a reservation per item ("<order>/<item>")
  // made once, released once if NOT OK.
  auto payments = sys.ReadTopicByKey(sys.topics().payment_payments);
  auto reservations = sys.ReadTopicByKey(sys.topics().warehouse_reservations);
  EXPECT_EQ(payments.size(), ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    const auto key = std::to_string(ids[i]);
    const bool order_ok = finals[i].value("status", 0) == 3;
    ASSERT_EQ(payments[key].size(), 1u) << "payments of order " << key;
    ASSERT_TRUE(payments[key][0].message.has_value());
    const auto& charge = std::get<core::Payment>(payments[key][0].message->payload);
    EXPECT_EQ(charge.ok, order_ok) << "order " << key;
    EXPECT_EQ(charge.amount, 1000 + static_cast<int64_t>(i)) << "order " << key;
    size_t records = 0;
    for (const auto& [reservation_key, list] : reservations) {
      if (reservation_key.rfind(key + "/", 0) == 0) records += list.size();
    }
    EXPECT_EQ(records, order_ok ? 2u : 4u) << "reservation records of order " << key << " (two items)";
  }
  EXPECT_TRUE(Conserved(finals));
  auto sagas = sys.Get("orchestrator", "/sagas?state=ended");
  EXPECT_EQ(sagas.json["counts"].value("ended", 0), kOrders) << sagas.body;
  std::printf("mixed load: %d OK, %d NOT OK\n", ok, not_ok);
}

TEST_F(SagaScenarios, MalformedCommandGoesToTheDeadLetterTopicAndTheNextOrderCompletes) {
  ASSERT_NO_FATAL_FAILURE(Boot());
  auto& sys = *system_;
  const auto& topics = sys.topics();

  // Garbage bytes, and a well-formed message of the wrong type, on the warehouse's command topic.
  core::Message wrong_type;
  wrong_type.message_id = "test-wrong-type";
  wrong_type.saga_id = 777;
  wrong_type.produced_at_ms = core::NowMs();
  wrong_type.payload = core::StepReply{core::Step::kReserveStock, 1, true, "not a command"};
  auto producer = kafka::TransactionalProducer::Open(sys.kafka(), sys.prefix() + "test-injector", 30s);
  ASSERT_TRUE(producer.ok()) << producer.error().message;
  ASSERT_TRUE(producer.value()->Begin().ok());
  ASSERT_TRUE(producer.value()->Produce(topics.warehouse_reserve, "12345", "garbage").ok());
  ASSERT_TRUE(producer.value()->Produce(topics.warehouse_reserve, "777", core::Encode(wrong_type)).ok());
  auto delivered = producer.value()->Commit();
  ASSERT_TRUE(delivered.ok()) << delivered.error().message;
  ASSERT_EQ(delivered->size(), 2u);

  std::vector<core::DeadLetter> letters;
  const bool arrived = WaitFor(
      [&] {
        letters.clear();
        auto end = kafka::ReadToEnd(sys.kafka(), topics.dlq, {}, [&](const kafka::Record& r) {
          auto m = core::Decode(r.value);
          ASSERT_TRUE(m.ok()) << "undecodable dead letter: " << m.error().message;
          const auto* letter = std::get_if<core::DeadLetter>(&m->payload);
          ASSERT_NE(letter, nullptr) << "dead-letter topic holds a " << core::PayloadName(m->payload);
          letters.push_back(*letter);
        });
        return end.ok() && letters.size() >= 2;
      },
      30s);
  ASSERT_TRUE(arrived) << letters.size() << " dead letter(s) after 30 s";
  ASSERT_EQ(letters.size(), 2u);
  std::sort(letters.begin(), letters.end(), [](const auto& a, const auto& b) { return a.source_key < b.source_key; });

  const auto& garbage = letters[0];
  EXPECT_EQ(garbage.source_key, "12345");
  EXPECT_EQ(garbage.source_topic, topics.warehouse_reserve);
  EXPECT_EQ(garbage.source_partition, (*delivered)[0].partition);
  EXPECT_EQ(garbage.source_offset, (*delivered)[0].offset);
  EXPECT_EQ(garbage.original, "garbage");
  EXPECT_EQ(garbage.service, "warehouse");
  EXPECT_FALSE(garbage.reason.empty());

  const auto& misplaced = letters[1];
  EXPECT_EQ(misplaced.source_key, "777");
  EXPECT_EQ(misplaced.source_topic, topics.warehouse_reserve);
  EXPECT_EQ(misplaced.source_partition, (*delivered)[1].partition);
  EXPECT_EQ(misplaced.source_offset, (*delivered)[1].offset);
  EXPECT_NE(misplaced.reason.find("StepCommand"), std::string::npos) << misplaced.reason;

  // The warehouse moved on: a real order still completes.
  const auto id = sys.PlaceOrder();
  auto order = sys.WaitForFinal(id);
  EXPECT_EQ(order["status"], 3) << order.dump(2);
  EXPECT_FALSE(sys.Get("warehouse", "/").json.is_null());
  EXPECT_TRUE(Conserved({order}));
}

// ---- the REST edge ----

TEST_F(SagaScenarios, OrderServiceAnswersBadInputWithJsonErrors) {
  ASSERT_NO_FATAL_FAILURE(Boot());
  auto& sys = *system_;
  auto post_raw = [&](const std::string& body) { return sys.Request("order", "POST", "/neworder", body); };
  auto post = [&](const json& body) { return sys.Post("order", "/neworder", body); };

  auto malformed = post_raw(R"({"order_id": 0, "items": [)");
  EXPECT_TRUE(IsJsonError(malformed, 400));
  EXPECT_NE(malformed.json.value("error", "").find("malformed JSON"), std::string::npos) << malformed.body;
  EXPECT_TRUE(IsJsonError(post_raw(""), 400));
  EXPECT_TRUE(IsJsonError(post_raw("[1, 2, 3]"), 400));

  auto order = ReferenceOrder();
  order["user_id"] = "two";
  auto wrong_type = post(order);
  EXPECT_TRUE(IsJsonError(wrong_type, 400));
  EXPECT_NE(wrong_type.json.value("error", "").find("user_id"), std::string::npos) << wrong_type.body;
  order = ReferenceOrder();
  order["items"] = "many";
  EXPECT_TRUE(IsJsonError(post(order), 400));
  order = ReferenceOrder();
  order["items"][0]["quantity"] = 1.5;
  EXPECT_TRUE(IsJsonError(post(order), 400));
  order = ReferenceOrder();
  order["sum"] = "10000";
  EXPECT_TRUE(IsJsonError(post(order), 400));

  order = ReferenceOrder();
  order["items"] = json::array();
  auto empty = post(order);
  EXPECT_TRUE(IsJsonError(empty, 400));
  EXPECT_NE(empty.json.value("error", "").find("items"), std::string::npos) << empty.body;
  order.erase("items");
  EXPECT_TRUE(IsJsonError(post(order), 400));

  order = ReferenceOrder();
  order["items"][1]["quantity"] = 0;
  auto zero = post(order);
  EXPECT_TRUE(IsJsonError(zero, 400));
  EXPECT_NE(zero.json.value("error", "").find("quantity"), std::string::npos) << zero.body;
  order["items"][1]["quantity"] = -3;
  EXPECT_TRUE(IsJsonError(post(order), 400));

  order = ReferenceOrder();
  order["payment"] = 3;
  auto payment = post(order);
  EXPECT_TRUE(IsJsonError(payment, 400));
  EXPECT_NE(payment.json.value("error", "").find("payment"), std::string::npos) << payment.body;
  order = ReferenceOrder();
  order["notification"] = 9;
  EXPECT_TRUE(IsJsonError(post(order), 400));

  EXPECT_TRUE(IsJsonError(sys.Post("order", "/neworder", ReferenceOrder(), {{"Idempotency-Key", std::string(201, 'k')}}),
                          400));

  EXPECT_TRUE(IsJsonError(sys.Get("order", "/orders/123456789"), 404));
  EXPECT_TRUE(IsJsonError(sys.Get("order", "/no/such/path"), 404));
  EXPECT_TRUE(IsJsonError(sys.Get("order", "/orders?status=bogus"), 400));
  EXPECT_TRUE(IsJsonError(sys.Get("order", "/orders?limit=0"), 400));

  auto wrong_method = sys.Request("order", "DELETE", "/neworder");
  EXPECT_TRUE(IsJsonError(wrong_method, 405));
  EXPECT_NE(wrong_method.headers["Allow"].find("POST"), std::string::npos) << wrong_method.body;

  auto huge = ReferenceOrder();
  huge["detail"] = std::string(2 << 20, 'x');
  auto too_large = post(huge);
  EXPECT_TRUE(IsJsonError(too_large, 413));

  // None of it created an order, and the service still takes a good one.
  auto orders = sys.Get("order", "/orders");
  EXPECT_EQ(orders.json["count"], 0) << orders.body;
  const auto id = sys.PlaceOrder();
  auto final_order = sys.WaitForFinal(id);
  EXPECT_EQ(final_order["status"], 3) << final_order.dump(2);
  EXPECT_EQ(sys.Get("order", "/").status, 200);
}

TEST_F(SagaScenarios, ParticipantsAndOrchestratorAnswerBadInputWithJsonErrors) {
  ASSERT_NO_FATAL_FAILURE(Boot());
  auto& sys = *system_;
  for (const std::string service : {"warehouse", "payment", "notification"}) {
    SCOPED_TRACE(service);
    sys.SetMistakes(service, 7);
    EXPECT_TRUE(IsJsonError(sys.Post(service, "/set", {{"mistakes", 101}}), 400));
    EXPECT_TRUE(IsJsonError(sys.Post(service, "/set", {{"mistakes", -1}}), 400));
    EXPECT_TRUE(IsJsonError(sys.Post(service, "/set", {{"mistakes", "ten"}}), 400));
    EXPECT_TRUE(IsJsonError(sys.Post(service, "/set", json::object()), 400));
    EXPECT_TRUE(IsJsonError(sys.Post(service, "/set", {{"delay_ms", {500, 100}}}), 400));
    EXPECT_TRUE(IsJsonError(sys.Request(service, "POST", "/set", "{mistakes: 5}"), 400));
    auto settings = sys.Get(service, "/set");
    ASSERT_EQ(settings.status, 200) << settings.body;
    EXPECT_EQ(settings.json["mistakes"], 7) << "a refused /set must change nothing";
    sys.SetMistakes(service, 0);
    EXPECT_EQ(sys.Get(service, "/").status, 200);
    // Prometheus text (empty until a counter moves: described metrics have no series yet).
    auto metrics = sys.Get(service, "/metrics");
    EXPECT_EQ(metrics.status, 200);
    EXPECT_NE(metrics.headers["Content-Type"].find("text/plain"), std::string::npos);
  }
  EXPECT_TRUE(IsJsonError(sys.Get("payment", "/payments/42"), 404));
  EXPECT_TRUE(IsJsonError(sys.Get("notification", "/notifications/42"), 404));
  EXPECT_TRUE(IsJsonError(sys.Get("warehouse", "/reservations/42"), 404));
  EXPECT_TRUE(IsJsonError(sys.Get("orchestrator", "/sagas/42"), 404));
  EXPECT_TRUE(IsJsonError(sys.Get("orchestrator", "/sagas?state=sleeping"), 400));
  EXPECT_TRUE(IsJsonError(sys.Request("warehouse", "DELETE", "/stock"), 405));
}

}  // namespace
}  // namespace sagaflow::testing
