#pragma once
/// A read-only view of ALL partitions of a compacted topic, kept up to date as
/// records are committed (Kafka Streams' GlobalKTable is the model). Every
/// instance of a service can hold one and answer reads about keys whose
/// partitions other instances own, without asking them.
///
/// The view is a fold of the topic: record key K is stored as
/// "<table>/<K>" with the record's raw value (an empty value, a tombstone,
/// deletes it), plus whatever the optional `index` function derives from the
/// record (e.g. a secondary index), in the same RocksDB write as the next
/// offset of the record's partition (stored under the pseudo-topic
/// "view:<table>", so it never mixes with a task's changelog offsets). After a
/// restart the view goes on from there; on an empty disk it reads the topic
/// from the beginning.
///
/// Consistency: the view lags the topic by the time a committed record takes
/// to be fetched (milliseconds on a healthy cluster); it only moves forward.
/// CatchUp() waits until it holds everything committed before the call: a
/// read after CatchUp sees every write acknowledged before it (read-your-writes
/// for a client that got its answer from any instance), provided the writer
/// acknowledges a write only once a view of its own holds it. "Committed"
/// here is the partition's last stable offset, and the broker writes a
/// transaction's commit markers after commit_transaction has returned: until
/// then the offset stays short of that transaction's records. A CatchUp
/// little short of the end asks the tail which of the offsets left are
/// records (kafka::TopicTail::CommittedRecordEnds) rather than waiting for
/// the reader to pass the markers after them.
///
/// Lifecycle: construct, Start() (returns at once; the view fills in the
/// background), read, Stop() (idempotent; the destructor calls it).
/// Thread safety: Get/Scan/CatchUp/Positions from any thread; `on_applied`
/// is called on the view's own thread after each batch is stored.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "sagaflow/core/kafka/kafka_client.hpp"
#include "sagaflow/core/result.hpp"
#include "sagaflow/eventstore/projection_store.hpp"

namespace sagaflow::runtime {

/// Makes the view's reader (tests put fakes here); empty: kafka::TopicTail::Open.
using TopicTailFactory = std::function<core::Result<std::unique_ptr<kafka::TopicTail>>(
    const kafka::KafkaConfig& config, const std::string& topic, const kafka::OffsetMap& start)>;

struct GlobalViewOptions {
  kafka::KafkaConfig kafka;
  /// The compacted topic to follow (all its partitions).
  std::string topic;
  /// Key prefix of the view in the store: record key K is "<table>/<K>". Must
  /// differ from every other table of the store.
  std::string table;
  /// Extra writes derived from one record, stored with it (optional).
  std::function<void(const kafka::Record& record, eventstore::WriteSet& out)> index;
  /// Called on the view's thread after each batch of records is stored, before
  /// CatchUp counts them as held (optional).
  std::function<void(const std::vector<kafka::Record>& records)> on_applied;
  TopicTailFactory tail_factory;
};

/// See the file comment.
class GlobalView {
 public:
  GlobalView(GlobalViewOptions options, eventstore::ProjectionStore& store);
  ~GlobalView();
  GlobalView(const GlobalView&) = delete;
  GlobalView& operator=(const GlobalView&) = delete;

  /// Opens the reader at the stored offsets and starts following the topic.
  /// Fails (retryable) when the topic cannot be read.
  core::Status Start();
  /// Stops following; reads keep answering from what was stored.
  void Stop();

  /// The latest value of record key `key`, nullopt when absent or deleted.
  std::optional<std::string> Get(std::string_view key) const;
  /// Calls `fn(record key, value)` for every key starting with `key_prefix`,
  /// in key order, until it returns false.
  void Scan(std::string_view key_prefix,
            const std::function<bool(std::string_view key, std::string_view value)>& fn) const;
  /// The store key of record key `key` ("<table>/<key>"), for reading what `index` wrote next to it.
  std::string StoreKey(std::string_view key) const;

  /// Waits until the view holds every record committed to the topic (to
  /// `partition` only, when given) before this call. Errors: kTimeout
  /// (retryable) when that takes longer than `timeout`; kUnavailable
  /// (retryable) when the topic's end cannot be read or the view is stopped.
  core::Status CatchUp(std::chrono::milliseconds timeout, std::optional<int32_t> partition = std::nullopt) const;
  /// The next offset the view reads, per partition of the topic.
  kafka::OffsetMap Positions() const;

 private:
  void Run();
  kafka::TopicPartition OffsetKey(int32_t partition) const;

  const GlobalViewOptions options_;
  eventstore::ProjectionStore& store_;
  std::unique_ptr<kafka::TopicTail> tail_;
  std::thread thread_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  kafka::OffsetMap positions_;  // keyed by the topic's real name
  bool running_ = false;
  bool stop_ = false;
};

}  // namespace sagaflow::runtime
