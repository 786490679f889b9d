// POST /stock with an Idempotency-Key: the decisions of the REST edge and of
// the item's owner (restock_keys.hpp).

#include "sagaflow/warehouse/restock_keys.hpp"

#include <gtest/gtest.h>

namespace sagaflow::warehouse {
namespace {

constexpr core::TimeMs kNow = 1'700'000'000'000;
constexpr core::TimeMs kDay = 24 * 3600 * 1000;

TEST(RestockKeys, ARequestIsMergedPerItemAndHashedWhateverTheOrderOfItsItems) {
  const std::vector<core::Restock> body{{20, 1}, {10, 4}, {20, 2}};
  const auto merged = MergeRestocks(body);
  EXPECT_EQ(merged, (std::vector<core::Restock>{{10, 4}, {20, 3}}));
  EXPECT_EQ(RestockRequestHash(merged), RestockRequestHash(MergeRestocks({{10, 4}, {20, 3}})));
  EXPECT_NE(RestockRequestHash(merged), RestockRequestHash(MergeRestocks({{10, 4}, {20, 4}})));
  EXPECT_NE(RestockRequestHash(merged), RestockRequestHash(MergeRestocks({{10, 4}})));
  EXPECT_NE(RestockRequestHash(MergeRestocks({{10, 4}})), RestockRequestHash(MergeRestocks({{4, 10}})));
}

TEST(RestockKeys, TheOwnerAppliesAKeyOnceAndRefusesItForAnotherRequest) {
  core::StockLevel level{10, 5, 1};
  const core::Restock keyed{10, 3, "k", 42};
  EXPECT_EQ(ClassifyRestock(level, keyed), KeyedRestock::kApply);
  ApplyRestock(level, keyed, kNow);
  EXPECT_EQ(level.available, 8);
  EXPECT_EQ(level.reserved, 1);
  ASSERT_EQ(level.restocks.size(), 1u);
  EXPECT_EQ(level.restocks[0], (core::AppliedRestock{"k", 42, kNow}));
  EXPECT_EQ(ClassifyRestock(level, keyed), KeyedRestock::kDuplicate);
  EXPECT_EQ(ClassifyRestock(level, core::Restock{10, 3, "k", 43}), KeyedRestock::kConflict);
  EXPECT_EQ(ClassifyRestock(level, core::Restock{10, 3, "other", 42}), KeyedRestock::kApply);
}

TEST(RestockKeys, ARestockWithoutAKeyIsAlwaysAppliedAndRecordsNothing) {
  core::StockLevel level{10, 5, 0, {{"k", 1, kNow}}};
  const core::Restock plain{10, 2};
  EXPECT_EQ(ClassifyRestock(level, plain), KeyedRestock::kApply);
  ApplyRestock(level, plain, kNow);
  ApplyRestock(level, plain, kNow);
  EXPECT_EQ(level.available, 9);
  EXPECT_EQ(level.restocks.size(), 1u);
}

TEST(RestockKeys, AnItemKeepsTheNewestKeysWithinTheRetention) {
  core::StockLevel level{10, 0, 0};
  ApplyRestock(level, {10, 1, "old", 1}, kNow - kDay - 1);
  ApplyRestock(level, {10, 1, "recent", 1}, kNow - kDay + 1000);
  ApplyRestock(level, {10, 1, "now", 1}, kNow);
  ASSERT_EQ(level.restocks.size(), 2u) << "a key older than the retention is dropped";
  EXPECT_EQ(level.restocks[0].key, "recent");
  for (size_t i = 0; i < kMaxRestockKeysPerItem + 5; ++i) ApplyRestock(level, {10, 1, "k" + std::to_string(i), 1}, kNow);
  ASSERT_EQ(level.restocks.size(), kMaxRestockKeysPerItem);
  EXPECT_EQ(level.restocks.front().key, "k5");
  EXPECT_EQ(level.restocks.back().key, "k" + std::to_string(kMaxRestockKeysPerItem + 4));
  EXPECT_EQ(level.available, static_cast<int64_t>(3 + kMaxRestockKeysPerItem + 5));
}

TEST(RestockKeys, TheEdgeSendsOnlyWhatTheItemsDoNotHoldAndRefusesAReusedKey) {
  const auto merged = MergeRestocks({{10, 4}, {20, 2}});
  const uint64_t hash = RestockRequestHash(merged);

  auto fresh = PlanKeyedRestock(merged, "k", hash, {});
  EXPECT_TRUE(fresh.conflict.empty());
  EXPECT_EQ(fresh.to_send, (std::vector<core::Restock>{{10, 4, "k", hash}, {20, 2, "k", hash}}));

  auto partly = PlanKeyedRestock(merged, "k", hash, {{10, hash}});
  EXPECT_TRUE(partly.conflict.empty());
  EXPECT_EQ(partly.to_send, (std::vector<core::Restock>{{20, 2, "k", hash}}));

  auto done = PlanKeyedRestock(merged, "k", hash, {{10, hash}, {20, hash}});
  EXPECT_TRUE(done.conflict.empty());
  EXPECT_TRUE(done.to_send.empty());

  // The key on any item with another request's hash, even an item this request does not name.
  for (const auto& applied : std::vector<std::map<core::ItemId, uint64_t>>{{{10, hash + 1}}, {{30, hash + 1}}}) {
    auto reused = PlanKeyedRestock(merged, "k", hash, applied);
    EXPECT_NE(reused.conflict.find("Idempotency-Key 'k' was used for a different restock"), std::string::npos)
        << reused.conflict;
    EXPECT_TRUE(reused.to_send.empty());
  }
}

}  // namespace
}  // namespace sagaflow::warehouse
