#pragma once
/// Partition-owned tasks: how a service instance splits its input, its state
/// and its transactions by partition (the model is Kafka Streams' tasks).
///
/// All input topics of a service are co-partitioned (same partition count,
/// keyed by order id), so partition p of every input topic belongs to task p.
/// A TaskEngine runs one group consumer and, for each task whose partitions
/// the group assigned to this instance:
///   - a transactional producer of its own, with the transactional id
///     "<prefix>-p<task>": opening it fences the previous owner of the task
///     (another instance, or a zombie of this one) and aborts its open
///     transaction, so the new owner reads only committed changelog records;
///   - a TaskHandler made by the service's factory, which restores the task's
///     state from its changelog partitions before any input of the task is
///     processed (the task's partitions stay paused until then);
///   - a thread running a Processor: poll the task's records, handle them,
///     commit outputs + changelog records + input offsets in one transaction.
/// Tasks commit independently, so one task's commit never waits for another's.
/// When partitions are revoked, their tasks finish the current iteration
/// (commit it, or abort it when the partitions were lost) and are dropped
/// before the consumer gives the partitions up.
///
/// With `shared_producer` (what services run by default) the tasks of one
/// instance keep their own handlers and state but share one processor, thread
/// and transactional producer, with the instance's transactional id
/// "<prefix>-all" (the prefix names the instance): one transaction per cycle
/// covers every task's outputs, changelog records and input offsets, so the
/// broker's per-transaction cost (AddPartitionsToTxn, AddOffsetsToTxn,
/// TxnOffsetCommit, EndTxn, markers, transaction state) is paid once per
/// instance, not once per task, and the tasks' records for one output
/// partition share Produce requests. Fencing moves from the transactional id
/// to the group generation (KIP-447): the offsets of every transaction are
/// sent with the consumer's group metadata, so a zombie that lost its
/// partitions in a rebalance has its transaction refused by the group
/// coordinator, and the new owner reads committed offsets and changelogs only
/// once any transaction the previous owner left open is over (committed, or
/// aborted by the broker after transaction.timeout.ms when the previous owner
/// died, or at once when it restarts with its transactional id).
///
/// A service whose state is not partitioned like its input runs a single task
/// for all its partitions (`single_task`), with the transactional id
/// "<prefix>-all".
///
/// Thread safety: Run() owns the consumer thread; Stop() and the accessors may
/// be called from any thread. Factory and handlers are called on task threads.

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "sagaflow/core/kafka/kafka_client.hpp"
#include "sagaflow/core/metrics.hpp"
#include "sagaflow/core/processor.hpp"
#include "sagaflow/core/result.hpp"

namespace sagaflow::core {

/// The service logic of one task: its input records and its share of the state.
class TaskHandler : public ProcessorHandler {
 public:
  /// Brings the task's state up to date from its changelog partitions (from
  /// the local checkpoint; from the start on an empty disk). Called on the
  /// task's thread once its producer is ready, before any input. A retryable
  /// error is retried with backoff; any other stops the engine.
  virtual Status Restore() = 0;
};

/// Makes the engine's group consumer (tests put fakes here).
using ConsumerFactory = std::function<Result<std::unique_ptr<kafka::GroupConsumer>>(
    const kafka::KafkaConfig& config, const std::string& group_id, const std::vector<std::string>& topics,
    kafka::RebalanceListener listener)>;

struct TaskEngineOptions {
  kafka::KafkaConfig kafka;
  /// Empty: kafka::GroupConsumer::Open and kafka::TransactionalProducer::Open.
  ConsumerFactory consumer_factory;
  ProducerFactory producer_factory;
  std::string group_id;
  /// Task t writes with the transactional id "<prefix>-p<t>" ("<prefix>-all" for a single task or a
  /// shared producer: the prefix must then name the instance).
  std::string transactional_id_prefix;
  std::vector<std::string> input_topics;
  /// Name for logs and metrics.
  std::string service;
  /// One task for all partitions instead of one per partition.
  bool single_task = false;
  /// The tasks share one processor and transactional producer ("<prefix>-all"),
  /// see the file comment; false: each task has its own ("<prefix>-p<t>").
  bool shared_producer = false;
  /// Most records one transaction handles.
  size_t max_batch = 2000;
  /// See ProcessorOptions::commit_interval.
  std::chrono::milliseconds commit_interval{0};
  /// Records buffered for a task before its partitions are paused.
  size_t max_queued = 10'000;
};

/// See the file comment.
class TaskEngine {
 public:
  /// The task id of a single-task engine.
  static constexpr int32_t kAllPartitions = -1;
  /// Makes the handler of task `task` (a partition number, or kAllPartitions).
  using Factory = std::function<std::unique_ptr<TaskHandler>(int32_t task)>;

  TaskEngine(TaskEngineOptions options, Factory factory, Metrics& metrics);
  ~TaskEngine();
  TaskEngine(const TaskEngine&) = delete;
  TaskEngine& operator=(const TaskEngine&) = delete;

  /// Consumes until Stop(), or until a task cannot go on (fenced by another
  /// producer with its transactional id, unusable configuration), whose error
  /// it returns. Every task is stopped and joined before it returns.
  Status Run();
  void Stop();
  /// Any thread: every task's loop goes round at once instead of waiting up
  /// to its handler's IdleInterval for input, so that OnIdle picks up work
  /// handed to the handler from outside Kafka (e.g. an HTTP request).
  void Wake();
  /// True while the consumer loop runs.
  bool running() const;
  /// Tasks assigned to this instance, and those of them restored and processing.
  size_t assigned_tasks() const;
  size_t active_tasks() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sagaflow::core
