#include "sagaflow/runtime/service.hpp"

#include <atomic>
#include <random>

#include "sagaflow/core/log.hpp"

namespace sagaflow::runtime {
namespace {
constexpr auto kConnectTimeout = std::chrono::seconds(60);
constexpr size_t kCatchUpBatch = 5000;

kafka::KafkaConfig KafkaOf(const ServiceOptions& o) { return kafka::KafkaConfig{o.brokers, o.kafka_properties}; }
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
  auto store = eventstore::ProjectionStore::Open(options_.data_dir, {options_.sync_writes, 64});
  if (!store.ok()) return store.error();
  store_ = std::move(store.value());

  auto kafka = KafkaOf(options_);
  log_->info("waiting for Kafka at {}", kafka.brokers);
  if (auto s = kafka::WaitForBroker(kafka, kConnectTimeout); !s.ok()) return s;
  if (auto s = kafka::CreateTopics(kafka, topics_.All(options_.partitions), std::chrono::seconds(30)); !s.ok()) {
    return s;
  }

  core::ProcessorOptions po;
  po.kafka = kafka;
  po.service = name_;
  po.group_id = options_.topic_prefix + "sagaflow-" + name_;
  po.transactional_id = options_.topic_prefix + "sagaflow-" + name_ + "-" + options_.instance_id;
  po.input_topics = InputTopics();
  processor_ = std::make_unique<core::Processor>(po, *this, metrics_);
  // The producer first: init_transactions aborts whatever a crashed previous
  // instance left open, so the catch-up below reads only committed records.
  if (auto s = processor_->Connect(kConnectTimeout); !s.ok()) return s;
  // Just-created topics may not have partition leaders yet: retry what can be retried.
  if (auto s = Retrying("preparing the catch-up", [this] { return BeforeCatchUp(); }); !s.ok()) return s;
  if (auto s = Retrying("catching up on the changelogs", [this] { return CatchUp(); }); !s.ok()) return s;
  if (auto s = OnCaughtUp(); !s.ok()) return s;

  // Healthy means the Kafka loop runs: 503 while it starts, and after it stopped (e.g. fenced).
  http_.Route("GET", "/", [this](const HttpRequest&) {
    if (processor_->running()) return HttpResponse::Json({{"service", name_}, {"status", "ok"}});
    return HttpResponse::Json({{"service", name_}, {"status", Done() ? "stopped" : "starting"}}, 503);
  });
  http_.Route("GET", "/metrics", [this](const HttpRequest&) { return HttpResponse::Text(metrics_.RenderPrometheus()); });
  AddRoutes(http_);
  if (auto s = http_.Start(options_.http_host, options_.http_port); !s.ok()) return s;
  log_->info("HTTP on {}:{}", options_.http_host, http_.port());

  loop_ = std::thread([this] {
    auto status = processor_->Run();
    if (!status.ok()) log_->error("stopped: {}", status.error().message);
    done_.set_value(status);
  });
  started_.store(true);
  return core::Status::Ok();
}

void Service::Stop() {
  if (stopped_.exchange(true)) return;
  http_.Stop();
  if (processor_) processor_->Stop();
  if (loop_.joinable()) loop_.join();
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

core::Status Service::CatchUp() {
  // A retried catch-up starts again from the stored offsets: forget what the failed attempt staged.
  staged_.clear();
  OnAbortedHook();
  auto kafka = KafkaOf(options_);
  for (const auto& changelog : Changelogs()) {
    const auto start = store_->AppliedOffsets();
    int64_t applied = 0;
    core::Status failed;
    eventstore::OffsetMap next;
    auto flush = [&] {
      if (staged_.empty() && next.empty()) return;
      auto s = store_->Commit(staged_, next);
      SAGAFLOW_CHECK(s.ok(), s.ok() ? "" : s.error().message);
      staged_.clear();
    };
    auto end = kafka::ReadToEnd(
        kafka, changelog.topic, start,
        [&](const kafka::Record& r) {
          ApplyChangelog(changelog, r, staged_);
          next[{r.topic, r.partition}] = r.offset + 1;
          if (++applied % kCatchUpBatch == 0) flush();
        },
        [&](int64_t n) {
          if (n > 0) log_->info("rebuilding from {}: {} records applied", changelog.topic, n);
        });
    if (!end.ok()) return end.error();
    next = end.value();
    flush();
    if (applied > 0) log_->info("caught up on {}: {} records applied", changelog.topic, applied);
  }
  return core::Status::Ok();
}

core::Status Service::MarkApplied(const eventstore::OffsetMap& offsets) {
  return store_->Commit(eventstore::WriteSet{}, offsets);
}

void Service::ApplyChangelog(const Changelog& changelog, const kafka::Record& record, eventstore::WriteSet& out) {
  const std::string key = changelog.table + "/" + record.key;
  if (record.value.empty()) {
    out.Delete(key);
  } else {
    out.Put(key, record.value);
  }
}

void Service::EmitChangelog(core::TxContext& tx, const Changelog& changelog, const std::string& key,
                            const core::Message& message) {
  kafka::Record record;
  record.topic = changelog.topic;
  record.key = key;
  record.value = core::Encode(message);
  tx.Produce(record.topic, record.key, record.value);
  ApplyChangelog(changelog, record, staged_);
  metrics_.Add("changelog_records_total");
}

void Service::Emit(core::TxContext& tx, const std::string& topic, const std::string& key,
                   const core::Message& message) {
  tx.Produce(topic, key, core::Encode(message));
}

void Service::DeadLetter(core::TxContext& tx, const kafka::Record& record, const std::string& reason) {
  log_->warn("dead-lettering {}[{}]@{} (key '{}'): {}", record.topic, record.partition, record.offset, record.key,
             reason);
  core::Message m;
  m.message_id = NewMessageId("dlq", 0);
  m.produced_at_ms = core::NowMs();
  m.payload = core::DeadLetter{reason, record.topic, record.partition, record.offset, record.key, record.value, name_};
  tx.Produce(topics_.dlq, record.key, core::Encode(m));
  metrics_.Add("dead_letters_total");
}

std::optional<core::Message> Service::DecodeOrDeadLetter(core::TxContext& tx, const kafka::Record& record) {
  auto decoded = core::Decode(record.value);
  if (!decoded.ok()) {
    DeadLetter(tx, record, decoded.error().message);
    return std::nullopt;
  }
  return std::move(decoded.value());
}

std::optional<std::string> Service::Get(const std::string& key) const {
  return eventstore::OverlayView(*store_, staged_).Get(key);
}

std::string Service::NewMessageId(const std::string& kind, core::OrderId saga) const {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t boot = std::random_device{}();
  return name_ + "-" + kind + "-" + std::to_string(saga) + "-" + std::to_string(boot % 1000000) + "-" +
         std::to_string(counter.fetch_add(1));
}

void Service::OnCommitted(const std::vector<kafka::Delivered>& delivered) {
  eventstore::OffsetMap offsets;
  const auto changelogs = Changelogs();
  for (const auto& d : delivered) {
    for (const auto& c : changelogs) {
      if (d.topic == c.topic) {
        auto& next = offsets[{d.topic, d.partition}];
        next = std::max(next, d.offset + 1);
      }
    }
  }
  if (!staged_.empty() || !offsets.empty()) {
    auto s = store_->Commit(staged_, offsets);
    // The Kafka transaction is committed; the store can be rebuilt from it, but
    // not while this process keeps running on a store it failed to write.
    SAGAFLOW_CHECK(s.ok(), s.ok() ? "" : s.error().message);
  }
  staged_.clear();
  OnCommittedHook();
}

void Service::OnAborted() {
  staged_.clear();
  OnAbortedHook();
}

}  // namespace sagaflow::runtime
