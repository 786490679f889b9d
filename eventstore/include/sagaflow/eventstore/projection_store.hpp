#pragma once
/// A service's local projection: a RocksDB database holding the state derived
/// from its Kafka changelog topics plus, in the same atomic write, the next
/// changelog offset to apply for each topic partition.
///
/// Lifecycle: Open() a directory (created if missing), read with Get/ScanPrefix,
/// advance with Commit(). Dropping the object closes the database.
/// Keys are grouped in tables, the part of a key before its first '/' ("orders"
/// in "orders/42"); each table is kept apart on disk (a RocksDB column family),
/// so a table whose keys grow with time (ids, versions) compacts cheaply.
/// Thread safety: every call may run concurrently with the others (a service's
/// tasks commit from threads of their own); commits that write the same keys
/// or offsets must be ordered by the caller.
/// Durability: writes go through the WAL; with sync=false (the default) a
/// process crash loses nothing, a machine crash can lose the last writes, which
/// the service then re-applies from the changelog (offsets are stored with them).

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "sagaflow/core/kafka/kafka_client.hpp"
#include "sagaflow/core/result.hpp"

namespace sagaflow::eventstore {

/// A Kafka topic partition, used as the key of applied offsets.
using TopicPartition = kafka::TopicPartition;

/// Next offset to read, per changelog partition.
using OffsetMap = kafka::OffsetMap;

/// A set of state changes applied atomically by Commit. Later writes to the
/// same key replace earlier ones. std::nullopt as value means delete.
class WriteSet {
 public:
  void Put(std::string key, std::string value) { writes_[std::move(key)] = std::move(value); }
  void Delete(std::string key) { writes_[std::move(key)] = std::nullopt; }
  /// Pending value of `key`: not found -> nullopt; found -> the value or a deletion (nullopt inside).
  std::optional<std::optional<std::string>> Find(std::string_view key) const;
  bool empty() const { return writes_.empty(); }
  size_t size() const { return writes_.size(); }
  void clear() { writes_.clear(); }
  const std::map<std::string, std::optional<std::string>, std::less<>>& writes() const { return writes_; }

 private:
  std::map<std::string, std::optional<std::string>, std::less<>> writes_;
};

struct StoreOptions {
  /// fsync the WAL on every Commit (survives a machine crash; slower).
  bool sync = false;
  /// Block cache + memtable budget in MiB (small services need little).
  size_t memory_budget_mib = 64;
};

/// See the file comment.
class ProjectionStore {
 public:
  /// Opens (creating if needed) the store in `dir`. Fails with kIoError and
  /// the RocksDB message if the directory cannot be used (e.g. locked by
  /// another running process).
  static core::Result<std::unique_ptr<ProjectionStore>> Open(const std::filesystem::path& dir,
                                                             const StoreOptions& options = {});
  virtual ~ProjectionStore() = default;

  /// The stored value of `key`, nullopt if absent. I/O errors abort (they mean the disk is gone).
  virtual std::optional<std::string> Get(std::string_view key) const = 0;

  /// Calls `fn(key, value)` for every key starting with `prefix`, in key order,
  /// until it returns false.
  virtual void ScanPrefix(std::string_view prefix,
                          const std::function<bool(std::string_view key, std::string_view value)>& fn) const = 0;

  /// The applied offsets stored by the last Commit (empty for a new store).
  virtual OffsetMap AppliedOffsets() const = 0;

  /// Atomically writes `writes` and the given offsets (merged over the stored
  /// ones) in one RocksDB WriteBatch.
  virtual core::Status Commit(const WriteSet& writes, const OffsetMap& offsets) = 0;

  /// Number of keys with `prefix` (scans; for metrics and tests).
  virtual size_t CountPrefix(std::string_view prefix) const = 0;
};

/// A read view of `store` with uncommitted `pending` writes layered on top:
/// what the state will be once `pending` is committed.
class OverlayView {
 public:
  OverlayView(const ProjectionStore& store, const WriteSet& pending) : store_(store), pending_(pending) {}
  std::optional<std::string> Get(std::string_view key) const;

 private:
  const ProjectionStore& store_;
  const WriteSet& pending_;
};

}  // namespace sagaflow::eventstore
