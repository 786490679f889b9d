#include "sagaflow/eventstore/projection_store.hpp"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "support/temp_dir.hpp"

extern char** environ;

namespace sagaflow::eventstore {
namespace {

using ::sagaflow::testing::TempDir;
using KeyValues = std::vector<std::pair<std::string, std::string>>;

class ProjectionStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<ProjectionStore> Open(const StoreOptions& options = {}) {
    auto store = ProjectionStore::Open(dir_.path() / "db", options);
    EXPECT_TRUE(store.ok()) << store.error().message;
    return store.ok() ? std::move(store).value() : nullptr;
  }

  static void CommitOk(ProjectionStore& store, const WriteSet& writes, const OffsetMap& offsets = {}) {
    const auto status = store.Commit(writes, offsets);
    ASSERT_TRUE(status.ok()) << status.error().message;
  }

  static void Put(ProjectionStore& store, const std::string& key, const std::string& value) {
    WriteSet ws;
    ws.Put(key, value);
    CommitOk(store, ws);
  }

  static KeyValues Scan(const ProjectionStore& store, std::string_view prefix) {
    KeyValues out;
    store.ScanPrefix(prefix, [&out](std::string_view k, std::string_view v) {
      out.emplace_back(k, v);
      return true;
    });
    return out;
  }

  TempDir dir_;
};

TEST_F(ProjectionStoreTest, GetReturnsTheCommittedValue) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  WriteSet ws;
  ws.Put("stock/apple", "10");
  ws.Put(std::string("bin\0key", 7), std::string("v\0w", 3));
  CommitOk(*store, ws);

  EXPECT_EQ(store->Get("stock/apple"), "10");
  EXPECT_EQ(store->Get(std::string_view("bin\0key", 7)), std::string("v\0w", 3));
  EXPECT_EQ(store->Get("stock/pear"), std::nullopt);
}

TEST_F(ProjectionStoreTest, LaterCommitReplacesValue) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Put(*store, "k", "1");
  Put(*store, "k", "2");
  EXPECT_EQ(store->Get("k"), "2");
}

TEST_F(ProjectionStoreTest, DeleteRemovesTheStoredKey) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Put(*store, "k", "v");
  Put(*store, "other", "x");

  WriteSet ws;
  ws.Delete("k");
  ws.Delete("never-existed");  // deleting an absent key is harmless
  CommitOk(*store, ws);

  EXPECT_EQ(store->Get("k"), std::nullopt);
  EXPECT_EQ(store->Get("other"), "x");
  EXPECT_EQ(store->CountPrefix(""), 1u);
}

TEST_F(ProjectionStoreTest, EmptyValueIsStoredNotDeleted) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Put(*store, "k", "");
  EXPECT_EQ(store->Get("k"), "");
}

TEST_F(ProjectionStoreTest, ScanPrefixVisitsMatchingKeysInKeyOrder) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  WriteSet ws;
  for (const char* k : {"res/o3", "res/o1", "stock/a", "res/o2", "re"}) ws.Put(k, std::string("v-") + k);
  CommitOk(*store, ws);

  EXPECT_EQ(Scan(*store, "res/"),
            (KeyValues{{"res/o1", "v-res/o1"}, {"res/o2", "v-res/o2"}, {"res/o3", "v-res/o3"}}));
}

TEST_F(ProjectionStoreTest, ScanPrefixStopsWhenCallbackReturnsFalse) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  WriteSet ws;
  for (const char* k : {"p/1", "p/2", "p/3", "p/4"}) ws.Put(k, "v");
  CommitOk(*store, ws);

  std::vector<std::string> seen;
  store->ScanPrefix("p/", [&seen](std::string_view k, std::string_view) {
    seen.emplace_back(k);
    return seen.size() < 2;
  });
  EXPECT_EQ(seen, (std::vector<std::string>{"p/1", "p/2"}));
}

TEST_F(ProjectionStoreTest, ScanPrefixIncludesOnlyKeysStartingWithThePrefix) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  const std::string ab_ff = std::string("ab") + '\xff';
  const std::string ab_nul = std::string("ab\0", 3);
  const std::string a_ff = std::string("a") + '\xff';
  WriteSet ws;
  for (const std::string& k : {std::string("a"), std::string("aa"), std::string("ab"), ab_nul, ab_ff,
                               std::string("abc"), std::string("ac"), a_ff, std::string("b")}) {
    ws.Put(k, "v");
  }
  CommitOk(*store, ws);

  auto keys = [&](std::string_view prefix) {
    std::vector<std::string> out;
    for (auto& [k, v] : Scan(*store, prefix)) out.push_back(k);
    return out;
  };
  EXPECT_EQ(keys("ab"), (std::vector<std::string>{"ab", ab_nul, "abc", ab_ff}));
  EXPECT_EQ(keys(a_ff), (std::vector<std::string>{a_ff}));
  EXPECT_EQ(keys("b"), (std::vector<std::string>{"b"}));
  EXPECT_TRUE(keys("abd").empty());
  EXPECT_TRUE(keys("c").empty());
  EXPECT_EQ(keys("").size(), 9u);  // the empty prefix matches everything
}

// Each table (what precedes a key's first '/') is a column family of its own: a prefix that
// does not name one table reads several, merged in key order.
TEST_F(ProjectionStoreTest, ScanPrefixMergesTablesInKeyOrder) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  WriteSet ws;
  for (const char* k : {"ab/1", "a/2", "abc", "a", "ab", "b/1", "a/1"}) ws.Put(k, std::string("v-") + k);
  CommitOk(*store, ws);

  auto keys = [&](std::string_view prefix) {
    std::vector<std::string> out;
    for (auto& [k, v] : Scan(*store, prefix)) {
      EXPECT_EQ(v, "v-" + k);
      out.push_back(k);
    }
    return out;
  };
  EXPECT_EQ(keys("a"), (std::vector<std::string>{"a", "a/1", "a/2", "ab", "ab/1", "abc"}));
  EXPECT_EQ(keys("ab"), (std::vector<std::string>{"ab", "ab/1", "abc"}));
  EXPECT_EQ(keys("a/"), (std::vector<std::string>{"a/1", "a/2"}));
  EXPECT_EQ(keys(""), (std::vector<std::string>{"a", "a/1", "a/2", "ab", "ab/1", "abc", "b/1"}));
  EXPECT_TRUE(keys("c/").empty());  // a table never written
  EXPECT_EQ(store->Get("c/1"), std::nullopt);
}

// Stores written before tables had column families of their own kept every key in "state":
// opening one moves the keys to their tables (in several batches here), once.
TEST_F(ProjectionStoreTest, AStoreWithEveryKeyInOneColumnFamilyIsMovedToTablesWhenOpened) {
  const auto path = (dir_.path() / "db").string();
  constexpr int kEvents = 25'000;
  auto event_key = [](int i) {
    char key[32];
    std::snprintf(key, sizeof(key), "ev/%08d", i);
    return std::string(key);
  };
  {
    rocksdb::DBOptions options;
    options.create_if_missing = true;
    options.create_missing_column_families = true;
    std::vector<rocksdb::ColumnFamilyDescriptor> families = {
        {rocksdb::kDefaultColumnFamilyName, {}}, {"state", {}}, {"offsets", {}}};
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(options, path, families, &handles, &db).ok());
    rocksdb::WriteBatch batch;
    for (int i = 0; i < kEvents; ++i) ASSERT_TRUE(batch.Put(handles[1], event_key(i), std::to_string(i)).ok());
    ASSERT_TRUE(batch.Put(handles[1], "snap/7", "s7").ok());
    ASSERT_TRUE(batch.Put(handles[1], "watermark", "42").ok());
    ASSERT_TRUE(db->Write(rocksdb::WriteOptions(), &batch).ok());
    for (auto* h : handles) ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
    ASSERT_TRUE(db->Close().ok());
    delete db;
  }
  for (int open = 0; open < 2; ++open) {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->Get("snap/7"), "s7");
    EXPECT_EQ(store->Get("watermark"), "42");
    EXPECT_EQ(store->Get(event_key(kEvents - 1)), std::to_string(kEvents - 1));
    EXPECT_EQ(store->CountPrefix("ev/"), static_cast<size_t>(kEvents));
    EXPECT_EQ(store->CountPrefix(""), static_cast<size_t>(kEvents + 2));
  }
  std::vector<std::string> names;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), path, &names).ok());
  EXPECT_NE(std::find(names.begin(), names.end(), "table:ev"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "table:snap"), names.end());
}

// A service's tasks commit from threads of their own, and may write to a new table at once.
TEST_F(ProjectionStoreTest, TasksCommittingToANewTableAtOnceAllSucceed) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  constexpr int kThreads = 8;
  constexpr int kTables = 20;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int table = 0; table < kTables; ++table) {
        WriteSet ws;
        ws.Put("t" + std::to_string(table) + "/" + std::to_string(t), "v");
        if (!store->Commit(ws, {}).ok()) ++failures;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(store->CountPrefix(""), static_cast<size_t>(kThreads * kTables));
  EXPECT_EQ(store->CountPrefix("t7/"), static_cast<size_t>(kThreads));
}

TEST_F(ProjectionStoreTest, CountPrefixCountsOnlyMatchingKeys) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->CountPrefix(""), 0u);
  WriteSet ws;
  for (int i = 0; i < 25; ++i) ws.Put("order/" + std::to_string(i), "x");
  ws.Put("orders", "not under order/");
  ws.Put("payment/1", "x");
  CommitOk(*store, ws);

  EXPECT_EQ(store->CountPrefix("order/"), 25u);
  EXPECT_EQ(store->CountPrefix("order"), 26u);
  EXPECT_EQ(store->CountPrefix("payment/"), 1u);
  EXPECT_EQ(store->CountPrefix("warehouse/"), 0u);
  EXPECT_EQ(store->CountPrefix(""), 27u);
}

TEST_F(ProjectionStoreTest, NewStoreHasNoAppliedOffsets) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->AppliedOffsets().empty());
}

TEST_F(ProjectionStoreTest, CommitMergesOffsetsOverTheStoredOnes) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  CommitOk(*store, {}, {{{"stock.changelog", 0}, 5}, {{"stock.changelog", 1}, 7}, {{"other", 0}, 1}});
  // A commit that only covers partition 1 leaves the others as they were.
  CommitOk(*store, {}, {{{"stock.changelog", 1}, 9}});

  EXPECT_EQ(store->AppliedOffsets(),
            (OffsetMap{{{"other", 0}, 1}, {{"stock.changelog", 0}, 5}, {{"stock.changelog", 1}, 9}}));
}

TEST_F(ProjectionStoreTest, OffsetsOfSimilarTopicsAndPartitionsStayApart) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  const OffsetMap offsets = {{{"a", 12}, 1},  {{"a1", 2}, 2},         {{"a", 1}, 3},
                             {{"a.b", 0}, 0}, {{"a", 2147483647}, kMax}, {{"a-b_c", 3}, 256}};
  CommitOk(*store, {}, offsets);
  EXPECT_EQ(store->AppliedOffsets(), offsets);
}

TEST_F(ProjectionStoreTest, CommitWithOnlyOffsetsAdvancesOffsetsAndLeavesStateAlone) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  WriteSet ws;
  ws.Put("k", "v");
  CommitOk(*store, ws, {{{"t", 0}, 1}});

  // E.g. a batch of changelog records that changed nothing still moves the offset.
  CommitOk(*store, WriteSet{}, {{{"t", 0}, 4}});

  EXPECT_EQ(store->AppliedOffsets(), (OffsetMap{{{"t", 0}, 4}}));
  EXPECT_EQ(store->Get("k"), "v");
  EXPECT_EQ(store->CountPrefix(""), 1u);
}

TEST_F(ProjectionStoreTest, EmptyCommitChangesNothing) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  CommitOk(*store, {}, {});
  EXPECT_TRUE(store->AppliedOffsets().empty());
  EXPECT_EQ(store->CountPrefix(""), 0u);
}

TEST_F(ProjectionStoreTest, RejectedCommitWritesNeitherStateNorOffsets) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  WriteSet ws;
  ws.Put("k", "v");
  // The second offset has an invalid topic: the whole commit must be refused.
  const auto status = store->Commit(ws, {{{"good", 0}, 1}, {{"bad\x1ftopic", 0}, 1}});
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, core::Errc::kInvalidArgument);

  EXPECT_EQ(store->Get("k"), std::nullopt);
  EXPECT_TRUE(store->AppliedOffsets().empty());
}

TEST_F(ProjectionStoreTest, StateAndOffsetsSurviveCloseAndReopen) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    WriteSet ws;
    ws.Put("stock/apple", "10");
    ws.Put("stock/pear", "3");
    CommitOk(*store, ws, {{{"stock", 0}, 2}, {{"stock", 1}, 1}});
    WriteSet ws2;
    ws2.Delete("stock/pear");
    ws2.Put("stock/apple", "9");
    CommitOk(*store, ws2, {{{"stock", 0}, 3}});
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Get("stock/apple"), "9");
  EXPECT_EQ(store->Get("stock/pear"), std::nullopt);
  EXPECT_EQ(store->AppliedOffsets(), (OffsetMap{{{"stock", 0}, 3}, {{"stock", 1}, 1}}));
}

TEST_F(ProjectionStoreTest, EachCommitsStateMatchesItsOffsetAfterReopen) {
  // Every commit writes counter=i with offset i+1 in one batch; after reopen
  // state and offset must come from the same (last) commit.
  constexpr int kCommits = 200;
  {
    auto store = Open(StoreOptions{.sync = true});
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < kCommits; ++i) {
      WriteSet ws;
      ws.Put("counter", std::to_string(i));
      CommitOk(*store, ws, {{{"c", 0}, i + 1}});
    }
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  const auto offsets = store->AppliedOffsets();
  ASSERT_EQ(offsets.size(), 1u);
  const int64_t offset = offsets.begin()->second;
  EXPECT_EQ(offset, kCommits);
  EXPECT_EQ(store->Get("counter"), std::to_string(offset - 1));
}

TEST_F(ProjectionStoreTest, WorksWithinATinyMemoryBudget) {
  // 0 is raised to the minimum budget; enough data to force memtable flushes.
  constexpr int kKeys = 3000;
  const std::string value(1024, 'x');
  {
    auto store = Open(StoreOptions{.memory_budget_mib = 0});
    ASSERT_NE(store, nullptr);
    for (int batch = 0; batch < kKeys / 100; ++batch) {
      WriteSet ws;
      for (int i = 0; i < 100; ++i) ws.Put("k/" + std::to_string(batch * 100 + i), value);
      CommitOk(*store, ws, {{{"t", 0}, batch}});
    }
    EXPECT_EQ(store->CountPrefix("k/"), static_cast<size_t>(kKeys));
  }
  auto store = Open(StoreOptions{.memory_budget_mib = 0});
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->CountPrefix("k/"), static_cast<size_t>(kKeys));
  EXPECT_EQ(store->Get("k/1234"), value);
}

// The offsets column family gets a few bytes per commit, so its memtable rarely fills; a
// write-ahead log file is deleted only once every column family's data in it is flushed.
TEST_F(ProjectionStoreTest, WriteAheadLogStaysBoundedWhileOnlyTheOffsetsAreRarelyFlushed) {
  // 1 MiB memtables, so the log is held to about 4 MiB. Left to RocksDB's default it grows
  // to four times all memtables (24 MiB here; 29 MiB was seen) before the offsets are flushed.
  const std::string value(1024, 'x');
  auto store = Open(StoreOptions{.memory_budget_mib = 8});
  ASSERT_NE(store, nullptr);
  uintmax_t largest_log = 0;
  for (int batch = 0; batch < 300; ++batch) {  // 30 MiB of state
    WriteSet ws;
    for (int i = 0; i < 100; ++i) ws.Put("k/" + std::to_string(batch * 100 + i), value);
    CommitOk(*store, ws, {{{"t", 0}, batch}});
    uintmax_t log = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir_.path() / "db")) {
      std::error_code gone;  // RocksDB may delete a log file meanwhile
      const auto size = entry.file_size(gone);
      if (!gone && entry.path().extension() == ".log") log += size;
    }
    largest_log = std::max(largest_log, log);
  }
  EXPECT_LT(largest_log, uintmax_t{10} << 20) << "the write-ahead log grew to " << (largest_log >> 20) << " MiB";
  EXPECT_EQ(store->AppliedOffsets().at({"t", 0}), 299);
}

TEST_F(ProjectionStoreTest, OpenCreatesMissingParentDirectories) {
  auto store = ProjectionStore::Open(dir_.path() / "a" / "b" / "c");
  ASSERT_TRUE(store.ok()) << store.error().message;
  Put(**store, "k", "v");
  EXPECT_EQ((*store)->Get("k"), "v");
}

TEST_F(ProjectionStoreTest, OpeningADirectoryThatIsAlreadyOpenFailsWithAHelpfulIoError) {
  auto first = Open();
  ASSERT_NE(first, nullptr);

  auto second = ProjectionStore::Open(dir_.path() / "db");
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, core::Errc::kIoError);
  EXPECT_NE(second.error().message.find((dir_.path() / "db").string()), std::string::npos)
      << second.error().message;
  EXPECT_NE(second.error().message.find("another sagaflow process may be using it"), std::string::npos)
      << second.error().message;
  EXPECT_NE(second.error().message.find("LOCK"), std::string::npos) << second.error().message;

  // The first store is unaffected, and the directory opens again once it is closed.
  Put(*first, "k", "v");
  first.reset();
  auto again = Open();
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->Get("k"), "v");
}

TEST_F(ProjectionStoreTest, OpeningAPathThatIsAFileFailsWithIoError) {
  const auto file = dir_.path() / "not-a-dir";
  std::ofstream(file) << "x";
  auto store = ProjectionStore::Open(file);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code, core::Errc::kIoError);
  EXPECT_NE(store.error().message.find(file.string()), std::string::npos) << store.error().message;
  EXPECT_NE(store.error().message.find("not a directory"), std::string::npos) << store.error().message;
}

// Runs only when spawned by CommittedWritesSurviveAProcessKill: commits, then
// dies by SIGKILL without closing the store (no destructors, no flush).
TEST(ProjectionStoreCrashChild, DISABLED_CommitThenKillSelf) {
  const char* dir = std::getenv("SAGAFLOW_TEST_CRASH_DIR");
  if (dir == nullptr) GTEST_SKIP() << "only run by ProjectionStoreTest.CommittedWritesSurviveAProcessKill";
  auto store = ProjectionStore::Open(dir);  // sync=false: the WAL is written but not fsynced
  ASSERT_TRUE(store.ok()) << store.error().message;
  for (int i = 0; i < 10; ++i) {
    WriteSet ws;
    ws.Put("counter", std::to_string(i));
    const auto status = (*store)->Commit(ws, {{{"c", 0}, i + 1}});
    ASSERT_TRUE(status.ok()) << status.error().message;
  }
  std::raise(SIGKILL);
}

TEST_F(ProjectionStoreTest, CommittedWritesSurviveAProcessKill) {
  const auto db = dir_.path() / "db";
  std::string exe = "/proc/self/exe";
  std::string filter = "--gtest_filter=ProjectionStoreCrashChild.DISABLED_CommitThenKillSelf";
  std::string also = "--gtest_also_run_disabled_tests";
  std::vector<char*> argv = {exe.data(), filter.data(), also.data(), nullptr};
  std::vector<std::string> env_storage;
  for (char** e = environ; *e != nullptr; ++e) env_storage.emplace_back(*e);
  env_storage.push_back("SAGAFLOW_TEST_CRASH_DIR=" + db.string());
  std::vector<char*> envp;
  for (auto& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ASSERT_EQ(rc, 0) << "posix_spawn failed";
  int wstatus = 0;
  ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL)
      << "child did not reach its SIGKILL (it failed before); wait status " << wstatus;

  auto store = ProjectionStore::Open(db);
  ASSERT_TRUE(store.ok()) << store.error().message;
  EXPECT_EQ((*store)->Get("counter"), "9");
  EXPECT_EQ((*store)->AppliedOffsets(), (OffsetMap{{{"c", 0}, 10}}));
}

TEST(WriteSet, FindReportsPendingPutPendingDeleteAndAbsence) {
  WriteSet ws;
  ws.Put("put", "v");
  ws.Delete("deleted");

  EXPECT_EQ(ws.Find("put"), std::optional<std::optional<std::string>>(std::optional<std::string>("v")));
  const auto deleted = ws.Find("deleted");
  ASSERT_TRUE(deleted.has_value());
  EXPECT_FALSE(deleted->has_value());
  EXPECT_FALSE(ws.Find("absent").has_value());
}

TEST(WriteSet, LaterWriteToTheSameKeyReplacesTheEarlierOne) {
  WriteSet ws;
  ws.Put("k", "1");
  ws.Delete("k");
  EXPECT_EQ(ws.size(), 1u);
  EXPECT_FALSE(ws.Find("k")->has_value());
  ws.Put("k", "2");
  EXPECT_EQ(*ws.Find("k"), "2");
  EXPECT_EQ(ws.size(), 1u);
}

class OverlayViewTest : public ProjectionStoreTest {};

TEST_F(OverlayViewTest, PendingWritesShadowTheStoreAndOthersFallThrough) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  WriteSet stored;
  stored.Put("replaced", "old");
  stored.Put("deleted", "old");
  stored.Put("untouched", "stored");
  CommitOk(*store, stored);

  WriteSet pending;
  pending.Put("replaced", "new");
  pending.Delete("deleted");
  pending.Put("added", "new");
  const OverlayView view(*store, pending);

  EXPECT_EQ(view.Get("replaced"), "new");
  EXPECT_EQ(view.Get("deleted"), std::nullopt);  // a pending delete hides the stored value
  EXPECT_EQ(view.Get("added"), "new");
  EXPECT_EQ(view.Get("untouched"), "stored");
  EXPECT_EQ(view.Get("absent"), std::nullopt);
  // The store itself is unchanged until the pending writes are committed.
  EXPECT_EQ(store->Get("replaced"), "old");
  EXPECT_EQ(store->Get("added"), std::nullopt);
}

TEST_F(OverlayViewTest, SeesPendingWritesAddedAfterItWasCreated) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Put(*store, "k", "stored");
  WriteSet pending;
  const OverlayView view(*store, pending);
  EXPECT_EQ(view.Get("k"), "stored");
  pending.Put("k", "pending");
  EXPECT_EQ(view.Get("k"), "pending");
  pending.clear();
  EXPECT_EQ(view.Get("k"), "stored");
}

TEST_F(OverlayViewTest, MatchesTheStoreOnceThePendingWritesAreCommitted) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Put(*store, "a", "1");
  Put(*store, "b", "2");
  WriteSet pending;
  pending.Put("a", "10");
  pending.Delete("b");
  pending.Put("c", "3");
  const OverlayView view(*store, pending);
  std::vector<std::optional<std::string>> before;
  for (const char* k : {"a", "b", "c"}) before.push_back(view.Get(k));

  CommitOk(*store, pending);
  for (size_t i = 0; const char* k : {"a", "b", "c"}) EXPECT_EQ(store->Get(k), before[i++]) << k;
}

}  // namespace
}  // namespace sagaflow::eventstore
