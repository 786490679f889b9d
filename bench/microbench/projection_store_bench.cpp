// The RocksDB projection: every processed batch ends with one Commit (state
// + applied offsets in one WriteBatch); handlers read through an OverlayView.

#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
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

// Bytes under `dir` in files ending in `extension` (".log": the write-ahead log), or in all files.
double MiBUnder(const std::filesystem::path& dir, const std::string& extension = "") {
  uintmax_t bytes = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    std::error_code gone;  // RocksDB may delete a file meanwhile
    const auto size = entry.file_size(gone);
    if (!gone && (extension.empty() || entry.path().extension() == extension)) bytes += size;
  }
  return static_cast<double>(bytes) / (1 << 20);
}

// What RocksDB's compactions wrote and spent, from the events in its info LOG files under `dir`
// (RocksDB keeps the newest three LOG files of up to 4 MiB each: more than a benchmark writes).
struct Compactions {
  double written_mib = 0;
  double cpu_s = 0;
};
Compactions CompactionsUnder(const std::filesystem::path& dir) {
  const auto number_after = [](const std::string& line, const std::string& field) -> double {
    const auto at = line.find("\"" + field + "\": ");
    return at == std::string::npos ? 0.0 : std::strtod(line.c_str() + at + field.size() + 4, nullptr);
  };
  Compactions out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().filename().string().rfind("LOG", 0) != 0) continue;
    std::ifstream in(entry.path());
    for (std::string line; std::getline(in, line);) {
      if (line.find("\"compaction_finished\"") == std::string::npos) continue;
      out.written_mib += number_after(line, "total_output_size") / (1 << 20);
      out.cpu_s += number_after(line, "compaction_time_cpu_micros") / 1e6;
    }
  }
  return out;
}

// A store growing as the orchestrator's does, to N sagas: every commit carries 30 new sagas and
// moves the 90 before them on, each saga taking four commits (one per input) to write its eight
// events, two per input in one record (`ev/<saga>/<version>`, 600 bytes), and overwrite its state
// (`snap/<saga>`, 600 bytes), plus the applied offset. About 3 KB stay per saga. CPU is the whole
// process's, compaction threads included, so it shows what compaction costs as the store grows.
// Counters: `store_MiB` on disk at the end, `wal_max_MiB` the largest the write-ahead log got,
// `compacted_MiB` and `compaction_cpu_s` what the compactions wrote and the CPU they took.
void BM_ProjectionStoreGrowth(benchmark::State& state) {
  constexpr int kSagasPerCommit = 30;
  constexpr int kStages = 4;
  const int sagas = static_cast<int>(state.range(0));
  // Values are slices of one block of random letters, so compression does not make them vanish.
  std::string noise(1 << 20, ' ');
  uint64_t x = 88172645463325252ULL;
  for (auto& c : noise) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    c = static_cast<char>('a' + x % 26);
  }
  auto slice = [&noise](uint64_t at, size_t size) { return noise.substr(at % (noise.size() - size), size); };
  for (auto _ : state) {
    ScratchDir dir;
    auto store = OpenOrSkip(state, dir);
    if (!store) return;
    double wal_max = 0;
    const int commits = sagas / kSagasPerCommit + kStages - 1;
    for (int commit = 0; commit < commits; ++commit) {
      WriteSet writes;
      for (int stage = 0; stage < kStages; ++stage) {
        const int group = commit - stage;
        if (group < 0 || group >= sagas / kSagasPerCommit) continue;
        for (int i = 0; i < kSagasPerCommit; ++i) {
          const uint64_t saga = 1'796'600'000'000'000ULL + static_cast<uint64_t>(group * kSagasPerCommit + i) * 997;
          char key[64];
          const int version = 2 * stage;  // the version of the record's first event
          std::snprintf(key, sizeof(key), "ev/%020llu/%010d", static_cast<unsigned long long>(saga), version);
          writes.Put(key, slice(saga * 31 + static_cast<uint64_t>(version) * 7919, 600));
          std::snprintf(key, sizeof(key), "snap/%llu", static_cast<unsigned long long>(saga));
          writes.Put(key, slice(saga * 17 + static_cast<uint64_t>(stage) * 104729, 600));
        }
      }
      if (auto s = store->Commit(writes, {{{"orders.saga.events", 0}, commit + 1}}); !s.ok()) {
        state.SkipWithError(s.error().message.c_str());
        return;
      }
      if (commit % 64 == 0) wal_max = std::max(wal_max, MiBUnder(dir.path() / "db", ".log"));
    }
    state.counters["store_MiB"] = MiBUnder(dir.path() / "db");
    state.counters["wal_max_MiB"] = wal_max;
    store.reset();  // closing waits for the compaction under way
    const auto compactions = CompactionsUnder(dir.path() / "db");
    state.counters["compacted_MiB"] = compactions.written_mib;
    state.counters["compaction_cpu_s"] = compactions.cpu_s;
  }
  state.SetItemsProcessed(state.iterations() * sagas);
}
BENCHMARK(BM_ProjectionStoreGrowth)->Arg(20'000)->Arg(100'000)->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime()->UseRealTime()->Iterations(1);

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
