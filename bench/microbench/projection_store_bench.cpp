// The RocksDB projection: every processed batch ends with one Commit (state
// + applied offsets in one WriteBatch); handlers read through an OverlayView.

#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "sagaflow/eventstore/projection_store.hpp"

namespace sagaflow::bench {
namespace {

using eventstore::OffsetMap;
using eventstore::ProjectionStore;
using eventstore::WriteSet;

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction.
class ScratchDir {
 public:
  ScratchDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp");
    pattern += "/sagaflow-bench-XXXXXX";
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~ScratchDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Keys and values shaped like the warehouse's: "stock/<item id>" -> a ~60-byte record.
std::string Key(int i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "stock/%08d", i);
  return buf;
}
std::string Value(int i) { return std::string(60, static_cast<char>('a' + i % 26)); }

std::unique_ptr<ProjectionStore> OpenOrSkip(benchmark::State& state, const ScratchDir& dir) {
  if (dir.path().empty()) {
    state.SkipWithError("cannot create a temporary directory (set TMPDIR)");
    return nullptr;
  }
  auto store = ProjectionStore::Open(dir.path() / "db");
  if (!store.ok()) {
    state.SkipWithError(store.error().message.c_str());
    return nullptr;
  }
  return std::move(store).value();
}

// One Commit of a WriteSet of N keys plus one applied offset (sync=false, the
// services' default: WAL written, not fsynced). Reported items are keys.
void BM_ProjectionStoreCommit(benchmark::State& state) {
  ScratchDir dir;
  auto store = OpenOrSkip(state, dir);
  if (!store) return;
  const int n = static_cast<int>(state.range(0));
  WriteSet writes;
  for (int i = 0; i < n; ++i) writes.Put(Key(i), Value(i));
  OffsetMap offsets{{{"orders.warehouse.stock", 0}, 0}};
  int64_t offset = 0;
  for (auto _ : state) {
    offsets.begin()->second = ++offset;
    if (auto s = store->Commit(writes, offsets); !s.ok()) {
      state.SkipWithError(s.error().message.c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * n);
  state.SetBytesProcessed(state.iterations() * n * static_cast<int64_t>(Key(0).size() + Value(0).size()));
}
BENCHMARK(BM_ProjectionStoreCommit)->Arg(1)->Arg(100)->Arg(1000);

// OverlayView::Get over a store of 10,000 committed keys with 100 pending writes:
//   0 pending: the key is in the pending WriteSet
//   1 store:   the key is only in RocksDB (memtable/block cache, warm)
//   2 miss:    the key is nowhere (RocksDB lookup that finds nothing)
void BM_OverlayGet(benchmark::State& state) {
  constexpr int kStored = 10'000;
  constexpr int kPending = 100;
  ScratchDir dir;
  auto store = OpenOrSkip(state, dir);
  if (!store) return;
  WriteSet committed;
  for (int i = 0; i < kStored; ++i) committed.Put(Key(i), Value(i));
  if (auto s = store->Commit(committed, {}); !s.ok()) {
    state.SkipWithError(s.error().message.c_str());
    return;
  }
  WriteSet pending;
  for (int i = 0; i < kPending; ++i) pending.Put(Key(i * 7), Value(i + 1));
  const eventstore::OverlayView view(*store, pending);

  std::vector<std::string> keys;
  switch (state.range(0)) {
    case 0:
      state.SetLabel("pending");
      for (int i = 0; i < kPending; ++i) keys.push_back(Key(i * 7));
      break;
    case 1:
      state.SetLabel("store");
      for (int i = 0; i < kPending; ++i) keys.push_back(Key(kStored - 1 - i * 13));
      break;
    default:
      state.SetLabel("miss");
      for (int i = 0; i < kPending; ++i) keys.push_back(Key(kStored + i));
      break;
  }
  size_t next = 0;
  for (auto _ : state) {
    auto value = view.Get(keys[next]);
    benchmark::DoNotOptimize(value);
    if (++next == keys.size()) next = 0;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_OverlayGet)->Arg(0)->Arg(1)->Arg(2);

}  // namespace
}  // namespace sagaflow::bench
