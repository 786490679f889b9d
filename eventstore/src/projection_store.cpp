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
#include <mutex>
#include <shared_mutex>
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
// Column family of table T ("table:ev" holds the keys "ev/...").
constexpr std::string_view kTableCfPrefix = "table:";
// Keys moved per WriteBatch when a store of the single-column-family layout is opened.
constexpr size_t kMoveBatch = 10'000;
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

std::string_view View(const rocksdb::Slice& s) { return {s.data(), s.size()}; }

// The table of a key: what precedes its first '/' ("ev" for "ev/42/7"); none ("") without a '/'.
std::string_view TableOf(std::string_view key) {
  const auto slash = key.find('/');
  return slash == std::string_view::npos ? std::string_view() : key.substr(0, slash);
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

/// The RocksDB implementation of ProjectionStore: next offsets per changelog
/// partition in column family "offsets"; the state in one column family per
/// table, "table:T" holding the keys "T/...", created on the first write to
/// the table; keys without a '/' in "state".
///
/// Why a column family per table: a service's keys grow with time within each
/// table (order ids are increasing) but not across tables, and RocksDB orders
/// a column family's keys in one range. In one column family every flushed
/// file spanned from the newest keys of one table to the newest of another,
/// so it overlapped all the tables in between and each compaction rewrote
/// them; a table of its own flushes files that overlap only its newest keys,
/// and its compactions rewrite little besides them.
///
/// A store written by earlier versions (every key in "state") has its keys
/// moved to their tables' column families when it is opened, in batches that
/// each move keys atomically.
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
    // The tables' column families of an existing store (none in a new directory).
    std::vector<std::string> existing;
    if (std::filesystem::exists(dir / "CURRENT", ec)) {
      const auto listed = rocksdb::DB::ListColumnFamilies(tuned.db, dir.string(), &existing);
      if (!listed.ok()) {
        return core::Error{core::Errc::kIoError,
                           "cannot open projection store at '" + dir.string() + "': " + listed.ToString() + "; " +
                               OpenFailureHint(listed),
                           false};
      }
    }
    for (const auto& name : existing) {
      if (name.starts_with(kTableCfPrefix)) descriptors.emplace_back(name, tuned.cf);
    }
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    const rocksdb::Status s = rocksdb::DB::Open(tuned.db, dir.string(), descriptors, &handles, &raw);
    if (!s.ok()) {
      return core::Error{core::Errc::kIoError,
                         "cannot open projection store at '" + dir.string() + "': " + s.ToString() + "; " +
                             OpenFailureHint(s),
                         false};
    }
    // Same order as the descriptors: default, state, offsets, then the tables.
    Tables tables;
    for (size_t i = 3; i < descriptors.size(); ++i) {
      tables.emplace(descriptors[i].name.substr(kTableCfPrefix.size()), handles[i]);
    }
    std::unique_ptr<RocksProjectionStore> store(new RocksProjectionStore(
        dir, options, tuned.cf, std::unique_ptr<rocksdb::DB>(raw), handles[0], handles[1], handles[2], std::move(tables)));
    if (auto moved = store->MoveKeysToTables(); !moved.ok()) return moved.error();
    return std::unique_ptr<ProjectionStore>(std::move(store));
  }

  ~RocksProjectionStore() override {
    std::vector<rocksdb::ColumnFamilyHandle*> handles = {default_, state_, offsets_};
    for (const auto& [table, cf] : tables_) handles.push_back(cf);
    for (auto* handle : handles) {
      const auto s = db_->DestroyColumnFamilyHandle(handle);
      if (!s.ok()) spdlog::warn("projection store {}: releasing column family: {}", dir_.string(), s.ToString());
    }
    // Close() reports errors the destructor would swallow; the WAL already
    // holds every committed write, so a failure here loses nothing.
    const auto s = db_->Close();
    if (!s.ok()) spdlog::warn("projection store {}: close: {}", dir_.string(), s.ToString());
  }

  std::optional<std::string> Get(std::string_view key) const override {
    auto* cf = FindColumnFamily(TableOf(key));
    if (cf == nullptr) return std::nullopt;  // nothing was ever written to the key's table
    std::string value;
    const auto s = db_->Get(rocksdb::ReadOptions(), cf, rocksdb::Slice(key.data(), key.size()), &value);
    if (s.IsNotFound()) return std::nullopt;
    SAGAFLOW_CHECK(s.ok(), "projection store " + dir_.string() + ": Get failed: " + s.ToString());
    return value;
  }

  void ScanPrefix(std::string_view prefix,
                  const std::function<bool(std::string_view key, std::string_view value)>& fn) const override {
    // The column families that may hold keys starting with `prefix`: its table's when it names
    // one ("ev/42/"); otherwise ("ev", "") "state" and every table whose name starts with it.
    std::vector<rocksdb::ColumnFamilyHandle*> families;
    if (prefix.find('/') != std::string_view::npos) {
      if (auto* cf = FindColumnFamily(TableOf(prefix))) families.push_back(cf);
    } else {
      families.push_back(state_);
      std::shared_lock lock(tables_mu_);
      for (const auto& [table, cf] : tables_) {
        if (table.starts_with(prefix)) families.push_back(cf);
      }
    }
    // Merged in key order (the store's comparator is bytewise).
    std::vector<std::unique_ptr<rocksdb::Iterator>> its;
    for (auto* cf : families) {
      its.emplace_back(db_->NewIterator(rocksdb::ReadOptions(), cf));
      its.back()->Seek(rocksdb::Slice(prefix.data(), prefix.size()));
    }
    while (true) {
      rocksdb::Iterator* next = nullptr;
      for (auto& it : its) {
        if (!it->Valid() || !StartsWith(it->key(), prefix)) continue;
        if (next == nullptr || it->key().compare(next->key()) < 0) next = it.get();
      }
      if (next == nullptr) break;
      if (!fn(View(next->key()), View(next->value()))) return;
      next->Next();
    }
    for (const auto& it : its) {
      SAGAFLOW_CHECK(it->status().ok(),
                     "projection store " + dir_.string() + ": scan failed: " + it->status().ToString());
    }
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
    // The writes are in key order, so a table's keys come one after the other.
    std::string_view table;
    rocksdb::ColumnFamilyHandle* cf = nullptr;
    for (const auto& [key, value] : writes.writes()) {
      if (cf == nullptr || TableOf(key) != table) {
        table = TableOf(key);
        if (auto s = ColumnFamilyForWrite(table, &cf); !s.ok()) {
          return CommitError(writes, offsets,
                             "creating the column family of table '" + std::string(table) + "': " + s.ToString());
        }
      }
      const auto s = value ? batch.Put(cf, key, *value) : batch.Delete(cf, key);
      if (!s.ok()) return CommitError(writes, offsets, s.ToString());
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
      if (!s.ok()) return CommitError(writes, offsets, s.ToString());
    }

    rocksdb::WriteOptions wo;
    wo.sync = options_.sync;
    wo.disableWAL = false;  // the WAL is what makes a Commit survive a crash
    const auto s = db_->Write(wo, &batch);
    if (!s.ok()) return CommitError(writes, offsets, s.ToString());
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
  using Tables = std::map<std::string, rocksdb::ColumnFamilyHandle*, std::less<>>;

  RocksProjectionStore(std::filesystem::path dir, const StoreOptions& options, rocksdb::ColumnFamilyOptions cf_options,
                       std::unique_ptr<rocksdb::DB> db, rocksdb::ColumnFamilyHandle* default_cf,
                       rocksdb::ColumnFamilyHandle* state, rocksdb::ColumnFamilyHandle* offsets, Tables tables)
      : dir_(std::move(dir)),
        options_(options),
        cf_options_(std::move(cf_options)),
        db_(std::move(db)),
        default_(default_cf),
        state_(state),
        offsets_(offsets),
        tables_(std::move(tables)) {}

  // The column family of `table` ("state" for none); nullptr if the table has none yet.
  rocksdb::ColumnFamilyHandle* FindColumnFamily(std::string_view table) const {
    if (table.empty()) return state_;
    std::shared_lock lock(tables_mu_);
    auto it = tables_.find(table);
    return it == tables_.end() ? nullptr : it->second;
  }

  // For a write: the column family of `table` in `*cf`, created if it has none yet.
  rocksdb::Status ColumnFamilyForWrite(std::string_view table, rocksdb::ColumnFamilyHandle** cf) {
    if ((*cf = FindColumnFamily(table)) != nullptr) return rocksdb::Status::OK();
    // Tasks commit from threads of their own: one creates, the others then find it.
    std::lock_guard create(create_mu_);
    if ((*cf = FindColumnFamily(table)) != nullptr) return rocksdb::Status::OK();
    const auto s = db_->CreateColumnFamily(cf_options_, std::string(kTableCfPrefix) + std::string(table), cf);
    if (!s.ok()) return s;
    std::unique_lock lock(tables_mu_);
    tables_.emplace(std::string(table), *cf);
    return s;
  }

  // Moves the keys of tables out of "state", where stores of the single-column-family layout
  // kept them; each batch moves its keys atomically, so a move cut short resumes on the next open.
  // Then "state" is compacted, so that later opens do not step over the moved keys' tombstones.
  core::Status MoveKeysToTables() {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), state_));
    size_t moved = 0;
    rocksdb::WriteBatch batch;
    auto write = [&]() -> core::Status {
      if (batch.Count() == 0) return core::Status::Ok();
      rocksdb::WriteOptions wo;
      wo.sync = options_.sync;
      if (auto s = db_->Write(wo, &batch); !s.ok()) return MoveError(s);
      batch.Clear();
      spdlog::info("projection store {}: {} keys moved to their tables' column families", dir_.string(), moved);
      return core::Status::Ok();
    };
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      const auto key = View(it->key());
      const auto table = TableOf(key);
      if (table.empty()) continue;
      rocksdb::ColumnFamilyHandle* cf = nullptr;
      if (auto s = ColumnFamilyForWrite(table, &cf); !s.ok()) return MoveError(s);
      if (auto s = batch.Put(cf, it->key(), it->value()); !s.ok()) return MoveError(s);
      if (auto s = batch.Delete(state_, it->key()); !s.ok()) return MoveError(s);
      if (++moved % kMoveBatch == 0) {
        if (auto s = write(); !s.ok()) return s;
      }
    }
    if (!it->status().ok()) return MoveError(it->status());
    if (auto s = write(); !s.ok() || moved == 0) return s;
    if (auto s = db_->CompactRange(rocksdb::CompactRangeOptions(), state_, nullptr, nullptr); !s.ok()) {
      spdlog::warn("projection store {}: compacting the moved keys away: {}", dir_.string(), s.ToString());
    }
    return core::Status::Ok();
  }

  core::Error MoveError(const rocksdb::Status& s) const {
    return core::Error{core::Errc::kIoError,
                       "projection store " + dir_.string() + ": moving keys to their tables' column families: " +
                           s.ToString() + "; " + OpenFailureHint(s),
                       false};
  }

  core::Error CommitError(const WriteSet& writes, const OffsetMap& offsets, const std::string& reason) const {
    // Not retryable: after a failed write RocksDB may be in read-only mode; the
    // service should stop and restart, re-applying from the stored offsets.
    return core::Error{core::Errc::kIoError,
                       "projection store " + dir_.string() + ": commit of " + std::to_string(writes.size()) +
                           " writes and " + std::to_string(offsets.size()) + " offsets failed: " + reason +
                           "; check the disk (space, permissions), then restart the service",
                       false};
  }

  std::filesystem::path dir_;
  StoreOptions options_;
  rocksdb::ColumnFamilyOptions cf_options_;
  std::unique_ptr<rocksdb::DB> db_;
  // Column family handles, all released when the store closes ("default" is unused).
  rocksdb::ColumnFamilyHandle* default_;
  rocksdb::ColumnFamilyHandle* state_;
  rocksdb::ColumnFamilyHandle* offsets_;
  // Table name -> its column family. Readers (any thread) look up under a shared lock; a
  // Commit that writes to a new table creates its column family under create_mu_ and adds it.
  std::mutex create_mu_;
  mutable std::shared_mutex tables_mu_;
  Tables tables_;
};

}  // namespace

core::Result<std::unique_ptr<ProjectionStore>> ProjectionStore::Open(const std::filesystem::path& dir,
                                                                     const StoreOptions& options) {
  return RocksProjectionStore::Open(dir, options);
}

}  // namespace sagaflow::eventstore
