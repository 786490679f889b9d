// The warehouse as two instances: each item's stock is owned by the task of
// the item's partition, whichever instance runs it, and a multi-item order's
// reservation fans out one leg per item to those owners. No stock is sold
// twice, stock is conserved per item, and the REST edge (GET/POST /stock,
// GET /reservations) answers the same on either instance; a restock with an
// Idempotency-Key is applied once, whichever instance gets its retries.

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "sagaflow/core/codec.hpp"
#include "sagaflow/core/kafka/kafka_client.hpp"
#include "sagaflow/warehouse/restock_keys.hpp"
#include "support/kafka_env.hpp"
#include "support/test_system.hpp"

namespace sagaflow::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

json OrderOf(const std::vector<std::pair<int64_t, int64_t>>& items, int64_t sum) {
  json order = ReferenceOrder();
  order["sum"] = sum;
  order["items"] = json::array();
  for (const auto& [id, quantity] : items) order["items"].push_back({{"item_id", id}, {"quantity", quantity}, {"price", 10}});
  return order;
}

class WarehouseInstances : public SystemTest {
 protected:
  static constexpr int32_t kPartitions = 2;

  // Boots the system with a second warehouse instance; each instance owns one partition.
  void BootTwo(TestSystemOptions options) {
    options.partitions = kPartitions;
    ASSERT_NO_FATAL_FAILURE(Boot(options));
    ASSERT_TRUE(system_->StartInstance("warehouse", 2).ok());
    // The group rebalances: the first instance gives up a partition, restored by the second.
    const std::string second = TestSystem::Instance("warehouse", 2);
    ASSERT_TRUE(WaitFor([&] { return system_->Get("warehouse", "/").status == 200 && system_->Get(second, "/").status == 200; }, 60s))
        << "both warehouse instances must own a partition and serve";
  }

  // Boots two instances with a default stock of 1 and picks two items, one
  // per partition (ids from `from` on): a_, b_; second_ names the second instance.
  void BootForRestocks(const std::string& name, int64_t from) {
    TestSystemOptions options;
    options.name = name;
    options.default_stock = 1;
    ASSERT_NO_FATAL_FAILURE(BootTwo(options));
    a_ = ItemIn(0, from);
    b_ = ItemIn(1, from);
    second_ = TestSystem::Instance("warehouse", 2);
  }

  // Waits until both instances report `a` and `b` for items a_ and b_ (nothing reserved).
  void ExpectStockOnBoth(int64_t a, int64_t b) {
    for (const std::string& instance : {std::string("warehouse"), second_}) {
      SCOPED_TRACE(instance);
      EXPECT_TRUE(WaitFor(
          [&] {
            auto stock = system_->Stock(instance);
            return stock[a_] == StockEntry{a, 0} && stock[b_] == StockEntry{b, 0};
          },
          10s));
      auto stock = system_->Stock(instance);
      EXPECT_EQ(stock[a_], (StockEntry{a, 0}));
      EXPECT_EQ(stock[b_], (StockEntry{b, 0}));
    }
  }

  int64_t a_ = 0;
  int64_t b_ = 0;
  std::string second_;

  // An item id in `partition` (Kafka's partitioner of its key), from `from` on.
  static int64_t ItemIn(int32_t partition, int64_t from) {
    for (int64_t id = from;; ++id) {
      if (kafka::PartitionOf(core::ItemKey(id), kPartitions) == partition) return id;
    }
  }
};

TEST_F(WarehouseInstances, MultiItemOrdersAcrossBothOwnersSellNoStockTwiceAndConserveIt) {
  TestSystemOptions options;
  options.name = "whinst";
  options.default_stock = 6;
  ASSERT_NO_FATAL_FAILURE(BootTwo(options));
  auto& sys = *system_;
  const int64_t a = ItemIn(0, 100);
  const int64_t b = ItemIn(1, 100);
  ASSERT_NE(kafka::PartitionOf(core::ItemKey(a), kPartitions), kafka::PartitionOf(core::ItemKey(b), kPartitions));

  // 10 orders of 1 a + 1 b, against 6 of each, from two posters at once:
  // at most 6 can be OK, and whatever the interleaving nothing is oversold.
  std::vector<core::OrderId> ids(10, 0);
  std::vector<std::thread> posters;
  for (int p = 0; p < 2; ++p) {
    posters.emplace_back([&, p] {
      for (size_t i = p; i < ids.size(); i += 2) ids[i] = sys.PlaceOrder(OrderOf({{a, 1}, {b, 1}}, 100 + i));
    });
  }
  for (auto& t : posters) t.join();
  for (auto id : ids) ASSERT_NE(id, 0);
  const auto finals = sys.WaitForAllFinal(ids, 60s);
  int ok = 0;
  for (const auto& order : finals) {
    const int status = order.value("status", 0);
    ASSERT_TRUE(status == 3 || status == 4) << order.dump(2);
    ok += status == 3;
  }
  EXPECT_GE(ok, 1);
  EXPECT_LE(ok, 6) << "more orders OK than there is stock";

  // Conserved per item (reserved == the OK orders' quantities), on either instance.
  const std::string second = TestSystem::Instance("warehouse", 2);
  for (const std::string& instance : {std::string("warehouse"), second}) {
    SCOPED_TRACE(instance);
    EXPECT_TRUE(WaitFor([&] { return bool(StockConserved(sys.Stock(instance), 6, finals)); }, 10s));
    EXPECT_TRUE(StockConserved(sys.Stock(instance), 6, finals));
    auto stock = sys.Stock(instance);
    EXPECT_EQ(stock[a].reserved, ok);
    EXPECT_EQ(stock[b].reserved, ok);
  }

  // Each leg's reservation record went to its item's partition.
  for (const auto& r : sys.ReadTopic(sys.topics().warehouse_reservations)) {
    ASSERT_TRUE(r.record.key.find('/') != std::string::npos) << r.record.key;
    const std::string item = r.record.key.substr(r.record.key.find('/') + 1);
    EXPECT_EQ(r.record.partition, kafka::PartitionOf(item, kPartitions)) << "reservation " << r.record.key;
  }
  // Every reservation leg of an OK order is kept; none of a NOT OK order's is.
  for (size_t i = 0; i < ids.size(); ++i) {
    auto r = sys.Get(second, "/reservations/" + std::to_string(ids[i]));
    if (finals[i].value("status", 0) == 3) {
      ASSERT_EQ(r.status, 200) << r.body;
      EXPECT_EQ(r.json["state"], "reserved") << r.body;
      EXPECT_EQ(r.json["legs"].size(), 2u) << r.body;
    } else if (r.status == 200) {
      for (const auto& leg : r.json["legs"]) EXPECT_NE(leg["state"], "reserved") << r.body;
    }
  }
  EXPECT_TRUE(sys.ReadTopic(sys.topics().dlq).empty()) << "nothing dead-lettered";
}

TEST_F(WarehouseInstances, AShortItemFailsItsLegAndTheOtherOwnerReleasesItsLeg) {
  TestSystemOptions options;
  options.name = "whshort";
  options.default_stock = 5;
  ASSERT_NO_FATAL_FAILURE(BootTwo(options));
  auto& sys = *system_;
  const int64_t a = ItemIn(0, 200);
  const int64_t b = ItemIn(1, 200);

  // b is short: its leg fails, a's leg (reserved by the other owner, or not yet) is released.
  auto short_order = sys.WaitForFinal(sys.PlaceOrder(OrderOf({{a, 2}, {b, 9}}, 300)));
  ASSERT_EQ(short_order.value("status", 0), 4) << short_order.dump(2);
  EXPECT_NE(short_order.value("detail", "").find("not enough stock for item " + std::to_string(b)), std::string::npos)
      << short_order.dump(2);
  EXPECT_NE(short_order.value("detail", "").find("compensated: release_stock"), std::string::npos)
      << short_order.dump(2);
  // What fits then goes through, all of it.
  auto fits = sys.WaitForFinal(sys.PlaceOrder(OrderOf({{a, 5}, {b, 5}}, 301)));
  ASSERT_EQ(fits.value("status", 0), 3) << fits.dump(2);
  for (const std::string& instance : {std::string("warehouse"), TestSystem::Instance("warehouse", 2)}) {
    SCOPED_TRACE(instance);
    EXPECT_TRUE(WaitFor([&] { return bool(StockConserved(sys.Stock(instance), 5, {short_order, fits})); }, 10s));
    auto stock = sys.Stock(instance);
    EXPECT_EQ(stock[a], (StockEntry{0, 5}));
    EXPECT_EQ(stock[b], (StockEntry{0, 5}));
  }
}

TEST_F(WarehouseInstances, ARestockOnEitherInstanceIsAppliedByTheItemsOwner) {
  ASSERT_NO_FATAL_FAILURE(BootForRestocks("whrestock", 300));
  auto& sys = *system_;
  const int64_t a = a_;
  const int64_t b = b_;
  const std::string& second = second_;
  // Both items restocked through one instance, then again through the other.
  for (const std::string& instance : {std::string("warehouse"), second}) {
    auto reply = sys.Post(instance, "/stock", {{"items", {{{"item_id", a}, {"quantity", 4}}, {{"item_id", b}, {"quantity", 2}}}}});
    ASSERT_EQ(reply.status, 202) << reply.body;
  }
  const std::map<core::ItemId, int64_t> restocked{{a, 8}, {b, 4}};
  ExpectStockOnBoth(9, 5);
  auto order = sys.WaitForFinal(sys.PlaceOrder(OrderOf({{a, 9}, {b, 5}}, 400)));
  ASSERT_EQ(order.value("status", 0), 3) << order.dump(2);
  EXPECT_TRUE(WaitFor([&] { return bool(StockConserved(sys.Stock(second), 1, {order}, restocked)); }, 10s));
  EXPECT_TRUE(StockConserved(sys.Stock(second), 1, {order}, restocked));
}

TEST_F(WarehouseInstances, AKeyedRestockRetriedOnEitherInstanceIsAppliedOnce) {
  ASSERT_NO_FATAL_FAILURE(BootForRestocks("whkeyed", 400));
  auto& sys = *system_;
  const int64_t a = a_;
  const int64_t b = b_;
  const std::string& second = second_;
  const json body = {{"items", {{{"item_id", a}, {"quantity", 4}}, {{"item_id", b}, {"quantity", 2}}}}};
  const json reordered = {{"items", {{{"item_id", b}, {"quantity", 2}}, {{"item_id", a}, {"quantity", 4}}}}};
  const std::map<std::string, std::string> key{{"Idempotency-Key", "restock-once"}};

  // The first request answers once both owners applied it; every retry, on
  // either instance and in any item order, gets the same answer.
  auto first = sys.Post("warehouse", "/stock", body, key);
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.json.value("idempotency_key", ""), "restock-once") << first.body;
  for (const auto& [instance, request] :
       std::vector<std::pair<std::string, json>>{{"warehouse", body}, {second, body}, {second, reordered}}) {
    SCOPED_TRACE(instance);
    auto retry = sys.Post(instance, "/stock", request, key);
    EXPECT_EQ(retry.status, 200) << retry.body;
    EXPECT_EQ(retry.json["applied"], first.json["applied"]) << retry.body;
  }

  // The same key with another body is refused, on either instance, and changes nothing.
  const json other = {{"items", {{{"item_id", a}, {"quantity", 5}}}}};
  for (const std::string& instance : {std::string("warehouse"), second}) {
    auto reused = sys.Post(instance, "/stock", other, key);
    EXPECT_EQ(reused.status, 422) << reused.body;
    EXPECT_NE(reused.json.value("error", "").find("was used for a different restock"), std::string::npos)
        << reused.body;
  }

  // A restock record sent again under the key (as after a 503 whose request
  // was recorded after all) is skipped by the owner. The next restock of the
  // item comes after it in the partition: once that is applied, the duplicate
  // has been seen.
  const auto merged = warehouse::MergeRestocks({{a, 4}, {b, 2}});
  core::Message again{"restock-again", 0, "", core::NowMs(), 1,
                      core::Restock{a, 4, "restock-once", warehouse::RestockRequestHash(merged)}};
  {
    auto producer = kafka::TransactionalProducer::Open(sys.kafka(), sys.prefix() + "restock-again", 30s);
    ASSERT_TRUE(producer.ok()) << producer.error().message;
    ASSERT_TRUE(producer.value()->Begin().ok());
    ASSERT_TRUE(producer.value()->Produce(sys.topics().warehouse_restock, core::ItemKey(a), core::Encode(again)).ok());
    ASSERT_TRUE(producer.value()->Commit().ok());
  }
  auto later = sys.Post(second, "/stock", {{"item_id", a}, {"quantity", 1}}, {{"Idempotency-Key", "restock-later"}});
  ASSERT_EQ(later.status, 200) << later.body;
  ExpectStockOnBoth(1 + 4 + 1, 1 + 2);
  EXPECT_TRUE(sys.ReadTopic(sys.topics().dlq).empty()) << "a duplicate is skipped, not dead-lettered";
}

}  // namespace
}  // namespace sagaflow::testing
