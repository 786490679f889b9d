#include "sagaflow/core/engine/task_engine.hpp"

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "partitioned_handler.hpp"
#include "sagaflow/core/log.hpp"

namespace sagaflow::core {
namespace {
using Clock = std::chrono::steady_clock;
constexpr auto kInitTimeout = std::chrono::seconds(60);
constexpr auto kPollInterval = std::chrono::milliseconds(20);
constexpr auto kSharedTransactionTimeout = std::chrono::milliseconds(10'000);

std::shared_ptr<spdlog::logger> Log() {
  static auto logger = Logger("engine");
  return logger;
}

std::string TaskName(int32_t task) { return task == TaskEngine::kAllPartitions ? "all" : "p" + std::to_string(task); }

// One task: its partitions, its handler and processor, its thread, and the
// queue of records the consumer thread hands it (the task's RecordSource).
class Task final : public RecordSource {
 public:
  Task(int32_t id, kafka::GroupConsumer& consumer) : id_(id), consumer_(consumer) {}

  // ---- RecordSource, on the task thread ----
  std::vector<kafka::Record> Poll(size_t max_records, std::chrono::milliseconds timeout) override {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return !queue_.empty() || closed_ || woken_; });
    woken_ = false;
    std::vector<kafka::Record> out;
    const size_t n = std::min(max_records, queue_.size());
    out.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      out.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    return out;
  }

  // Asks the consumer thread to seek the task's partitions back to their
  // committed offsets, and waits until it did (or the task is closed).
  Status Rewind() override {
    std::unique_lock lock(mu_);
    rewind_requested_ = true;
    rewind_done_ = false;
    queue_.clear();
    cv_.wait(lock, [&] { return rewind_done_ || closed_; });
    if (!rewind_done_) return Error{Errc::kUnavailable, "task " + TaskName(id_) + " is stopping", true};
    return rewind_status_;
  }

  kafka::GroupConsumer& consumer() override { return consumer_; }

  // ---- any thread ----
  size_t Queued() const override {
    std::lock_guard lock(mu_);
    return queue_.size();
  }

  // ---- on the consumer thread ----
  void Push(kafka::Record record) {
    std::lock_guard lock(mu_);
    // Records fetched before a requested rewind come again after it.
    if (rewind_requested_ || closed_) return;
    queue_.push_back(std::move(record));
    cv_.notify_all();
  }
  bool TakeRewindRequest() {
    std::lock_guard lock(mu_);
    if (!rewind_requested_) return false;
    rewind_requested_ = false;
    return true;
  }
  void RewindDone(Status status) {
    std::lock_guard lock(mu_);
    queue_.clear();
    rewind_status_ = std::move(status);
    rewind_done_ = true;
    cv_.notify_all();
  }
  // Any thread: the next (or current) Poll returns at once, so that the
  // processor's OnIdle sees work that did not come from Kafka.
  void Wake() {
    std::lock_guard lock(mu_);
    woken_ = true;
    cv_.notify_all();
  }
  void Close() {
    std::lock_guard lock(mu_);
    closed_ = true;
    queue_.clear();
    cv_.notify_all();
  }

  const int32_t id_;
  std::vector<kafka::TopicPartition> partitions;
  // Partition tasks this task runs: 1, or all of the instance's with a shared producer.
  size_t units = 1;
  // For logs: "p2", "all", or the partitions sharing the task's producer ("p0+p1+p2").
  std::string name;
  std::unique_ptr<TaskHandler> handler;
  std::unique_ptr<Processor> processor;
  std::thread thread;
  std::atomic<bool> ready{false};
  std::atomic<bool> done{false};
  Status result;
  // Consumer-thread state: whether its partitions were resumed, and paused for flow control.
  bool resumed = false;
  bool throttled = false;
  // Some partitions were this instance's before the task started (a task of several that
  // started over): the consumer read past their committed offsets, and the records in between
  // (queued, or deferred by the old task) must come again, so they rewind before resuming.
  bool rewind_before_resume = false;

 private:
  kafka::GroupConsumer& consumer_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<kafka::Record> queue_;
  bool closed_ = false;
  bool woken_ = false;
  bool rewind_requested_ = false;
  bool rewind_done_ = false;
  Status rewind_status_;
};

}  // namespace

struct TaskEngine::Impl {
  Impl(TaskEngineOptions o, Factory f, Metrics& m) : options(std::move(o)), factory(std::move(f)), metrics(m) {}

  // One processor and producer, named after the instance, for all the instance's partitions.
  bool OneTaskForAll() const { return options.single_task || options.shared_producer; }

  int32_t TaskOf(int32_t partition) const { return OneTaskForAll() ? kAllPartitions : partition; }

  // Drops a stopped task (Wake may be reading the map from another thread).
  void EraseTask(std::map<int32_t, std::unique_ptr<Task>>::iterator it) {
    std::lock_guard lock(tasks_mu);
    tasks.erase(it);
  }

  // Rebalance: called inside consumer->Poll on the consumer thread.
  void OnAssigned(const std::vector<kafka::TopicPartition>& partitions) {
    std::map<int32_t, std::vector<kafka::TopicPartition>> by_task;
    for (const auto& tp : partitions) by_task[TaskOf(tp.partition)].push_back(tp);
    for (auto& [id, parts] : by_task) {
      if (auto it = tasks.find(id); it != tasks.end()) {
        // More partitions for a running task of several (single task, shared
        // producer) need their state restored first: the task starts over
        // with all of them. (Eager rebalancing revokes everything first, so
        // this does not happen with the engine's own consumer.)
        StopTask(*it->second);
        parts.insert(parts.end(), it->second->partitions.begin(), it->second->partitions.end());
        EraseTask(it);
        Replace(id, std::move(parts), /*owned_before=*/true);
        continue;
      }
      Replace(id, std::move(parts), /*owned_before=*/false);
    }
    metrics.Set("tasks_assigned", static_cast<double>(Units(false)));
  }

  // Starts task `id` for `parts`, paused until it has restored its state;
  // `owned_before`: some of them were fetched for an earlier task.
  void Replace(int32_t id, std::vector<kafka::TopicPartition> parts, bool owned_before) {
    consumer->Pause(parts);
    auto task = std::make_unique<Task>(id, *consumer);
    task->partitions = std::move(parts);
    task->rewind_before_resume = owned_before;
    StartTask(*task);
    {
      std::lock_guard lock(tasks_mu);
      tasks[id] = std::move(task);
    }
  }

  // Partition tasks (or the single task) assigned; with `active`, only those restored and processing.
  size_t Units(bool active) const {
    size_t n = 0;
    for (const auto& [id, task] : tasks) {
      if (!active || (task->ready.load() && !task->done.load())) n += task->units;
    }
    return n;
  }

  void OnRevoked(const std::vector<kafka::TopicPartition>& partitions, bool lost) {
    std::set<int32_t> ids;
    for (const auto& tp : partitions) ids.insert(TaskOf(tp.partition));
    const std::set<kafka::TopicPartition> gone(partitions.begin(), partitions.end());
    for (auto id : ids) {
      auto it = tasks.find(id);
      if (it == tasks.end()) continue;
      Log()->info("{}: task {} {}: stopping it", options.service, it->second->name,
                  lost ? "lost its partitions" : "revoked");
      StopTask(*it->second);
      // A task of several partitions that keeps some starts over with those.
      std::vector<kafka::TopicPartition> kept;
      for (const auto& tp : it->second->partitions) {
        if (!gone.contains(tp)) kept.push_back(tp);
      }
      EraseTask(it);
      if (!kept.empty()) Replace(id, std::move(kept), /*owned_before=*/true);
    }
    metrics.Set("tasks_assigned", static_cast<double>(Units(false)));
  }

  void StartTask(Task& task) {
    task.name = TaskName(task.id_);
    if (options.shared_producer && !options.single_task) {
      // One handler per partition behind one processor and producer.
      std::set<int32_t> ids;
      for (const auto& tp : task.partitions) ids.insert(tp.partition);
      task.name.clear();
      for (auto id : ids) task.name += (task.name.empty() ? "" : "+") + TaskName(id);
      auto handler = std::make_unique<PartitionedHandler>(std::vector<int32_t>(ids.begin(), ids.end()), factory);
      task.units = handler->size();
      task.handler = std::move(handler);
    } else {
      task.handler = factory(task.id_);
    }
    ProcessorOptions po;
    po.kafka = options.kafka;
    po.producer_factory = options.producer_factory;
    po.transactional_id = options.transactional_id_prefix + "-" + TaskName(task.id_);
    po.max_batch = options.max_batch;
    po.commit_interval = options.commit_interval;
    po.service = options.service + " task " + task.name;
    // The transactional id names the instance, not a task another instance may take over.
    po.reopen_when_fenced = OneTaskForAll();
    if (po.reopen_when_fenced && !po.kafka.overrides.contains("transaction.timeout.ms")) {
      // A transaction the instance left open when it died holds its partitions (their committed
      // offsets and read_committed changelogs) for this long, unless the instance comes back: it is
      // how long failover waits (Kafka Streams uses the same). A broker outage longer than this
      // fences the producer, which is then reopened (reopen_when_fenced).
      po.kafka.overrides["transaction.timeout.ms"] = std::to_string(kSharedTransactionTimeout.count());
      po.kafka.overrides.try_emplace("message.timeout.ms",
                                     std::to_string((kSharedTransactionTimeout - std::chrono::seconds(1)).count()));
    }
    task.processor = std::make_unique<Processor>(po, *task.handler, metrics, task);
    task.thread = std::thread([this, &task] { RunTask(task); });
  }

  void RunTask(Task& task) {
    const auto started = Clock::now();
    auto s = Prepare(task);
    if (s.ok() && !task.processor->stopping()) {
      Log()->info("{}: task {} restored in {} ms; processing", options.service, task.name,
                  std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count());
      metrics.Observe("task_restore_seconds", std::chrono::duration<double>(Clock::now() - started).count());
      task.ready.store(true);
      s = task.processor->Run();
    }
    task.result = s;
    task.done.store(true);
  }

  // Producer first (fences the previous owner), then the state.
  Status Prepare(Task& task) {
    auto backoff = std::chrono::milliseconds(200);
    while (!task.processor->stopping()) {
      auto s = task.processor->Connect(kInitTimeout);
      if (s.ok()) s = task.handler->Restore();
      if (s.ok() || !s.error().retryable) return s;
      Log()->warn("{}: task {}: {}; retrying in {} ms", options.service, task.name, s.error().message,
                  backoff.count());
      const auto until = Clock::now() + backoff;
      while (!task.processor->stopping() && Clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
    }
    return Status::Ok();
  }

  void StopTask(Task& task) {
    task.processor->Stop();
    task.Close();
    if (task.thread.joinable()) task.thread.join();
  }

  // Between polls: start fetching for ready tasks, perform requested rewinds,
  // pause tasks that fall behind, notice tasks that ended.
  Status ServeTasks() {
    for (auto& [id, task] : tasks) {
      if (task->done.load()) {
        if (!task->result.ok()) return task->result;
        continue;
      }
      if (!task->ready.load()) continue;
      if (task->TakeRewindRequest()) {
        auto s = consumer->RewindToCommitted(task->partitions);
        task->RewindDone(s);
      }
      const size_t queued = task->Queued();
      if (!task->resumed) {
        if (task->rewind_before_resume) {
          if (auto s = consumer->RewindToCommitted(task->partitions); !s.ok()) {
            Log()->warn("{}: task {}: cannot rewind to the committed offsets yet: {}", options.service, task->name,
                        s.error().message);
            continue;  // paused until the rewind succeeds
          }
          task->rewind_before_resume = false;
        }
        consumer->Resume(task->partitions);
        task->resumed = true;
      } else if (!task->throttled && queued >= options.max_queued) {
        consumer->Pause(task->partitions);
        task->throttled = true;
      } else if (task->throttled && queued < options.max_queued / 2) {
        consumer->Resume(task->partitions);
        task->throttled = false;
      }
    }
    return Status::Ok();
  }

  void StopAll() {
    for (auto& [id, task] : tasks) {
      task->processor->Stop();
      task->Close();
    }
    for (auto& [id, task] : tasks) {
      if (task->thread.joinable()) task->thread.join();
    }
    {
      std::lock_guard lock(tasks_mu);
      tasks.clear();
    }
  }

  TaskEngineOptions options;
  Factory factory;
  Metrics& metrics;
  std::unique_ptr<kafka::GroupConsumer> consumer;
  // Written on the consumer thread; read by Wake from any thread under tasks_mu.
  std::map<int32_t, std::unique_ptr<Task>> tasks;
  std::mutex tasks_mu;
  std::atomic<bool> stop{false};
  std::atomic<bool> running{false};
  std::atomic<size_t> assigned{0};
  std::atomic<size_t> active{0};
};

TaskEngine::TaskEngine(TaskEngineOptions options, Factory factory, Metrics& metrics)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(factory), metrics)) {
  metrics.Describe("tasks_assigned", "Tasks (partition groups) assigned to this instance");
  metrics.Describe("task_restore_seconds", "Time from a task's assignment to processing its input");
}

TaskEngine::~TaskEngine() { Stop(); }

void TaskEngine::Stop() { impl_->stop.store(true); }

void TaskEngine::Wake() {
  std::lock_guard lock(impl_->tasks_mu);
  for (auto& [id, task] : impl_->tasks) task->Wake();
}
bool TaskEngine::running() const { return impl_->running.load(); }
size_t TaskEngine::assigned_tasks() const { return impl_->assigned.load(); }
size_t TaskEngine::active_tasks() const { return impl_->active.load(); }

Status TaskEngine::Run() {
  auto& d = *impl_;
  kafka::RebalanceListener listener;
  listener.on_assigned = [&d](const std::vector<kafka::TopicPartition>& p) { d.OnAssigned(p); };
  listener.on_revoked = [&d](const std::vector<kafka::TopicPartition>& p, bool lost) { d.OnRevoked(p, lost); };
  auto consumer =
      d.options.consumer_factory
          ? d.options.consumer_factory(d.options.kafka, d.options.group_id, d.options.input_topics, listener)
          : kafka::GroupConsumer::Open(d.options.kafka, d.options.group_id, d.options.input_topics, listener);
  if (!consumer.ok()) return consumer.error();
  d.consumer = std::move(consumer.value());
  Log()->info("{}: consuming {} topic(s) as group {}, {}", d.options.service, d.options.input_topics.size(),
              d.options.group_id,
               d.options.single_task       ? "one task for all partitions"
               : d.options.shared_producer ? "one task per partition, all in one transaction per cycle"
                                           : "one task per partition, each with its own transactions");
  d.running.store(true);
  Status result;
  while (!d.stop.load()) {
    if (auto s = d.ServeTasks(); !s.ok()) {
      Log()->error("{}: {}", d.options.service, s.error().message);
      result = s;
      break;
    }
    d.active.store(d.Units(true));
    d.assigned.store(d.Units(false));
    auto records = d.consumer->Poll(d.options.max_batch, kPollInterval);
    if (auto fatal = d.consumer->FatalError(); !fatal.empty()) {
      // It will never fetch again: stop, so the process exits and is seen to.
      result = Error{Errc::kInternal, "the group consumer failed for good: " + fatal};
      Log()->error("{}: {}", d.options.service, result.error().message);
      break;
    }
    for (auto& r : records) {
      auto it = d.tasks.find(d.TaskOf(r.partition));
      if (it == d.tasks.end()) {
        Log()->warn("{}: a record of {}[{}] that no task owns; it is read again by the owner", d.options.service,
                    r.topic, r.partition);
        continue;
      }
      it->second->Push(std::move(r));
    }
  }
  d.StopAll();
  d.active.store(0);
  d.assigned.store(0);
  // Leaving the group revokes what is left (no task any more) and commits nothing.
  d.consumer->Close();
  d.running.store(false);
  return result;
}

}  // namespace sagaflow::core
