#pragma once
/// What every sagaflow service is made of, wired together:
///   - a ProjectionStore (RocksDB) holding the service's state, a fold of its
///     changelog topics, with the applied changelog offsets;
///   - a core::Processor consuming the service's input topics and producing
///     outputs + changelog records + input offsets in one Kafka transaction;
///   - an HttpServer with GET / (health), GET /metrics and the service's routes.
///
/// Start(): open the store, connect the transactional producer (fencing a
/// previous instance), catch up on the changelogs from the stored offsets (from
/// offset 0 on an empty disk), then serve HTTP and run the processor thread.
///
/// State changes go through EmitChangelog: the record is produced in the
/// current transaction and its effect is staged in a WriteSet; after the
/// commit the staged writes and the changelog offsets are written to RocksDB in
/// one batch (OnCommitted), after an abort they are dropped. Reads on the loop
/// thread see staged writes (Get); HTTP threads read committed state (store()).
///
/// Subclasses implement OnRecords/OnIdle (the service logic) and Routes.
/// Thread safety: logic runs on the processor thread; HTTP handlers on the
/// server's pool must only read store() or hand work to the loop (LocalQueue).

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
#include "sagaflow/core/processor.hpp"
#include "sagaflow/core/topics.hpp"
#include "sagaflow/eventstore/projection_store.hpp"
#include "sagaflow/runtime/http_server.hpp"

namespace sagaflow::runtime {

/// Settings every service takes from the command line.
struct ServiceOptions {
  std::string brokers = "127.0.0.1:9092";
  std::string topic_prefix;
  std::string data_dir;
  std::string http_host = "127.0.0.1";
  int http_port = 0;
  /// Distinguishes instances of one service (transactional.id).
  std::string instance_id = "0";
  /// Partition count used when this service creates missing topics.
  int32_t partitions = 3;
  /// fsync RocksDB's WAL on every commit.
  bool sync_writes = false;
  std::map<std::string, std::string> kafka_properties;
};

/// A changelog topic and the key prefix of its records in the store.
struct Changelog {
  std::string topic;
  std::string table;  // e.g. "stock": record key K is stored as "stock/K"
};

/// See the file comment.
class Service : public core::ProcessorHandler {
 public:
  Service(std::string name, ServiceOptions options);
  ~Service() override;

  /// Starts everything; returns once HTTP serves and the processor runs.
  core::Status Start();
  /// Stops HTTP and the processor, waits for them. Idempotent. Every final
  /// subclass calls it in its destructor, while its own members still exist.
  void Stop();
  /// Blocks until the processor ends (Stop, or a fatal error); returns its status.
  core::Status Wait();
  /// Whether the processor has ended (after Stop or a fatal error).
  bool Done() const {
    return done_future_.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
  }

  const std::string& name() const { return name_; }
  int http_port() const { return http_.port(); }
  const core::TopicNames& topics() const { return topics_; }
  core::Metrics& metrics() { return metrics_; }

 protected:
  virtual std::vector<std::string> InputTopics() const = 0;
  virtual std::vector<Changelog> Changelogs() const = 0;
  /// Adds the service's own routes (GET / and /metrics exist already).
  virtual void AddRoutes(HttpServer& http) = 0;
  /// Called before the changelogs are replayed (e.g. to skip one on an empty disk).
  virtual core::Status BeforeCatchUp() { return core::Status::Ok(); }
  /// Called once after the changelogs were replayed, before consuming.
  virtual core::Status OnCaughtUp() { return core::Status::Ok(); }
  /// Stages the effect of one changelog record. The default stores the raw
  /// value under "<table>/<key>" (an empty value deletes it): a compacted
  /// topic's fold is its latest value per key.
  virtual void ApplyChangelog(const Changelog& changelog, const kafka::Record& record, eventstore::WriteSet& out);
  /// Drops any per-iteration state of the subclass after an abort.
  virtual void OnAbortedHook() {}
  /// Called after the staged writes were committed to the store.
  virtual void OnCommittedHook() {}

  // ---- for the logic, on the processor thread ----
  /// Produces `message` to a changelog topic and stages its effect.
  void EmitChangelog(core::TxContext& tx, const Changelog& changelog, const std::string& key,
                     const core::Message& message);
  /// Produces `message` (commands, replies) keyed by `key`.
  void Emit(core::TxContext& tx, const std::string& topic, const std::string& key, const core::Message& message);
  /// Sends `record` to the dead-letter topic with `reason`; the loop moves on.
  void DeadLetter(core::TxContext& tx, const kafka::Record& record, const std::string& reason);
  /// Decodes a record; undecodable ones are dead-lettered and nullopt returned.
  std::optional<core::Message> DecodeOrDeadLetter(core::TxContext& tx, const kafka::Record& record);
  /// The value of `key` including staged writes.
  std::optional<std::string> Get(const std::string& key) const;
  /// Staged writes of this iteration.
  eventstore::WriteSet& staged() { return staged_; }

  /// The committed store (any thread).
  const eventstore::ProjectionStore& store() const { return *store_; }
  const ServiceOptions& options() const { return options_; }
  spdlog::logger& log() const { return *log_; }
  /// Records changelog offsets as applied without applying anything.
  core::Status MarkApplied(const eventstore::OffsetMap& offsets);
  kafka::KafkaConfig kafka_config() const { return {options_.brokers, options_.kafka_properties}; }
  /// A new unique message id.
  std::string NewMessageId(const std::string& kind, core::OrderId saga) const;

  // ProcessorHandler
  void OnCommitted(const std::vector<kafka::Delivered>& delivered) override;
  void OnAborted() override;

 private:
  core::Status CatchUp();
  /// Calls `fn` until it succeeds, fails for good, or the start-up deadline passes.
  core::Status Retrying(const std::string& what, const std::function<core::Status()>& fn);

  std::string name_;
  ServiceOptions options_;
  core::TopicNames topics_;
  core::Metrics metrics_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<eventstore::ProjectionStore> store_;
  eventstore::WriteSet staged_;
  std::unique_ptr<core::Processor> processor_;
  HttpServer http_;
  std::thread loop_;
  std::promise<core::Status> done_;
  std::shared_future<core::Status> done_future_;
  std::atomic<bool> started_{false};
  std::atomic<bool> stopped_{false};
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
template <class Request, class Reply>
class LocalQueue {
 public:
  struct Item {
    Request request;
    std::shared_ptr<std::promise<Reply>> promise;
  };

  /// From an HTTP thread: queues `request`; the future is ready once it was committed.
  std::future<Reply> Push(Request request) {
    auto promise = std::make_shared<std::promise<Reply>>();
    auto future = promise->get_future();
    std::lock_guard lock(mu_);
    queue_.push_back({std::move(request), std::move(promise)});
    return future;
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
  std::mutex mu_;
  std::deque<Item> queue_;
};

}  // namespace sagaflow::runtime
