#include "sagaflow/eventstore/projection_store.hpp"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <rocksdb/write_buffer_manager.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <system_error>
#include <utility>
#include <vector>

namespace sagaflow::eventstore {

std::optional<std::optional<std::string>> WriteSet::Find(std::string_view key) const {
  auto it = writes_.find(key);
  if (it == writes_.end()) return std::nullopt;
  return std::optional<std::optional<std::string>>(std::in_place, it->second);
}

std::optional<std::string> OverlayView::Get(std::string_view key) const {
  // A pending write, deletion included, shadows whatever is stored.
  if (auto pending = pending_.Find(key)) return *std::move(pending);
  return store_.Get(key);
}

namespace {

constexpr char kStateCf[] = "state";
constexpr char kOffsetsCf[] = "offsets";
// Kafka topic names are [a-zA-Z0-9._-], so the unit separator cannot occur in
// one and "<topic>\x1f<partition>" decodes unambiguously.
constexpr char kTopicSeparator = '\x1f';
constexpr size_t kMiB = size_t{1} << 20;
// Below this RocksDB's fixed overheads dominate and the budget means nothing.
constexpr size_t kMinBudgetMib = 4;

std::string OffsetKey(const TopicPartition& tp) {
  std::string key = tp.topic;
  key.push_back(kTopicSeparator);
  key += std::to_string(tp.partition);
  return key;
}

// Fixed 8 bytes, big-endian: independent of the host and trivially checkable.
std::string EncodeOffset(int64_t offset) {
  auto u = static_cast<uint64_t>(offset);
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i) {
    out[static_cast<size_t>(i)] = static_cast<char>(u & 0xff);
    u >>= 8;
  }
  return out;
}

std::optional<std::pair<TopicPartition, int64_t>> DecodeOffsetEntry(std::string_view key,
                                                                   std::string_view value) {
  const auto sep = key.rfind(kTopicSeparator);
  if (sep == std::string_view::npos || sep == 0 || value.size() != 8) return std::nullopt;
  TopicPartition tp;
  tp.topic = std::string(key.substr(0, sep));
  const auto digits = key.substr(sep + 1);
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), tp.partition);
  if (ec != std::errc() || end != digits.data() + digits.size() || digits.empty()) return std::nullopt;
  uint64_t u = 0;
  for (char c : value) u = (u << 8) | static_cast<unsigned char>(c);
  return std::make_pair(std::move(tp), static_cast<int64_t>(u));
}

bool StartsWith(const rocksdb::Slice& s, std::string_view prefix) {
  return s.size() >= prefix.size() && std::string_view(s.data(), prefix.size()) == prefix;
}

// Options for a small store: one LRU cache bounds block cache + memtables
// (the WriteBufferManager charges memtable memory to it), index and filter
// blocks live in that cache too, and the info LOG stays small.
struct TunedOptions {
  rocksdb::DBOptions db;
  rocksdb::ColumnFamilyOptions cf;
};

TunedOptions MakeOptions(const StoreOptions& options) {
  const size_t budget = std::max(options.memory_budget_mib, kMinBudgetMib) * kMiB;
  auto cache = rocksdb::NewLRUCache(budget);

  TunedOptions out;
  out.db.create_if_missing = true;
  out.db.create_missing_column_families = true;
  // Memtables may use up to half the budget (both column families together);
  // beyond that the largest one is flushed. Charged to `cache`, so the total
  // stays within `budget`.
  out.db.write_buffer_manager = std::make_shared<rocksdb::WriteBufferManager>(budget / 2, cache);
  out.db.max_background_jobs = 2;
  out.db.keep_log_file_num = 3;
  out.db.max_log_file_size = 4 * kMiB;
  out.db.max_manifest_file_size = 16 * kMiB;

  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  table.cache_index_and_filter_blocks = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  out.cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  out.cf.write_buffer_size = std::clamp(budget / 8, kMiB, 64 * kMiB);
  out.cf.max_write_buffer_number = 2;
  out.cf.level_compaction_dynamic_level_bytes = true;
  // Levels sized to the memtable (the usual advice: a base level as big as level 0, that is
  // level0_file_num_compaction_trigger memtables). With the defaults (a 256 MiB base level, 64 MiB
  // files) a store under 256 MiB keeps all its data in one level and every compaction of the
  // level-0 files merges them into all of it (a 170 MiB orchestrator store rewrote 89-100 MiB per
  // compaction, every 40-50 s under load); here one compaction rewrites a few files.
  out.cf.max_bytes_for_level_base = out.cf.write_buffer_size * 4;
  out.cf.target_file_size_base = out.cf.write_buffer_size;
  // The offsets column family gets a few bytes per commit, so its memtable rarely fills, and a
  // write-ahead log file is deleted only once every column family's data in it is flushed:
  // without a bound the log grew to RocksDB's default limit, four times all the memtables
  // (192 MiB with the default budget), and past it (248 MiB in BM_ProjectionStoreGrowth), all
  // of it replayed when the store is opened.
  out.db.max_total_wal_size = out.cf.write_buffer_size * 4;
  return out;
}

std::string OpenFailureHint(const rocksdb::Status& s) {
  std::string text = s.ToString();
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  if (text.find("lock") != std::string::npos) {
    return "another sagaflow process may be using it (or another store in this process): stop that "
           "process, or give each instance its own data directory";
  }
  if (s.IsCorruption()) {
    return "the files are damaged: delete the directory and restart, the projection is rebuilt from its "
           "changelog";
  }
  return "check that the directory is writable and the disk has free space; if the files are damaged, "
         "delete the directory and restart to rebuild the projection from its changelog";
}

/// The RocksDB implementation of ProjectionStore: state in column family
/// "state", next offsets per changelog partition in "offsets".
class RocksProjectionStore final : public ProjectionStore {
 public:
  static core::Result<std::unique_ptr<ProjectionStore>> Open(const std::filesystem::path& dir,
                                                             const StoreOptions& options) {
    std::error_code ec;
    if (std::filesystem::exists(dir, ec) && !std::filesystem::is_directory(dir, ec)) {
      return core::Error{core::Errc::kIoError,
                         "cannot open projection store at '" + dir.string() +
                             "': it exists and is not a directory; point the service at a directory",
                         false};
    }
    std::filesystem::create_directories(dir, ec);
    if (ec) {
      return core::Error{core::Errc::kIoError,
                         "cannot create projection store directory '" + dir.string() + "': " + ec.message() +
                             "; check the path and its permissions",
                         false};
    }

    auto tuned = MakeOptions(options);
    std::vector<rocksdb::ColumnFamilyDescriptor> descriptors = {
        {rocksdb::kDefaultColumnFamilyName, tuned.cf},
        {kStateCf, tuned.cf},
        {kOffsetsCf, tuned.cf},
    };
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    const rocksdb::Status s = rocksdb::DB::Open(tuned.db, dir.string(), descriptors, &handles, &raw);
    if (!s.ok()) {
      return core::Error{core::Errc::kIoError,
                         "cannot open projection store at '" + dir.string() + "': " + s.ToString() + "; " +
                             OpenFailureHint(s),
                         false};
    }
    return std::unique_ptr<ProjectionStore>(
        new RocksProjectionStore(dir, options, std::unique_ptr<rocksdb::DB>(raw), std::move(handles)));
  }

  ~RocksProjectionStore() override {
    for (auto* handle : handles_) {
      const auto s = db_->DestroyColumnFamilyHandle(handle);
      if (!s.ok()) spdlog::warn("projection store {}: releasing column family: {}", dir_.string(), s.ToString());
    }
    // Close() reports errors the destructor would swallow; the WAL already
    // holds every committed write, so a failure here loses nothing.
    const auto s = db_->Close();
    if (!s.ok()) spdlog::warn("projection store {}: close: {}", dir_.string(), s.ToString());
  }

  std::optional<std::string> Get(std::string_view key) const override {
    std::string value;
    const auto s = db_->Get(rocksdb::ReadOptions(), state_, rocksdb::Slice(key.data(), key.size()), &value);
    if (s.IsNotFound()) return std::nullopt;
    SAGAFLOW_CHECK(s.ok(), "projection store " + dir_.string() + ": Get failed: " + s.ToString());
    return value;
  }

  void ScanPrefix(std::string_view prefix,
                  const std::function<bool(std::string_view key, std::string_view value)>& fn) const override {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), state_));
    for (it->Seek(rocksdb::Slice(prefix.data(), prefix.size())); it->Valid() && StartsWith(it->key(), prefix);
         it->Next()) {
      const auto k = it->key();
      const auto v = it->value();
      if (!fn(std::string_view(k.data(), k.size()), std::string_view(v.data(), v.size()))) return;
    }
    SAGAFLOW_CHECK(it->status().ok(),
                   "projection store " + dir_.string() + ": scan failed: " + it->status().ToString());
  }

  OffsetMap AppliedOffsets() const override {
    OffsetMap offsets;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), offsets_));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      const auto k = it->key();
      const auto v = it->value();
      auto entry = DecodeOffsetEntry(std::string_view(k.data(), k.size()), std::string_view(v.data(), v.size()));
      SAGAFLOW_CHECK(entry.has_value(), "projection store " + dir_.string() +
                                            ": undecodable applied-offset entry; delete the directory to "
                                            "rebuild it from the changelog");
      offsets.insert(std::move(*entry));
    }
    SAGAFLOW_CHECK(it->status().ok(),
                   "projection store " + dir_.string() + ": reading offsets failed: " + it->status().ToString());
    return offsets;
  }

  core::Status Commit(const WriteSet& writes, const OffsetMap& offsets) override {
    if (writes.empty() && offsets.empty()) return core::Status::Ok();

    rocksdb::WriteBatch batch;
    for (const auto& [key, value] : writes.writes()) {
      const auto s = value ? batch.Put(state_, key, *value) : batch.Delete(state_, key);
      if (!s.ok()) return CommitError(writes, offsets, s);
    }
    for (const auto& [tp, offset] : offsets) {
      if (tp.topic.empty() || tp.topic.find(kTopicSeparator) != std::string::npos) {
        return core::Error{core::Errc::kInvalidArgument,
                           "projection store " + dir_.string() + ": invalid topic name '" + tp.topic +
                               "' in applied offsets",
                           false};
      }
      // Offsets of partitions not in `offsets` are left as stored: that is the merge.
      const auto s = batch.Put(offsets_, OffsetKey(tp), EncodeOffset(offset));
      if (!s.ok()) return CommitError(writes, offsets, s);
    }

    rocksdb::WriteOptions wo;
    wo.sync = options_.sync;
    wo.disableWAL = false;  // the WAL is what makes a Commit survive a crash
    const auto s = db_->Write(wo, &batch);
    if (!s.ok()) return CommitError(writes, offsets, s);
    return core::Status::Ok();
  }

  size_t CountPrefix(std::string_view prefix) const override {
    size_t n = 0;
    ScanPrefix(prefix, [&n](std::string_view, std::string_view) {
      ++n;
      return true;
    });
    return n;
  }

 private:
  RocksProjectionStore(std::filesystem::path dir, const StoreOptions& options, std::unique_ptr<rocksdb::DB> db,
                       std::vector<rocksdb::ColumnFamilyHandle*> handles)
      : dir_(std::move(dir)), options_(options), db_(std::move(db)), handles_(std::move(handles)) {
    // Same order as the descriptors in Open().
    state_ = handles_.at(1);
    offsets_ = handles_.at(2);
  }

  core::Error CommitError(const WriteSet& writes, const OffsetMap& offsets, const rocksdb::Status& s) const {
    // Not retryable: after a failed write RocksDB may be in read-only mode; the
    // service should stop and restart, re-applying from the stored offsets.
    return core::Error{core::Errc::kIoError,
                       "projection store " + dir_.string() + ": commit of " + std::to_string(writes.size()) +
                           " writes and " + std::to_string(offsets.size()) + " offsets failed: " +
                           s.ToString() + "; check the disk (space, permissions), then restart the service",
                       false};
  }

  std::filesystem::path dir_;
  StoreOptions options_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  rocksdb::ColumnFamilyHandle* state_ = nullptr;
  rocksdb::ColumnFamilyHandle* offsets_ = nullptr;
};

}  // namespace

core::Result<std::unique_ptr<ProjectionStore>> ProjectionStore::Open(const std::filesystem::path& dir,
                                                                     const StoreOptions& options) {
  return RocksProjectionStore::Open(dir, options);
}

}  // namespace sagaflow::eventstore
