// Two instances of the order service, sharing the partitions: each answers
// for the other's orders (GET /orders/{id}, GET /orders, long polls, event
// streams), a retried Idempotency-Key is the same order whichever instance
// gets it, and when one stops the other takes its partitions and answers for
// its orders. The whole system runs in-process against the real broker.

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "sagaflow/runtime/http_client.hpp"
#include "support/kafka_env.hpp"
#include "support/test_system.hpp"

namespace sagaflow::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

const std::string kFirst = "order";
const std::string kSecond = TestSystem::Instance("order", 2);

class OrderInstances : public SystemTest {
 protected:
  void BootTwo(const std::string& name) {
    TestSystemOptions options;
    options.name = name;
    ASSERT_NO_FATAL_FAILURE(Boot(options));
    auto s = system_->StartService(kSecond);
    ASSERT_TRUE(s.ok()) << s.error().message;
    s = system_->WaitBalanced({kFirst, kSecond});
    ASSERT_TRUE(s.ok()) << s.error().message;
  }

  // POST /neworder on `instance`; the answer's order id (0 and a failure if refused).
  core::OrderId Place(const std::string& instance, const std::string& key = "", json body = ReferenceOrder()) {
    std::map<std::string, std::string> headers;
    if (!key.empty()) headers["Idempotency-Key"] = key;
    auto r = system_->Post(instance, "/neworder", body, headers);
    EXPECT_EQ(r.status, 200) << instance << ": " << r.body << r.error;
    if (r.status != 200) return 0;
    return r.json["order_id"].get<core::OrderId>();
  }

  // Records of the orchestrator's input (one OrderPlaced per saga), by order id.
  std::map<std::string, size_t> PlacedCounts() {
    std::map<std::string, size_t> counts;
    for (const auto& [key, records] : system_->ReadTopicByKey(system_->topics().order)) counts[key] = records.size();
    return counts;
  }
};

TEST_F(OrderInstances, EachAnswersTheOthersOrdersWithIdsUniqueAcrossInstances) {
  ASSERT_NO_FATAL_FAILURE(BootTwo("instances"));
  std::vector<core::OrderId> ids;
  std::set<int32_t> partitions;
  for (int i = 0; i < 12; ++i) {
    const auto& instance = i % 2 == 0 ? kFirst : kSecond;
    const auto id = Place(instance);
    ASSERT_NE(id, 0);
    ids.push_back(id);
    partitions.insert(kafka::PartitionOf(core::SagaKey(id), system_->options().partitions));
    // Right after the answer, both instances know the order (read-your-writes).
    for (const auto& reader : {kFirst, kSecond}) {
      auto r = system_->Get(reader, "/orders/" + std::to_string(id));
      ASSERT_EQ(r.status, 200) << reader << " on order " << id << " placed on " << instance << ": " << r.body;
      EXPECT_EQ(r.json["order_id"], id);
    }
  }
  EXPECT_EQ(std::set<core::OrderId>(ids.begin(), ids.end()).size(), ids.size()) << "order ids must be unique";
  EXPECT_EQ(partitions.size(), 2u) << "each instance drew ids in its own partition";

  auto finals = system_->WaitForAllFinal(ids);
  for (const auto& f : finals) EXPECT_EQ(f["status"], 3) << f.dump();
  // Both instances list the same orders with the same states.
  auto a = system_->Get(kFirst, "/orders?limit=1000");
  auto b = system_->Get(kSecond, "/orders?limit=1000");
  ASSERT_EQ(a.status, 200) << a.body;
  ASSERT_EQ(b.status, 200) << b.body;
  EXPECT_EQ(a.json["count"], ids.size());
  EXPECT_EQ(a.json, b.json);
  // And an order neither has is unknown to both.
  EXPECT_EQ(system_->Get(kFirst, "/orders/1").status, 404);
  EXPECT_EQ(system_->Get(kSecond, "/orders/1").status, 404);
}

TEST_F(OrderInstances, ARetriedKeyOnTheOtherInstanceIsTheSameOrderAndStartsNoSecondSaga) {
  ASSERT_NO_FATAL_FAILURE(BootTwo("idemkeys"));
  std::vector<core::OrderId> ids;
  std::set<int32_t> key_partitions;
  for (int i = 0; i < 6; ++i) {
    const std::string key = "retry-key-" + std::to_string(i);
    key_partitions.insert(kafka::PartitionOf(key, system_->options().partitions));
    // First attempt on one instance, the retry on the other: whichever owns
    // the key's partition, one of the two attempts crosses instances.
    const auto& first = i % 2 == 0 ? kFirst : kSecond;
    const auto& retry = i % 2 == 0 ? kSecond : kFirst;
    const auto id = Place(first, key);
    ASSERT_NE(id, 0);
    EXPECT_EQ(Place(retry, key), id) << key;
    EXPECT_EQ(Place(first, key), id) << key;
    ids.push_back(id);
  }
  ASSERT_EQ(key_partitions.size(), 2u) << "the keys must fall in both partitions";

  // Retries racing each other on both instances at once, before any was recorded.
  for (int i = 0; i < 4; ++i) {
    const std::string key = "racing-key-" + std::to_string(i);
    core::OrderId on_first = 0;
    core::OrderId on_second = 0;
    std::thread t([&] { on_first = Place(kFirst, key); });
    on_second = Place(kSecond, key);
    t.join();
    ASSERT_NE(on_first, 0);
    EXPECT_EQ(on_first, on_second) << key;
    ids.push_back(on_first);
  }

  // The key with another body, on the other instance: refused, nothing recorded.
  json other = ReferenceOrder();
  other["user_id"] = 99;
  auto reused = system_->Post(kSecond, "/neworder", other, {{"Idempotency-Key", "retry-key-0"}});
  EXPECT_EQ(reused.status, 422) << reused.body;
  reused = system_->Post(kFirst, "/neworder", other, {{"Idempotency-Key", "retry-key-1"}});
  EXPECT_EQ(reused.status, 422) << reused.body;

  auto finals = system_->WaitForAllFinal(ids);
  for (const auto& f : finals) EXPECT_EQ(f["status"], 3) << f.dump();
  // One saga per key: the orchestrator's input holds one OrderPlaced per order, and no other.
  const auto placed = PlacedCounts();
  EXPECT_EQ(placed.size(), ids.size());
  for (auto id : ids) EXPECT_EQ(placed.count(core::SagaKey(id)) ? placed.at(core::SagaKey(id)) : 0u, 1u) << id;
  // Some requests did cross instances through orders.service.neworder.
  EXPECT_FALSE(system_->ReadTopic(system_->topics().neworder).empty());
  EXPECT_GT(system_->Metric(kFirst, "orders_forwarded_total") + system_->Metric(kSecond, "orders_forwarded_total"), 0);
}

TEST_F(OrderInstances, LongPollsAndEventStreamsCompleteOnEveryInstance) {
  ASSERT_NO_FATAL_FAILURE(BootTwo("instancepoll"));
  // An event stream on each instance, open before the orders.
  std::mutex mu;
  std::map<std::string, std::set<core::OrderId>> seen;
  std::atomic<int> opened{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> readers;
  for (const auto& instance : {kFirst, kSecond}) {
    readers.emplace_back([&, instance, port = system_->port(instance)] {
      runtime::HttpClient client("127.0.0.1", port);
      (void)client.ReadEvents(
          "/orders/events",
          [&](std::string_view event, std::string_view data) {
            if (event == "final") {
              std::lock_guard lock(mu);
              seen[instance].insert(json::parse(data)["order_id"].get<core::OrderId>());
            }
            return true;
          },
          Clock::now() + 120s, &stop, [&] { opened.fetch_add(1); });
    });
  }
  ASSERT_TRUE(WaitFor([&] { return opened.load() == 2; }, 30s));

  // Orders placed on each instance, long-polled on both (one of them does not own the order).
  std::vector<core::OrderId> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(Place(i % 2 == 0 ? kFirst : kSecond));
  for (size_t i = 0; i < ids.size(); ++i) {
    ASSERT_NE(ids[i], 0);
    for (const auto& poller : {kFirst, kSecond}) {
      runtime::HttpClient client("127.0.0.1", system_->port(poller));
      json order;
      for (int attempt = 0; attempt < 3; ++attempt) {
        auto r = client.Get("/orders/" + std::to_string(ids[i]) + "?wait=60", 90s);
        ASSERT_TRUE(r.ok()) << r.error().message;
        ASSERT_EQ(r->status, 200) << poller << ": " << r->body;
        order = json::parse(r->body);
        if (order["status"] == 3 || order["status"] == 4) break;
      }
      EXPECT_EQ(order["status"], 3) << poller << ": " << order.dump();
    }
  }
  // Every instance announced every order's end.
  const bool all_seen = WaitFor(
      [&] {
        std::lock_guard lock(mu);
        for (const auto& instance : {kFirst, kSecond}) {
          for (auto id : ids) {
            if (!seen[instance].contains(id)) return false;
          }
        }
        return true;
      },
      30s);
  stop.store(true);
  for (auto& t : readers) t.join();
  EXPECT_TRUE(all_seen);
}

TEST_F(OrderInstances, WhenAnInstanceStopsTheOtherTakesItsPartitionsAndAnswersForItsOrders) {
  ASSERT_NO_FATAL_FAILURE(BootTwo("instancestop"));
  // Orders recorded by the second instance, in its partition, one under a key.
  std::vector<core::OrderId> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(Place(kSecond));
  const std::string key = "stop-key";
  const auto keyed = Place(kSecond, key);
  ids.push_back(keyed);
  for (auto id : ids) ASSERT_NE(id, 0);

  system_->StopService(kSecond);
  auto s = system_->WaitBalanced({kFirst});
  ASSERT_TRUE(s.ok()) << s.error().message;

  // The first instance answers for them, retried keys included, and records new orders in every partition.
  for (auto id : ids) {
    auto r = system_->Get(kFirst, "/orders/" + std::to_string(id));
    ASSERT_EQ(r.status, 200) << id << ": " << r.body;
  }
  EXPECT_EQ(Place(kFirst, key), keyed);
  std::set<int32_t> partitions;
  for (int i = 0; i < 8; ++i) {
    const auto id = Place(kFirst);
    ASSERT_NE(id, 0);
    partitions.insert(kafka::PartitionOf(core::SagaKey(id), system_->options().partitions));
    ids.push_back(id);
  }
  EXPECT_EQ(partitions.size(), 2u);
  auto finals = system_->WaitForAllFinal(ids);
  for (const auto& f : finals) EXPECT_EQ(f["status"], 3) << f.dump();
  const auto placed = PlacedCounts();
  EXPECT_EQ(placed.size(), ids.size());
}

}  // namespace
}  // namespace sagaflow::testing
