#include "sagaflow/runtime/service.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <random>

#include "sagaflow/core/log.hpp"

namespace sagaflow::runtime {
namespace {
constexpr auto kConnectTimeout = std::chrono::seconds(60);
constexpr size_t kRestoreBatch = 5000;
// How often a running service checks that the Kafka cluster is still the one it started on.
constexpr auto kClusterCheckInterval = std::chrono::seconds(5);
}  // namespace

Service::Service(std::string name, ServiceOptions options)
    : name_(std::move(name)),
      options_(std::move(options)),
      topics_(options_.topic_prefix),
      metrics_(name_),
      log_(core::Logger(name_)),
      http_(name_),
      done_future_(done_.get_future().share()) {
  metrics_.Describe("dead_letters_total", "Records sent to the dead-letter topic");
  metrics_.Describe("changelog_records_total", "Changelog records produced");
}

Service::~Service() { Stop(); }

core::Status Service::Start() {
  if (options_.data_dir.empty()) {
    return core::Error{core::Errc::kInvalidArgument, "--data-dir is required"};
  }
  if (auto s = LoadAdminToken(); !s.ok()) return s;
  auto store = eventstore::ProjectionStore::Open(options_.data_dir, {options_.sync_writes, 64});
  if (!store.ok()) return store.error();
  store_ = std::move(store.value());

  auto kafka = kafka_config();
  log_->info("waiting for Kafka at {}", kafka.brokers);
  if (auto s = kafka::WaitForBroker(kafka, kConnectTimeout); !s.ok()) return s;
  std::string cluster_id;
  if (auto s = Retrying("reading the Kafka cluster id",
                        [&] {
                          auto id = kafka::ClusterId(kafka, std::chrono::seconds(5));
                          if (!id.ok()) return core::Status(id.error());
                          cluster_id = std::move(id.value());
                          return core::Status::Ok();
                        });
      !s.ok()) {
    return s;
  }
  log_->info("Kafka cluster id {}", cluster_id);
  if (auto s = kafka::CreateTopics(kafka, OwnTopics(), std::chrono::seconds(30)); !s.ok()) return s;
  // Just-created topics may not have partition leaders yet: retry what can be retried.
  if (auto s = Retrying("reading the topics' partitions", [this] { return CheckCoPartitioned(); }); !s.ok()) return s;

  core::TaskEngineOptions eo;
  eo.kafka = kafka;
  eo.service = name_;
  eo.group_id = group_id();
  eo.input_topics = InputTopics();
  eo.single_task = SingleTask();
  eo.shared_producer = !options_.producer_per_task;
  eo.commit_interval = std::chrono::milliseconds(options_.commit_interval_ms);
  // A partition's own producer keeps its transactional id whichever instance
  // runs the task, so the new owner fences the old one. A producer for all the
  // instance's partitions has the instance's id (the group generation fences).
  eo.transactional_id_prefix =
      group_id() +
      (eo.single_task || eo.shared_producer ? "-" + options_.instance_id : std::string());
  engine_ = std::make_unique<core::TaskEngine>(eo, [this](int32_t task) { return CreateTask(task); }, metrics_);

  if (auto s = BeforeServing(); !s.ok()) return s;

  // Healthy means the engine runs and every assigned task processes: 503
  // while tasks restore, and after the engine stopped (e.g. fenced).
  http_.Route("GET", "/", [this](const HttpRequest&) {
    if (Ready()) return HttpResponse::Json({{"service", name_}, {"status", "ok"}});
    return HttpResponse::Json({{"service", name_}, {"status", Done() ? "stopped" : "starting"}}, 503);
  });
  http_.Route("GET", "/metrics", [this](const HttpRequest&) { return HttpResponse::Text(metrics_.RenderPrometheus()); });
  AddRoutes(http_);
  if (auto s = http_.Start(options_.http_host, options_.http_port); !s.ok()) return s;
  log_->info("HTTP on {}:{}", options_.http_host, http_.port());

  loop_ = std::thread([this] {
    auto status = engine_->Run();
    if (std::lock_guard lock(cluster_mu_); status.ok() && cluster_changed_) status = *cluster_changed_;
    if (!status.ok()) log_->error("stopped: {}", status.error().message);
    done_.set_value(status);
  });
  cluster_watch_ = std::make_unique<ClusterWatch>(
      cluster_id, kafka.brokers, [kafka] { return kafka::ClusterId(kafka, std::chrono::seconds(2)); },
      kClusterCheckInterval, [this](const core::Error& change) {
        log_->error("{}", change.message);
        {
          std::lock_guard lock(cluster_mu_);
          cluster_changed_ = change;
        }
        engine_->Stop();
      });
  cluster_watch_->Start();
  started_.store(true);
  return core::Status::Ok();
}

std::vector<core::TopicSpec> Service::OwnTopics() const {
  // Only the topics the service reads or writes (core::AccessTable): under
  // ACLs, they are the ones its principal may see.
  const auto access = core::AccessOf(topics_, name_);
  std::vector<core::TopicSpec> out;
  for (auto& spec : topics_.All(options_.partitions)) {
    const auto used = [&](const std::vector<std::string>& names) {
      return std::find(names.begin(), names.end(), spec.name) != names.end();
    };
    if (used(access.reads) || used(access.writes)) out.push_back(std::move(spec));
  }
  return out;
}

bool Service::Ready() const {
  if (!engine_ || !engine_->running()) return false;
  const auto assigned = engine_->assigned_tasks();
  return assigned > 0 && engine_->active_tasks() == assigned;
}

size_t Service::AssignedTasks() const { return engine_ ? engine_->assigned_tasks() : 0; }

void Service::WakeTasks() {
  if (engine_) engine_->Wake();
}

core::Status Service::CheckCoPartitioned() {
  std::vector<std::string> names = InputTopics();
  for (const auto& c : Changelogs()) names.push_back(c.topic);
  partitions_ = 0;
  for (const auto& name : names) {
    auto ends = kafka::EndOffsets(kafka_config(), name);
    if (!ends.ok()) return ends.error();
    const auto count = static_cast<int32_t>(ends->size());
    if (partitions_ == 0) partitions_ = count;
    if (count != partitions_) {
      return core::Error{core::Errc::kInvalidArgument,
                         "topic " + name + " has " + std::to_string(count) + " partitions, " + names.front() +
                             " has " + std::to_string(partitions_) +
                             ": a service's input and changelog topics must have the same partition count "
                             "(recreate them with the same --partitions)"};
    }
  }
  return core::Status::Ok();
}

core::Status Service::LoadAdminToken() {
  const auto& path = options_.admin_token_file;
  if (path.empty()) {
    log_->info("admin endpoints are off (no --admin-token-file)");
    return core::Status::Ok();
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return core::Error{core::Errc::kInvalidArgument, "--admin-token-file " + path + ": cannot read it"};
  }
  if ((st.st_mode & 077) != 0) {
    return core::Error{core::Errc::kInvalidArgument,
                       "--admin-token-file " + path + " is readable by other users; chmod 600 " + path};
  }
  std::ifstream in(path);
  std::getline(in, admin_token_);
  while (!admin_token_.empty() && (admin_token_.back() == '\r' || admin_token_.back() == ' ')) admin_token_.pop_back();
  if (admin_token_.size() < 16) {
    return core::Error{core::Errc::kInvalidArgument,
                       "--admin-token-file " + path + ": the token on its first line must have 16 characters or more"};
  }
  return core::Status::Ok();
}

std::optional<HttpResponse> Service::DenyUnlessAdmin(const HttpRequest& request) const {
  if (admin_token_.empty()) {
    return HttpResponse::Error(403, "admin endpoints are off on this " + name_ +
                                        " service: start it with --admin-token-file FILE to enable them");
  }
  const std::string given = request.Header("Authorization");
  const std::string expected = "Bearer " + admin_token_;
  // Compare in constant time: the answer's timing says nothing about the token.
  unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    diff |= static_cast<unsigned char>(expected[i] ^ (i < given.size() ? given[i] : 0));
  }
  if (diff != 0) {
    return HttpResponse::Error(401, "admin request without the right token: send \"Authorization: Bearer <token>\" "
                                    "with the token from the service's --admin-token-file");
  }
  return std::nullopt;
}

int32_t Service::TaskOfKey(std::string_view key) const { return kafka::PartitionOf(key, partitions_); }

void Service::Stop() {
  if (stopped_.exchange(true)) return;
  if (cluster_watch_) cluster_watch_->Stop();
  http_.Stop();
  if (engine_) engine_->Stop();
  if (loop_.joinable()) loop_.join();
  if (store_) AfterStopping();
  if (started_.load()) log_->info("stopped");
}

core::Status Service::Wait() { return done_future_.get(); }

core::Status Service::Retrying(const std::string& what, const std::function<core::Status()>& fn) {
  const auto deadline = std::chrono::steady_clock::now() + kConnectTimeout;
  auto backoff = std::chrono::milliseconds(200);
  while (true) {
    auto s = fn();
    if (s.ok() || !s.error().retryable || std::chrono::steady_clock::now() + backoff > deadline) return s;
    log_->warn("{}: {}; retrying in {} ms", what, s.error().message, backoff.count());
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
  }
}

std::string Service::NewMessageId(const std::string& kind, core::OrderId saga) const {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t boot = std::random_device{}();
  return name_ + "-" + kind + "-" + std::to_string(saga) + "-" + std::to_string(boot % 1000000) + "-" +
         std::to_string(counter.fetch_add(1));
}

// ---------------------------------------------------------------- ServiceTask

ServiceTask::ServiceTask(Service& service, int32_t task) : service_(service), task_(task) {}

std::vector<int32_t> ServiceTask::OwnPartitions() const {
  if (task_ == core::TaskEngine::kAllPartitions) return {};
  return {task_};
}

core::Status ServiceTask::Restore() {
  // A retried restore starts again from the stored offsets: forget what the failed attempt staged.
  staged_.clear();
  OnAbortedHook();
  if (auto s = BeforeRestore(); !s.ok()) return s;
  auto& store = *service_.store_;
  for (const auto& changelog : service_.Changelogs()) {
    const auto start = store.AppliedOffsets();
    int64_t applied = 0;
    eventstore::OffsetMap next;
    auto flush = [&] {
      if (staged_.empty() && next.empty()) return;
      auto s = store.Commit(staged_, next);
      SAGAFLOW_CHECK(s.ok(), s.ok() ? "" : s.error().message);
      staged_.clear();
    };
    auto end = kafka::ReadToEnd(
        service_.kafka_config(), changelog.topic, start,
        [&](const kafka::Record& r) {
          ApplyChangelog(changelog, r, staged_);
          next[{r.topic, r.partition}] = r.offset + 1;
          if (++applied % kRestoreBatch == 0) flush();
        },
        [&](int64_t n) {
          if (n > 0) log().info("task {}: restoring from {}: {} records applied", task_, changelog.topic, n);
        },
        OwnPartitions());
    if (!end.ok()) return end.error();
    next = end.value();
    flush();
    if (applied > 0) log().info("task {}: restored {} records from {}", task_, applied, changelog.topic);
  }
  return AfterRestore();
}

core::Status ServiceTask::MarkApplied(const eventstore::OffsetMap& offsets) {
  return CommitLocal(eventstore::WriteSet{}, offsets);
}

core::Status ServiceTask::CommitLocal(const eventstore::WriteSet& writes, const eventstore::OffsetMap& offsets) {
  return service_.store_->Commit(writes, offsets);
}

void ServiceTask::ApplyChangelog(const Changelog& changelog, const kafka::Record& record,
                                 eventstore::WriteSet& out) {
  const std::string key = changelog.table + "/" + record.key;
  if (record.value.empty()) {
    out.Delete(key);
  } else {
    out.Put(key, record.value);
  }
}

void ServiceTask::EmitChangelog(core::TxContext& tx, const Changelog& changelog, const std::string& key,
                                const core::Message& message) {
  kafka::Record record;
  record.topic = changelog.topic;
  record.key = key;
  record.value = core::Encode(message);
  tx.Produce(record.topic, record.key, record.value);
  ApplyChangelog(changelog, record, staged_);
  metrics().Add("changelog_records_total");
}

void ServiceTask::EmitChangelogTo(core::TxContext& tx, const Changelog& changelog, int32_t partition,
                                  const std::string& key, const core::Message& message) {
  kafka::Record record;
  record.topic = changelog.topic;
  record.partition = partition;
  record.key = key;
  record.value = core::Encode(message);
  tx.ProduceTo(record.topic, partition, record.key, record.value);
  ApplyChangelog(changelog, record, staged_);
  metrics().Add("changelog_records_total");
}

void ServiceTask::Emit(core::TxContext& tx, const std::string& topic, const std::string& key,
                       const core::Message& message) {
  tx.Produce(topic, key, core::Encode(message));
}

void ServiceTask::DeadLetter(core::TxContext& tx, const kafka::Record& record, const std::string& reason) {
  log().warn("dead-lettering {}[{}]@{} (key '{}'): {}", record.topic, record.partition, record.offset, record.key,
             reason);
  core::Message m;
  m.message_id = NewMessageId("dlq", 0);
  m.produced_at_ms = core::NowMs();
  m.payload =
      core::DeadLetter{reason, record.topic, record.partition, record.offset, record.key, record.value, service_.name()};
  tx.Produce(topics().dlq, record.key, core::Encode(m));
  metrics().Add("dead_letters_total");
}

std::optional<core::Message> ServiceTask::DecodeOrDeadLetter(core::TxContext& tx, const kafka::Record& record) {
  auto decoded = core::Decode(record.value);
  if (!decoded.ok()) {
    DeadLetter(tx, record, decoded.error().message);
    return std::nullopt;
  }
  return std::move(decoded.value());
}

std::optional<std::string> ServiceTask::Get(const std::string& key) const {
  return eventstore::OverlayView(service_.store(), staged_).Get(key);
}

void ServiceTask::OnCommitted(const std::vector<kafka::Delivered>& delivered) {
  eventstore::OffsetMap offsets;
  const auto changelogs = service_.Changelogs();
  for (const auto& d : delivered) {
    for (const auto& c : changelogs) {
      if (d.topic == c.topic) {
        auto& next = offsets[{d.topic, d.partition}];
        next = std::max(next, d.offset + 1);
      }
    }
  }
  if (!staged_.empty() || !offsets.empty()) {
    auto& store = *service_.store_;
    auto s = store.Commit(staged_, offsets);
    // The Kafka transaction is committed; the store can be rebuilt from it, but
    // not while this process keeps running on a store it failed to write.
    SAGAFLOW_CHECK(s.ok(), s.ok() ? "" : s.error().message);
  }
  staged_.clear();
  OnCommittedHook(delivered);
}

void ServiceTask::OnAborted() {
  staged_.clear();
  OnAbortedHook();
}

}  // namespace sagaflow::runtime
