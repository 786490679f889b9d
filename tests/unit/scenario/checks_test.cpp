#include "sagaflow/scenario/checks.hpp"

#include <gtest/gtest.h>

namespace sagaflow::scenario {
namespace {

using core::OrderStatus;

core::OrderRecord Order(core::OrderId id, OrderStatus status, std::vector<core::Item> items, int64_t sum,
                        std::string key = "") {
  core::OrderRecord r;
  r.order.order_id = id;
  r.order.items = std::move(items);
  r.order.sum = sum;
  r.status = status;
  r.idempotency_key = key.empty() ? "key-" + std::to_string(id) : key;
  return r;
}

core::Payment Charge(core::OrderId id, int64_t amount, bool ok = true) {
  core::Payment p;
  p.order_id = id;
  p.amount = amount;
  p.ok = ok;
  return p;
}

core::Notification Notify(core::OrderId id) {
  core::Notification n;
  n.order_id = id;
  n.ok = true;
  return n;
}

/// Two orders: 1 OK (2 of item 10, sum 90), 2 NOT OK (1 of item 11, payment declined and released).
Observation Healthy() {
  Observation o;
  o.default_stock = 100;
  o.order_records = {Order(1, OrderStatus::kProcess, {{10, 2, 45}}, 90), Order(2, OrderStatus::kProcess, {{11, 1, 7}}, 7),
                     Order(1, OrderStatus::kOk, {{10, 2, 45}}, 90), Order(2, OrderStatus::kNotOk, {{11, 1, 7}}, 7)};
  o.payments = {Charge(1, 90), Charge(2, 7, false)};
  o.notifications = {Notify(1)};
  o.acknowledged = {1, 2};
  o.stock_after = {{10, {98, 2}}, {11, {100, 0}}};
  return o;
}

TEST(ScenarioChecks, AHealthyRunPassesEveryCheck) {
  const auto o = Healthy();
  for (const auto& r : {CheckAllTerminal(o), CheckStockConserved(o), CheckOneChargePerOk(o), CheckNoDuplicates(o),
                        CheckDlqExact(o)}) {
    EXPECT_TRUE(r.passed) << r.name << ": " << (r.problems.empty() ? "" : r.problems.front());
    EXPECT_TRUE(r.problems.empty()) << r.name;
  }
  EXPECT_EQ(CheckAllTerminal(o).numbers,
            "2 orders: 1 OK, 1 NOT OK, 0 not terminal; 2 acknowledged, 0 lost, 0 never acknowledged");
}

TEST(ScenarioChecks, LatestOrdersKeepsTheFinalStatusOverALateDuplicate) {
  const auto latest = LatestOrders({Order(1, OrderStatus::kOk, {}, 0), Order(1, OrderStatus::kProcess, {}, 0)});
  EXPECT_EQ(latest.at(1).status, OrderStatus::kOk);
}

TEST(ScenarioChecks, AnOrderInProcessOrAnAcknowledgedOrderMissingFails) {
  auto o = Healthy();
  o.order_records.push_back(Order(3, OrderStatus::kProcess, {}, 0));
  o.acknowledged.insert(4);
  const auto r = CheckAllTerminal(o);
  EXPECT_FALSE(r.passed);
  ASSERT_EQ(r.problems.size(), 2u);
  EXPECT_EQ(r.problems[0], "order 3 is PROCESS");
  EXPECT_EQ(r.problems[1], "order 4 was acknowledged to its client but is not in the order changelog");
}

TEST(ScenarioChecks, AnOrderTheClientNeverGotAcknowledgedFails) {
  auto o = Healthy();
  o.never_acknowledged = 3;
  const auto r = CheckAllTerminal(o);
  EXPECT_FALSE(r.passed);
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_EQ(r.problems[0], "3 order(s) never acknowledged: POST /neworder failed until the client's order timeout");
}

TEST(ScenarioChecks, StockThatLeaksOrIsNotReleasedFails) {
  auto o = Healthy();
  o.stock_after[11] = {99, 1};  // the NOT OK order's reservation was never released
  auto r = CheckStockConserved(o);
  EXPECT_FALSE(r.passed);
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_EQ(r.problems[0], "item 11: reserved grew by 1 but the OK orders hold 0");

  o = Healthy();
  o.stock_after[10] = {97, 2};  // a unit vanished
  r = CheckStockConserved(o);
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.problems[0], "item 10: available + reserved went from 100 to 99");
}

TEST(ScenarioChecks, StockComparesWithTheLevelsBeforeTheRun) {
  auto o = Healthy();
  o.stock_before = {{10, {50, 7}}};
  o.stock_after[10] = {48, 9};
  EXPECT_TRUE(CheckStockConserved(o).passed);
}

TEST(ScenarioChecks, ADoubleOrMissingOrWrongChargeFails) {
  auto o = Healthy();
  o.payments.push_back(Charge(1, 90));
  auto r = CheckOneChargePerOk(o);
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.problems[0], "OK order 1 has 2 successful charges");
  EXPECT_FALSE(CheckNoDuplicates(o).passed) << "two payment records for one order";

  o = Healthy();
  o.payments = {Charge(2, 7, false)};
  EXPECT_EQ(CheckOneChargePerOk(o).problems.at(0), "OK order 1 has 0 successful charges");

  o = Healthy();
  o.payments = {Charge(1, 91), Charge(2, 7, false)};
  EXPECT_EQ(CheckOneChargePerOk(o).problems.at(0), "OK order 1 was charged 91, its sum is 90");

  o = Healthy();
  o.payments = {Charge(1, 90), Charge(2, 7, true)};
  EXPECT_EQ(CheckOneChargePerOk(o).problems.at(0), "NOT OK order 2 has 1 successful charge(s)");
}

TEST(ScenarioChecks, DuplicatedOrdersAndEffectsFail) {
  auto o = Healthy();
  o.order_records.push_back(Order(3, OrderStatus::kOk, {}, 0, "key-1"));
  auto r = CheckNoDuplicates(o);
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.problems[0], "Idempotency-Key 'key-1' has 2 orders");

  o = Healthy();
  o.notifications.push_back(Notify(1));
  EXPECT_EQ(CheckNoDuplicates(o).problems.at(0), "notification: 2 records for order 1");

  o = Healthy();
  o.notifications.push_back(Notify(2));
  EXPECT_EQ(CheckNoDuplicates(o).problems.at(0), "notification for order 2, which is NOT OK");

  o = Healthy();
  o.payments.push_back(Charge(9, 5));
  EXPECT_EQ(CheckNoDuplicates(o).problems.at(0), "payment for order 9, which nobody placed");
}

TEST(ScenarioChecks, TheDlqMustHoldExactlyTheInjectedRecordsOnce) {
  auto o = Healthy();
  o.injected = {{"t.orders.service.order", "junk-1"}, {"t.orders.service.order", "junk-2"}};
  core::DeadLetter d1{"not an envelope", "t.orders.service.order", 0, 4, "k", "junk-1", "orchestrator"};
  core::DeadLetter d2 = d1;
  d2.original = "junk-2";
  o.dead_letters = {d1, d2};
  EXPECT_TRUE(CheckDlqExact(o).passed);

  o.dead_letters = {d1};
  auto r = CheckDlqExact(o);
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.problems.at(0), "an injected record on t.orders.service.order is not in the dead-letter topic (6 bytes)");

  o.dead_letters = {d1, d2, d1};
  r = CheckDlqExact(o);
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.problems.at(0).rfind("an injected record dead-lettered twice", 0), 0u) << r.problems.at(0);

  core::DeadLetter other = d1;
  other.original = "a real order that failed";
  o.dead_letters = {d1, d2, other};
  r = CheckDlqExact(o);
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.problems.at(0).rfind("unexpected dead letter", 0), 0u) << r.problems.at(0);
}

TEST(ScenarioChecks, UnreadableRecordsFailTheChecksAndProblemsAreCapped) {
  auto o = Healthy();
  o.unreadable = {"t.orders.order.orders@3: corrupt"};
  EXPECT_FALSE(CheckAllTerminal(o).passed);
  o = Healthy();
  for (core::OrderId id = 100; id < 130; ++id) o.order_records.push_back(Order(id, OrderStatus::kProcess, {}, 0));
  const auto r = CheckAllTerminal(o);
  ASSERT_EQ(r.problems.size(), CheckResult::kMaxProblems + 1);
  EXPECT_EQ(r.problems.back(), "... and 20 more");
}

}  // namespace
}  // namespace sagaflow::scenario
