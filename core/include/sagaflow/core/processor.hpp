#pragma once
/// The consume-transform-produce loop every sagaflow service runs.
///
/// Each iteration: poll a batch of input records, handing them to the handler
/// as they arrive (a batch that fills, see ProcessorOptions::commit_interval,
/// is handled while it fills), let the handler do local work (timers, HTTP
/// requests, delayed replies), then commit everything the handler produced
/// together with the input offsets in one Kafka transaction. Only after the
/// commit succeeds does the handler make the iteration's state changes visible
/// (OnCommitted); if the transaction fails the handler forgets them
/// (OnAborted), the consumer is rewound to its committed offsets and the same
/// input is processed again.
///
/// A handler may finish a record later (TxContext::Defer / Complete), e.g. to
/// simulate a slow participant without blocking others: input offsets are
/// committed only up to the oldest record not yet completed.
///
/// A Processor is one task's loop: it reads from a RecordSource (a share of a
/// group consumer's partitions, see engine/task_engine.hpp) and writes with a
/// transactional producer of its own.
///
/// Thread safety: Run() owns the loop thread; Stop() may be called from any thread.

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "sagaflow/core/kafka/kafka_client.hpp"
#include "sagaflow/core/metrics.hpp"
#include "sagaflow/core/result.hpp"

namespace sagaflow::core {

/// What a handler may do during one iteration.
class TxContext {
 public:
  virtual ~TxContext() = default;
  /// Adds a record to the iteration's transaction.
  virtual void Produce(const std::string& topic, const std::string& key, const std::string& value) = 0;
  /// Adds a record for `partition` of `topic` (whatever its key) to the transaction.
  virtual void ProduceTo(const std::string& topic, int32_t partition, const std::string& key,
                         const std::string& value) = 0;
  /// The record will be completed in a later iteration: its offset (and
  /// those after it) are not committed until then.
  virtual void Defer(const kafka::Record& record) = 0;
  /// Completes a record deferred in an earlier iteration.
  virtual void Complete(const std::string& topic, int32_t partition, int64_t offset) = 0;
  /// Number of records produced so far in this iteration.
  virtual size_t produced() const = 0;
};

/// The service-specific part of the loop. All calls come from the loop thread.
class ProcessorHandler {
 public:
  virtual ~ProcessorHandler() = default;
  /// New input records, grouped by partition, in offset order within each.
  /// Called for each arrival while an iteration's batch fills, so possibly
  /// several times before the iteration's OnIdle and commit: the state changes
  /// of every call belong to the one transaction.
  virtual void OnRecords(std::span<const kafka::Record> records, TxContext& tx) = 0;
  /// Called once per iteration after OnRecords (also when nothing arrived).
  virtual void OnIdle(TxContext& tx) = 0;
  /// The iteration's transaction committed; `delivered[i]` is where the i-th
  /// produced record landed. Also called, with nothing delivered, after an
  /// iteration that had nothing to commit.
  virtual void OnCommitted(const std::vector<kafka::Delivered>& delivered) = 0;
  /// The iteration's transaction was aborted: forget its state changes and
  /// every deferred record (they will be consumed again).
  virtual void OnAborted() = 0;
  /// How long the loop may wait for input before calling OnIdle again.
  virtual std::chrono::milliseconds IdleInterval() const { return std::chrono::milliseconds(50); }
  /// Work handed to the handler from outside Kafka (e.g. HTTP requests) that
  /// waits for the next OnIdle: input waiting, as RecordSource::Queued.
  virtual size_t Waiting() const { return 0; }
  /// Whether nobody waits for `record`'s transaction to commit (what it
  /// changes is known to those who need it by other means). An iteration
  /// that gets only such records, with nothing Waiting, lets its batch fill
  /// for up to the commit interval, as a loop that is behind does; a record
  /// that is waited for, or work Waiting (the loop is woken for it), ends the
  /// fill at once. So the transaction of records that may wait is shared with
  /// the next one that is waited for.
  virtual bool MayWait(const kafka::Record& /*record*/) const { return false; }
};

/// Where a Processor gets its input: a share of a group consumer's partitions.
/// Poll and Rewind are called on the processor's thread.
class RecordSource {
 public:
  virtual ~RecordSource() = default;
  /// Up to `max_records` records, waiting at most `timeout` for the first.
  virtual std::vector<kafka::Record> Poll(size_t max_records, std::chrono::milliseconds timeout) = 0;
  /// Records received and waiting for Poll: input that arrived while the
  /// loop was busy, so the loop is behind. A source that cannot tell says 0.
  virtual size_t Queued() const { return 0; }
  /// Back to the committed offsets: the records after them come again.
  virtual Status Rewind() = 0;
  /// The group consumer whose metadata fences the transaction's offsets.
  virtual kafka::GroupConsumer& consumer() = 0;
};

/// Makes a task's transactional producer (tests put fakes here).
using ProducerFactory = std::function<Result<std::unique_ptr<kafka::TransactionalProducer>>(
    const kafka::KafkaConfig& config, const std::string& transactional_id, std::chrono::milliseconds init_timeout)>;

struct ProcessorOptions {
  kafka::KafkaConfig kafka;
  /// Empty: kafka::TransactionalProducer::Open.
  ProducerFactory producer_factory;
  std::string transactional_id;
  size_t max_batch = 2000;
  /// Stop consuming new input while this many records are deferred.
  size_t max_deferred = 20'000;
  /// When the loop is behind (RecordSource::Queued or ProcessorHandler::Waiting:
  /// input was waiting as an iteration began, and as the one before began),
  /// its batch keeps filling until this long after the previous transaction
  /// started, then commits. Input reaching a loop that waits for it, or a
  /// burst of records that arrived during one commit, is committed at once
  /// whatever the interval, so a lone request pays nothing. Transactions, not
  /// records, are what the broker pays for: under load, fewer and larger ones
  /// cost less CPU per record. Records nobody waits for fill for this long too
  /// (ProcessorHandler::MayWait). 0 commits as soon as a batch is handled.
  std::chrono::milliseconds commit_interval{0};
  /// Name for logs and metrics ("warehouse", "warehouse task 2").
  std::string service;
  /// The transactional id names this process (not a task that moves between
  /// instances): when the producer is fenced, its transaction was aborted by
  /// the broker (open longer than transaction.timeout.ms, e.g. across a broker
  /// outage), so a new producer takes over and the batch is processed again.
  /// Fenced again within a minute means another process uses the same id: Run
  /// returns the error. False: fenced means the task moved, Run returns at once.
  bool reopen_when_fenced = false;
};

/// See the file comment.
class Processor {
 public:
  Processor(ProcessorOptions options, ProcessorHandler& handler, Metrics& metrics, RecordSource& source);
  ~Processor();

  /// Opens the transactional producer, fencing any earlier producer with the
  /// same transactional id and aborting its open transaction. Call before
  /// restoring state from changelogs, so that only committed records are read.
  Status Connect(std::chrono::milliseconds timeout);
  /// Runs the loop until Stop(); returns an error only when it cannot go on
  /// (fenced by another producer, unusable configuration). Ends with the last
  /// transaction committed or aborted.
  Status Run();
  void Stop() { stop_.store(true); }
  bool stopping() const { return stop_.load(); }
  bool running() const { return running_.load(); }

 private:
  class Context;
  Status RunIteration();
  Status Recover(const Error& error);
  Status RecreateProducer();
  /// After a fencing: whether a new producer may take over (reopen_when_fenced,
  /// and not fenced before within a minute); records the reopening.
  bool MayReopen();
  /// The error that ends Run after a fencing that may not be reopened.
  Error FencedForGood(Error error) const;

  ProcessorOptions options_;
  ProcessorHandler& handler_;
  Metrics& metrics_;
  RecordSource& source_;
  std::unique_ptr<kafka::TransactionalProducer> producer_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> running_{false};
  // Per input partition: the next offset after the last record handed to the
  // handler, and the offsets still deferred.
  std::map<kafka::TopicPartition, int64_t> consumed_;
  std::map<kafka::TopicPartition, std::set<int64_t>> deferred_;
  // Per input partition: the offset last sent with a transaction.
  std::map<kafka::TopicPartition, int64_t> sent_;
  size_t deferred_count_ = 0;
  std::chrono::steady_clock::time_point last_commit_{};
  // Input was waiting as the last iteration began (see commit_interval).
  bool behind_ = false;
  std::chrono::steady_clock::time_point last_reopened_{};
};

}  // namespace sagaflow::core
