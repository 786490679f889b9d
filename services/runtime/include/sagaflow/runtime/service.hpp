#pragma once
/// What every sagaflow service is made of, wired together:
///   - a ProjectionStore (RocksDB) holding the service's state, a fold of its
///     changelog topics, with the applied changelog offsets;
///   - a core::TaskEngine consuming the service's input topics, split into
///     partition-owned tasks (core/engine/task_engine.hpp); each task is a
///     ServiceTask with its own transactional producer, its share of the state
///     and its own consume-transform-produce loop;
///   - an HttpServer with GET / (health), GET /metrics and the service's routes.
///
/// Start(): open the store, create missing topics, check that the input and
/// changelog topics are co-partitioned, serve HTTP and run the engine. When
/// the group assigns a partition, its task fences the partition's previous
/// owner, restores its state from its changelog partitions (from the stored
/// offsets; from offset 0 on an empty disk), and only then processes input.
///
/// State changes go through ServiceTask::EmitChangelog: the record is produced
/// in the task's current transaction and its effect is staged; after the
/// commit the staged writes and the changelog offsets are written to RocksDB in
/// one batch, after an abort they are dropped. Reads on a task thread see its
/// staged writes (Get); HTTP threads read committed state (store()).
///
/// Subclasses implement the topics, the routes and CreateTask; the logic lives
/// in their ServiceTask subclasses.
/// Thread safety: each task's logic runs on its own thread and touches only
/// its own partitions' keys; HTTP handlers on the server's pool only read
/// store() or hand work to a task (LocalQueue).

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "sagaflow/core/codec.hpp"
#include "sagaflow/core/metrics.hpp"
#include "sagaflow/core/engine/task_engine.hpp"
#include "sagaflow/core/processor.hpp"
#include "sagaflow/core/topics.hpp"
#include "sagaflow/eventstore/projection_store.hpp"
#include "sagaflow/runtime/cluster_watch.hpp"
#include "sagaflow/runtime/http_server.hpp"

namespace sagaflow::runtime {

/// Settings every service takes from the command line.
struct ServiceOptions {
  std::string brokers = "127.0.0.1:9092";
  std::string topic_prefix;
  std::string data_dir;
  std::string http_host = "127.0.0.1";
  int http_port = 0;
  /// Distinguishes instances of one service: part of their transactional id,
  /// so it must be unique among the running instances of a service.
  std::string instance_id = "0";
  /// Partition count used when this service creates missing topics.
  int32_t partitions = 3;
  /// fsync RocksDB's WAL on every commit.
  bool sync_writes = false;
  /// How long a loop that is behind, or that holds only input nobody waits for, lets its batch
  /// fill (core::ProcessorOptions::commit_interval).
  int commit_interval_ms = 30;
  /// Each partition's task gets a transactional producer of its own (fenced by
  /// its transactional id when another instance takes it over) instead of one
  /// producer and one transaction per cycle for all the instance's tasks.
  bool producer_per_task = false;
  /// A file holding the token that admin requests (fault injection, restock)
  /// must send as "Authorization: Bearer <token>". Empty: those endpoints are off.
  std::string admin_token_file;
  std::map<std::string, std::string> kafka_properties;
};

/// A changelog topic and the key prefix of its records in the store.
struct Changelog {
  std::string topic;
  std::string table;  // e.g. "stock": record key K is stored as "stock/K"
};

class ServiceTask;

/// See the file comment.
class Service {
 public:
  Service(std::string name, ServiceOptions options);
  virtual ~Service();

  /// Starts everything; returns once HTTP serves and the engine runs (tasks
  /// restore and start processing as the group assigns their partitions).
  core::Status Start();
  /// Stops HTTP and the engine, waits for them. Idempotent. Every final
  /// subclass calls it in its destructor, while its own members still exist.
  void Stop();
  /// Blocks until the engine ends (Stop, or a fatal error); returns its status.
  core::Status Wait();
  /// Whether the engine has ended (after Stop or a fatal error).
  bool Done() const {
    return done_future_.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
  }
  /// Whether every assigned task restored its state and processes input.
  bool Ready() const;
  /// Tasks the group assigned to this instance (0 before Start and after Stop).
  size_t AssignedTasks() const;
  /// Any thread: the tasks look at their local queues now (OnIdle) rather than
  /// after their idle interval; call after handing a task work from HTTP.
  void WakeTasks();

  const std::string& name() const { return name_; }
  int http_port() const { return http_.port(); }
  const core::TopicNames& topics() const { return topics_; }
  core::Metrics& metrics() { return metrics_; }
  const ServiceOptions& options() const { return options_; }
  spdlog::logger& log() const { return *log_; }
  /// The committed store (any thread).
  const eventstore::ProjectionStore& store() const { return *store_; }
  /// Partitions of the input topics (known after Start).
  int32_t partitions() const { return partitions_; }
  /// The task that owns `key` (a record key such as an order id): its partition.
  int32_t TaskOfKey(std::string_view key) const;
  /// The Kafka client settings: brokers, the --kafka-property/--kafka-config-file
  /// properties, and a reader group with the service's id prefix (its ACLs allow it).
  kafka::KafkaConfig kafka_config() const {
    return {options_.brokers, options_.kafka_properties,
            core::ServiceIdPrefixOf(options_.topic_prefix, name_) + "reader"};
  }
  /// The consumer group of the service's instances (their input offsets are committed under it).
  std::string group_id() const { return core::GroupIdOf(options_.topic_prefix, name_); }
  /// A new unique message id.
  std::string NewMessageId(const std::string& kind, core::OrderId saga) const;
  /// For admin routes: nullopt when `request` carries the admin token;
  /// otherwise the answer to give (403 when admin endpoints are off, 401 for
  /// a missing or wrong token).
  std::optional<HttpResponse> DenyUnlessAdmin(const HttpRequest& request) const;

  virtual std::vector<std::string> InputTopics() const = 0;
  virtual std::vector<Changelog> Changelogs() const = 0;

 protected:
  /// Adds the service's own routes (GET / and /metrics exist already).
  virtual void AddRoutes(HttpServer& http) = 0;
  /// Makes the logic of task `task` (a partition, or TaskEngine::kAllPartitions).
  virtual std::unique_ptr<ServiceTask> CreateTask(int32_t task) = 0;
  /// One task for all partitions: for state that is not partitioned like the
  /// input (the warehouse's stock, keyed by item).
  virtual bool SingleTask() const { return false; }
  /// Called by Start once the store is open and the topics exist, before HTTP
  /// serves and the engine runs (e.g. to start a GlobalView); an error fails Start.
  virtual core::Status BeforeServing() { return core::Status::Ok(); }
  /// Called by Stop after HTTP and the engine stopped (e.g. to stop a GlobalView).
  virtual void AfterStopping() {}
  /// The store, for a GlobalView kept in it (its keys under its own table).
  eventstore::ProjectionStore& mutable_store() { return *store_; }

 private:
  friend class ServiceTask;  // writes the store after its commits
  core::Status CheckCoPartitioned();
  /// The topics this service creates when they are missing.
  std::vector<core::TopicSpec> OwnTopics() const;
  core::Status LoadAdminToken();
  /// Calls `fn` until it succeeds, fails for good, or the start-up deadline passes.
  core::Status Retrying(const std::string& what, const std::function<core::Status()>& fn);

  std::string name_;
  ServiceOptions options_;
  core::TopicNames topics_;
  core::Metrics metrics_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<eventstore::ProjectionStore> store_;
  int32_t partitions_ = 0;
  std::string admin_token_;
  std::unique_ptr<core::TaskEngine> engine_;
  HttpServer http_;
  // Stops the engine when the Kafka cluster is replaced (cluster_watch.hpp).
  std::unique_ptr<ClusterWatch> cluster_watch_;
  std::mutex cluster_mu_;
  std::optional<core::Error> cluster_changed_;  // guarded by cluster_mu_
  std::thread loop_;
  std::promise<core::Status> done_;
  std::shared_future<core::Status> done_future_;
  std::atomic<bool> started_{false};
  std::atomic<bool> stopped_{false};
};

/// One task of a service: the logic for one partition's input and state (or
/// for all partitions, see Service::SingleTask). Created on assignment, dropped
/// on revocation; all calls come from the task's thread.
class ServiceTask : public core::TaskHandler {
 public:
  ServiceTask(Service& service, int32_t task);

  /// The partition (or TaskEngine::kAllPartitions).
  int32_t task() const { return task_; }
  /// Whether `key` (a record key) belongs to this task.
  bool Owns(std::string_view key) const {
    return task_ == core::TaskEngine::kAllPartitions || service_.TaskOfKey(key) == task_;
  }

  // TaskHandler
  core::Status Restore() final;
  void OnCommitted(const std::vector<kafka::Delivered>& delivered) final;
  void OnAborted() final;

 protected:
  /// Called before the changelogs are replayed (e.g. to skip one on an empty disk).
  virtual core::Status BeforeRestore() { return core::Status::Ok(); }
  /// Called once after the changelogs were replayed, before consuming.
  virtual core::Status AfterRestore() { return core::Status::Ok(); }
  /// Stages the effect of one changelog record. The default stores the raw
  /// value under "<table>/<key>" (an empty value deletes it): a compacted
  /// topic's fold is its latest value per key.
  virtual void ApplyChangelog(const Changelog& changelog, const kafka::Record& record, eventstore::WriteSet& out);
  /// Drops any per-iteration state of the subclass after an abort.
  virtual void OnAbortedHook() {}
  /// Called after the staged writes were committed to the store, with where
  /// each record produced in the transaction landed (in produce order).
  virtual void OnCommittedHook(const std::vector<kafka::Delivered>& delivered) {}

  /// Produces `message` to a changelog topic and stages its effect.
  void EmitChangelog(core::TxContext& tx, const Changelog& changelog, const std::string& key,
                     const core::Message& message);
  /// Like EmitChangelog, to `partition` whatever the key: for state keyed
  /// finer than its owner's key (the warehouse's "<order>/<item>"
  /// reservations live in the item's partition).
  void EmitChangelogTo(core::TxContext& tx, const Changelog& changelog, int32_t partition, const std::string& key,
                       const core::Message& message);
  /// Stages a local write that no changelog record carries (e.g. derived
  /// state); committed with the transaction's other writes.
  void StageLocal(std::string key, std::string value) { staged_.Put(std::move(key), std::move(value)); }
  /// Produces `message` (commands, replies) keyed by `key`.
  void Emit(core::TxContext& tx, const std::string& topic, const std::string& key, const core::Message& message);
  /// Sends `record` to the dead-letter topic with `reason`; the loop moves on.
  void DeadLetter(core::TxContext& tx, const kafka::Record& record, const std::string& reason);
  /// Decodes a record; undecodable ones are dead-lettered and nullopt returned.
  std::optional<core::Message> DecodeOrDeadLetter(core::TxContext& tx, const kafka::Record& record);
  /// The value of `key` including staged writes.
  std::optional<std::string> Get(const std::string& key) const;
  /// Records changelog offsets as applied without applying anything.
  core::Status MarkApplied(const eventstore::OffsetMap& offsets);
  /// Writes `writes` and applied `offsets` to the store at once (for a restore done by hand).
  core::Status CommitLocal(const eventstore::WriteSet& writes, const eventstore::OffsetMap& offsets);
  /// The partitions this task reads and writes ({} for all).
  std::vector<int32_t> OwnPartitions() const;

  const eventstore::ProjectionStore& store() const { return service_.store(); }
  const core::TopicNames& topics() const { return service_.topics(); }
  core::Metrics& metrics() { return service_.metrics(); }
  spdlog::logger& log() const { return service_.log(); }
  std::string NewMessageId(const std::string& kind, core::OrderId saga) const {
    return service_.NewMessageId(kind, saga);
  }

 private:
  Service& service_;
  const int32_t task_;
  eventstore::WriteSet staged_;
};

/// Decodes a record read from a service's own store (written by this code, so
/// a failure means a corrupt disk: abort loudly). nullopt in, nullopt out.
template <class T>
std::optional<T> DecodeStored(const std::optional<std::string>& bytes) {
  if (!bytes) return std::nullopt;
  auto m = core::Decode(*bytes);
  SAGAFLOW_CHECK(m.ok(), "corrupt record in the local store: " + (m.ok() ? std::string() : m.error().message));
  const auto* v = std::get_if<T>(&m->payload);
  SAGAFLOW_CHECK(v != nullptr, "unexpected record type in the local store");
  return *v;
}

/// A queue of work items from HTTP threads to the processor loop, each with a
/// promise the loop fulfils after the iteration's transaction committed.
/// A queue of one partition's task can be closed while its task is not on
/// this instance: TryPush then refuses, and the caller sends the work elsewhere.
template <class Request, class Reply>
class LocalQueue {
 public:
  struct Item {
    Request request;
    std::shared_ptr<std::promise<Reply>> promise;
  };

  explicit LocalQueue(bool open = true) : open_(open) {}

  /// From an HTTP thread: queues `request`; the future is ready once it was committed.
  std::future<Reply> Push(Request request) {
    auto promise = std::make_shared<std::promise<Reply>>();
    auto future = promise->get_future();
    std::lock_guard lock(mu_);
    queue_.push_back({std::move(request), std::move(promise)});
    return future;
  }
  /// Queues `request` (moving it) if the queue is open; false, leaving it untouched, if closed.
  bool TryPush(Request& request) {
    std::lock_guard lock(mu_);
    if (!open_) return false;
    queue_.push_back({std::move(request), std::make_shared<std::promise<Reply>>()});
    return true;
  }
  /// On the task that starts serving the queue.
  void Open() {
    std::lock_guard lock(mu_);
    open_ = true;
  }
  /// On the task that stops serving it: refuses further TryPush and returns every queued item.
  std::vector<Item> Close() {
    std::lock_guard lock(mu_);
    open_ = false;
    std::vector<Item> out(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
    queue_.clear();
    return out;
  }
  bool open() const {
    std::lock_guard lock(mu_);
    return open_;
  }
  /// Items queued (any thread).
  size_t size() const {
    std::lock_guard lock(mu_);
    return queue_.size();
  }
  /// On the loop: takes every queued item.
  std::vector<Item> Drain() {
    std::lock_guard lock(mu_);
    std::vector<Item> out(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
    queue_.clear();
    return out;
  }
  /// On the loop, after an abort: puts items back at the front, in order.
  void Requeue(std::vector<Item> items) {
    std::lock_guard lock(mu_);
    queue_.insert(queue_.begin(), std::make_move_iterator(items.begin()), std::make_move_iterator(items.end()));
  }

 private:
  mutable std::mutex mu_;
  std::deque<Item> queue_;
  bool open_;
};

}  // namespace sagaflow::runtime
