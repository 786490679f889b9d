#include "sagaflow/core/kafka/kafka_client.hpp"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafkacpp.h>
#include <spdlog/spdlog.h>

#include "sagaflow/core/log.hpp"

#include <algorithm>
#include <fstream>
#include <mutex>
#include <sys/stat.h>
#include <set>
#include <thread>

namespace sagaflow::kafka {
namespace {

using core::Errc;
using core::Error;
using core::Status;
using Clock = std::chrono::steady_clock;

std::shared_ptr<spdlog::logger> Log() {
  static auto logger = core::Logger("kafka");
  return logger;
}

// Routes librdkafka's own log lines and errors to spdlog.
class EventLogger : public RdKafka::EventCb {
 public:
  void event_cb(RdKafka::Event& event) override {
    switch (event.type()) {
      case RdKafka::Event::EVENT_ERROR:
        // Broker-down errors repeat every few seconds while it is away: warn, the
        // client reconnects by itself.
        Log()->warn("librdkafka: {} ({})", event.str(), RdKafka::err2str(event.err()));
        break;
      case RdKafka::Event::EVENT_LOG:
        if (event.severity() <= RdKafka::Event::EVENT_SEVERITY_ERROR) {
          Log()->error("librdkafka {}: {}", event.fac(), event.str());
        } else if (event.severity() <= RdKafka::Event::EVENT_SEVERITY_WARNING) {
          Log()->warn("librdkafka {}: {}", event.fac(), event.str());
        } else {
          Log()->debug("librdkafka {}: {}", event.fac(), event.str());
        }
        break;
      default:
        break;
    }
  }
};

// An EventLogger that also remembers an authentication failure, so that a
// wrong password ends the wait for the broker at once with a clear message.
class AuthWatch : public EventLogger {
 public:
  void event_cb(RdKafka::Event& event) override {
    EventLogger::event_cb(event);
    if (event.type() == RdKafka::Event::EVENT_ERROR && event.err() == RdKafka::ERR__AUTHENTICATION) {
      std::lock_guard lock(mu_);
      failure_ = event.str();
    }
  }
  std::string failure() const {
    std::lock_guard lock(mu_);
    return failure_;
  }

 private:
  mutable std::mutex mu_;
  std::string failure_;
};

EventLogger& SharedEventLogger() {
  static EventLogger logger;
  return logger;
}

struct ConfDeleter {
  void operator()(RdKafka::Conf* c) const { delete c; }
};
using ConfPtr = std::unique_ptr<RdKafka::Conf, ConfDeleter>;

core::Result<ConfPtr> MakeConf(const KafkaConfig& config, const std::map<std::string, std::string>& props) {
  ConfPtr conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  auto set = [&](const std::string& k, const std::string& v) -> bool {
    if (conf->set(k, v, err) != RdKafka::Conf::CONF_OK) {
      err = "kafka property " + k + "=" + v + ": " + err;
      return false;
    }
    return true;
  };
  if (!set("bootstrap.servers", config.brokers)) return Error{Errc::kInvalidArgument, err};
  if (conf->set("event_cb", static_cast<RdKafka::EventCb*>(&SharedEventLogger()), err) != RdKafka::Conf::CONF_OK) {
    return Error{Errc::kInternal, err};
  }
  for (const auto& [k, v] : props) {
    if (!set(k, v)) return Error{Errc::kInvalidArgument, err};
  }
  for (const auto& [k, v] : config.overrides) {
    if (!set(k, v)) return Error{Errc::kInvalidArgument, err};
  }
  return conf;
}

// Converts a transactional API error and deletes it.
Status FromTxnError(RdKafka::Error* e, const char* what) {
  if (e == nullptr) return Status::Ok();
  Error out;
  out.message = std::string(what) + ": " + e->str();
  const auto code = e->code();
  if (code == RdKafka::ERR__FENCED || code == RdKafka::ERR_PRODUCER_FENCED ||
      code == RdKafka::ERR_INVALID_PRODUCER_EPOCH) {
    out.code = Errc::kFenced;
    out.message +=
        " (fenced: a newer producer with the same transactional id started, or the broker aborted this "
        "producer's transaction after transaction.timeout.ms)";
  } else if (e->is_fatal()) {
    out.code = Errc::kInternal;
  } else if (e->txn_requires_abort()) {
    out.code = Errc::kAbortRequired;
  } else if (e->is_retriable()) {
    out.code = Errc::kUnavailable;
    out.retryable = true;
  } else {
    // The librdkafka docs: an error with none of the flags is to be treated as fatal.
    out.code = Errc::kInternal;
  }
  delete e;
  return out;
}

std::vector<RdKafka::TopicPartition*> ToNative(const OffsetMap& offsets) {
  std::vector<RdKafka::TopicPartition*> out;
  for (const auto& [tp, off] : offsets) {
    auto* p = RdKafka::TopicPartition::create(tp.topic, tp.partition);
    p->set_offset(off);
    out.push_back(p);
  }
  return out;
}

void DestroyAll(std::vector<RdKafka::TopicPartition*>& v) {
  RdKafka::TopicPartition::destroy(v);
  v.clear();
}

class DeliveryCollector : public RdKafka::DeliveryReportCb {
 public:
  void dr_cb(RdKafka::Message& message) override {
    auto index = reinterpret_cast<uintptr_t>(message.msg_opaque());
    if (index >= delivered.size()) return;
    ++reported;
    if (message.err() != RdKafka::ERR_NO_ERROR) {
      failed = true;
      failure = RdKafka::err2str(message.err());
      return;
    }
    delivered[index] = Delivered{message.topic_name(), message.partition(), message.offset()};
  }
  void Reset() {
    delivered.clear();
    reported = 0;
    failed = false;
    failure.clear();
  }
  std::vector<Delivered> delivered;
  size_t reported = 0;
  bool failed = false;
  std::string failure;
};

class ProducerImpl final : public TransactionalProducer {
 public:
  ~ProducerImpl() override {
    if (producer_) {
      if (in_txn_) (void)Abort();
      producer_->flush(2000);
    }
  }

  Status Init(const KafkaConfig& config, const std::string& transactional_id, std::chrono::milliseconds timeout) {
    auto conf = MakeConf(config, {{"transactional.id", transactional_id},
                                  // The task engine shortens it for producers named after an instance
                                  // (TaskEngineOptions::shared_producer).
                                  {"transaction.timeout.ms", "60000"},
                                  {"message.timeout.ms", "55000"},
                                  // While the previous commit's markers are written the coordinator answers
                                  // AddOffsetsToTxn with CONCURRENT_TRANSACTIONS; librdkafka retries after
                                  // retry.backoff.ms, whose default (100 ms) stalled a quarter of all commits.
                                  {"retry.backoff.ms", "10"},
                                  {"linger.ms", "1"},
                                  {"partitioner", "murmur2_random"},
                                  {"client.id", transactional_id}});
    if (!conf.ok()) return conf.error();
    std::string err;
    if (conf.value()->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(&dr_), err) != RdKafka::Conf::CONF_OK) {
      return Error{Errc::kInternal, err};
    }
    producer_.reset(RdKafka::Producer::create(conf.value().get(), err));
    if (!producer_) return Error{Errc::kInvalidArgument, "cannot create Kafka producer: " + err};
    auto deadline = Clock::now() + timeout;
    while (true) {
      auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      auto status = FromTxnError(producer_->init_transactions(std::max<int64_t>(remaining.count(), 1000)),
                                 "init_transactions");
      if (status.ok()) return status;
      if (!status.error().retryable || Clock::now() >= deadline) {
        auto e = status.error();
        e.message += " (is the broker at " + config.brokers + " up? deployment/kafka/broker status)";
        return e;
      }
      Log()->warn("{}; retrying", status.error().message);
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  }

  Status Begin() override {
    dr_.Reset();
    auto s = FromTxnError(producer_->begin_transaction(), "begin_transaction");
    if (s.ok()) in_txn_ = true;
    return s;
  }

  Status Produce(const std::string& topic, const std::string& key, const std::string& value) override {
    return ProduceTo(topic, RdKafka::Topic::PARTITION_UA, key, value);
  }

  Status ProduceTo(const std::string& topic, int32_t partition, const std::string& key,
                   const std::string& value) override {
    const auto index = dr_.delivered.size();
    dr_.delivered.emplace_back();
    while (true) {
      auto code = producer_->produce(topic, partition, RdKafka::Producer::RK_MSG_COPY,
                                     const_cast<char*>(value.data()), value.size(), key.data(), key.size(), 0,
                                     reinterpret_cast<void*>(static_cast<uintptr_t>(index)));
      if (code == RdKafka::ERR_NO_ERROR) return Status::Ok();
      if (code == RdKafka::ERR__QUEUE_FULL) {
        producer_->poll(50);
        continue;
      }
      dr_.delivered.pop_back();
      return Error{Errc::kAbortRequired, "produce to " + topic + ": " + RdKafka::err2str(code)};
    }
  }

  Status SendOffsets(const OffsetMap& offsets, GroupConsumer& consumer) override {
    if (offsets.empty()) return Status::Ok();
    auto* native = static_cast<RdKafka::KafkaConsumer*>(consumer.NativeHandle());
    std::unique_ptr<RdKafka::ConsumerGroupMetadata> meta(native->groupMetadata());
    auto parts = ToNative(offsets);
    auto s = FromTxnError(producer_->send_offsets_to_transaction(parts, meta.get(), 30000),
                          "send_offsets_to_transaction");
    DestroyAll(parts);
    return s;
  }

  core::Result<std::vector<Delivered>> Commit() override {
    auto s = FromTxnError(producer_->commit_transaction(60000), "commit_transaction");
    if (!s.ok()) {
      // A retriable commit error leaves the transaction open; the caller may
      // call Commit again or Abort.
      return s.error();
    }
    in_txn_ = false;
    // commit_transaction flushed every message; serve the remaining delivery reports.
    auto deadline = Clock::now() + std::chrono::seconds(5);
    while (dr_.reported < dr_.delivered.size() && Clock::now() < deadline) producer_->poll(10);
    if (dr_.failed) {
      return Error{Errc::kInternal, "transaction committed but a delivery failed: " + dr_.failure};
    }
    if (dr_.reported < dr_.delivered.size()) {
      return Error{Errc::kInternal, "transaction committed but delivery reports are missing"};
    }
    return std::move(dr_.delivered);
  }

  Status Abort() override {
    // Let the transaction's produce requests (and so its AddPartitionsToTxn) finish first: an
    // EndTxn(abort) that overtakes them can be refused with INVALID_TXN_STATE, a fatal error
    // (librdkafka issue 4849). Bounded: when the broker is away this only delays the abort.
    producer_->flush(5000);
    auto s = FromTxnError(producer_->abort_transaction(30000), "abort_transaction");
    if (s.ok() || !s.error().retryable) in_txn_ = false;
    producer_->poll(0);
    dr_.Reset();
    return s;
  }

  bool InTransaction() const override { return in_txn_; }

 private:
  DeliveryCollector dr_;
  std::unique_ptr<RdKafka::Producer> producer_;
  bool in_txn_ = false;
};

std::vector<TopicPartition> FromNative(const std::vector<RdKafka::TopicPartition*>& partitions) {
  std::vector<TopicPartition> out;
  out.reserve(partitions.size());
  for (auto* p : partitions) out.push_back({p->topic(), p->partition()});
  return out;
}

// Every partition starts at the group's committed offset (the start of the partition when there
// is none, as auto.offset.reset says). librdkafka looks the offsets up itself after assign(), but
// when that lookup is answered NOT_COORDINATOR for the whole request (the coordinator moved: a
// broker restarted, or was frozen past its session with the controller), 2.0.2 never asks again
// and never fetches the partition: its input stalls for good while the service looks healthy
// (librdkafka issue 5586). So the offsets are looked up here first, and a lookup that meets a
// moving coordinator is retried until it answers.
//
// A lookup can also wait on a transaction the partition's previous owner left open (kill -9):
// read_committed offsets are not given out until it ends, and it ends only after this callback
// (when a task's producer fences the old one, or when the broker aborts it after
// transaction.timeout.ms). Such a lookup is not waited for: after a short timeout the partitions
// are assigned without offsets and librdkafka's own lookup, which waits for the transaction,
// takes over.
constexpr auto kCommittedLookupDeadline = std::chrono::seconds(60);
constexpr int kCommittedLookupTimeoutMs = 1500;

enum class Lookup { kFound, kCoordinatorMoving, kNotNow };

bool CoordinatorMoving(RdKafka::ErrorCode code) {
  return code == RdKafka::ERR_NOT_COORDINATOR || code == RdKafka::ERR_COORDINATOR_NOT_AVAILABLE ||
         code == RdKafka::ERR_COORDINATOR_LOAD_IN_PROGRESS || code == RdKafka::ERR__WAIT_COORD ||
         code == RdKafka::ERR__TRANSPORT;
}

Lookup LookUpCommitted(RdKafka::KafkaConsumer* consumer, std::vector<RdKafka::TopicPartition*>& partitions,
                       std::string& why) {
  auto code = consumer->committed(partitions, kCommittedLookupTimeoutMs);
  if (code == RdKafka::ERR_NO_ERROR) {
    for (auto* p : partitions) {
      if (p->err() != RdKafka::ERR_NO_ERROR) {
        code = p->err();
        why = p->topic() + "[" + std::to_string(p->partition()) + "]: " + RdKafka::err2str(code);
        break;
      }
    }
    if (code == RdKafka::ERR_NO_ERROR) return Lookup::kFound;
  } else {
    why = RdKafka::err2str(code);
  }
  return CoordinatorMoving(code) ? Lookup::kCoordinatorMoving : Lookup::kNotNow;
}

// Returns false (the partitions assigned without offsets) when the coordinator kept moving until
// the deadline.
bool AssignAtCommitted(RdKafka::KafkaConsumer* consumer, std::vector<RdKafka::TopicPartition*>& partitions,
                       std::string& why) {
  const auto deadline = std::chrono::steady_clock::now() + kCommittedLookupDeadline;
  auto backoff = std::chrono::milliseconds(100);
  for (int attempt = 1;; ++attempt) {
    const auto found = LookUpCommitted(consumer, partitions, why);
    if (found == Lookup::kFound) {
      for (auto* p : partitions) {
        if (p->offset() < 0) p->set_offset(RdKafka::Topic::OFFSET_BEGINNING);
      }
      if (attempt > 1) Log()->info("committed offsets found on attempt {}", attempt);
      consumer->assign(partitions);
      return true;
    }
    if (found == Lookup::kNotNow) {
      Log()->info("committed offsets not given yet ({}): the consumer looks them up once the previous "
                  "owner's transactions are ended",
                  why);
      for (auto* p : partitions) p->set_offset(RdKafka::Topic::OFFSET_INVALID);
      consumer->assign(partitions);
      return true;
    }
    if (std::chrono::steady_clock::now() + backoff >= deadline) break;
    Log()->warn("looking up the committed offsets of {} partition(s) failed ({}); retrying", partitions.size(),
                why);
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
  }
  for (auto* p : partitions) p->set_offset(RdKafka::Topic::OFFSET_INVALID);
  consumer->assign(partitions);
  return false;
}

class Rebalancer : public RdKafka::RebalanceCb {
 public:
  // fail: called when the assigned partitions' committed offsets cannot be found; the consumer is
  // then of no use (see AssignAtCommitted) and must be given up.
  Rebalancer(RebalanceListener listener, std::function<void(std::string)> fail)
      : listener_(std::move(listener)), fail_(std::move(fail)) {}
  void rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode err,
                    std::vector<RdKafka::TopicPartition*>& partitions) override {
    if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
      Log()->info("assigned {} partition(s)", partitions.size());
      if (std::string why; !AssignAtCommitted(consumer, partitions, why)) {
        fail_("no committed offsets for the " + std::to_string(partitions.size()) + " assigned partition(s) after " +
              std::to_string(kCommittedLookupDeadline.count()) + " s: " + why);
      }
      if (listener_.on_assigned) listener_.on_assigned(FromNative(partitions));
    } else {
      const bool lost = consumer->assignment_lost();
      Log()->info("revoked {} partition(s){}", partitions.size(), lost ? " (lost)" : "");
      if (listener_.on_revoked) listener_.on_revoked(FromNative(partitions), lost);
      consumer->unassign();
    }
  }

 private:
  RebalanceListener listener_;
  std::function<void(std::string)> fail_;
};

class ConsumerImpl final : public GroupConsumer {
 public:
  explicit ConsumerImpl(RebalanceListener listener)
      : rebalancer_(std::move(listener), [this](std::string why) {
          Log()->error("{}", why);
          std::lock_guard lock(fatal_mu_);
          if (fatal_.empty()) fatal_ = std::move(why);
        }) {}
  ~ConsumerImpl() override { Close(); }

  Status Init(const KafkaConfig& config, const std::string& group_id, const std::vector<std::string>& topics) {
    auto conf = MakeConf(config, {{"group.id", group_id},
                                  {"enable.auto.commit", "false"},
                                  {"enable.auto.offset.store", "false"},
                                  {"auto.offset.reset", "earliest"},
                                  {"isolation.level", "read_committed"},
                                  {"partition.assignment.strategy", "range"},
                                  {"session.timeout.ms", "10000"},
                                  {"heartbeat.interval.ms", "1000"},
                                  {"fetch.wait.max.ms", "100"},
                                  {"client.id", group_id}});
    if (!conf.ok()) return conf.error();
    std::string err;
    if (conf.value()->set("rebalance_cb", static_cast<RdKafka::RebalanceCb*>(&rebalancer_), err) !=
        RdKafka::Conf::CONF_OK) {
      return Error{Errc::kInternal, err};
    }
    consumer_.reset(RdKafka::KafkaConsumer::create(conf.value().get(), err));
    if (!consumer_) return Error{Errc::kInvalidArgument, "cannot create Kafka consumer: " + err};
    auto code = consumer_->subscribe(topics);
    if (code != RdKafka::ERR_NO_ERROR) {
      return Error{Errc::kUnavailable, "subscribe: " + RdKafka::err2str(code), true};
    }
    return Status::Ok();
  }

  std::vector<Record> Poll(size_t max_records, std::chrono::milliseconds timeout) override {
    std::vector<Record> out;
    int wait_ms = static_cast<int>(timeout.count());
    while (out.size() < max_records) {
      std::unique_ptr<RdKafka::Message> m(consumer_->consume(wait_ms));
      wait_ms = 0;
      if (!m) break;
      const auto err = m->err();
      if (err == RdKafka::ERR__TIMED_OUT) break;
      if (err == RdKafka::ERR__PARTITION_EOF) continue;
      if (err == RdKafka::ERR__FATAL) {
        std::string reason;
        const auto code = consumer_->fatal_error(reason);
        std::lock_guard lock(fatal_mu_);
        fatal_ = RdKafka::err2str(code) + ": " + reason;
        break;
      }
      if (err != RdKafka::ERR_NO_ERROR) {
        Log()->warn("consume: {}", m->errstr());
        break;
      }
      Record r;
      r.topic = m->topic_name();
      r.partition = m->partition();
      r.offset = m->offset();
      if (m->key() != nullptr) r.key = *m->key();
      if (m->payload() != nullptr) r.value.assign(static_cast<const char*>(m->payload()), m->len());
      r.timestamp_ms = m->timestamp().timestamp;
      out.push_back(std::move(r));
    }
    return out;
  }

  Status RewindToCommitted() override {
    std::vector<RdKafka::TopicPartition*> parts;
    auto code = consumer_->assignment(parts);
    if (code != RdKafka::ERR_NO_ERROR) return Error{Errc::kUnavailable, RdKafka::err2str(code), true};
    if (parts.empty()) return Status::Ok();
    code = consumer_->committed(parts, 30000);
    if (code != RdKafka::ERR_NO_ERROR) {
      DestroyAll(parts);
      return Error{Errc::kUnavailable, "fetching committed offsets: " + RdKafka::err2str(code), true};
    }
    for (auto* p : parts) {
      // No committed offset yet: start of the partition, as auto.offset.reset says.
      if (p->offset() < 0) p->set_offset(RdKafka::Topic::OFFSET_BEGINNING);
    }
    // Re-assigning with explicit offsets resets the fetch position and drops prefetched messages.
    code = consumer_->assign(parts);
    DestroyAll(parts);
    if (code != RdKafka::ERR_NO_ERROR) return Error{Errc::kUnavailable, "assign: " + RdKafka::err2str(code), true};
    return Status::Ok();
  }

  Status RewindToCommitted(const std::vector<TopicPartition>& partitions) override {
    if (partitions.empty()) return Status::Ok();
    std::vector<RdKafka::TopicPartition*> parts;
    for (const auto& tp : partitions) parts.push_back(RdKafka::TopicPartition::create(tp.topic, tp.partition));
    auto code = consumer_->committed(parts, 30000);
    if (code != RdKafka::ERR_NO_ERROR) {
      DestroyAll(parts);
      return Error{Errc::kUnavailable, "fetching committed offsets: " + RdKafka::err2str(code), true};
    }
    Status status;
    for (auto* p : parts) {
      if (p->offset() < 0) p->set_offset(RdKafka::Topic::OFFSET_BEGINNING);
      // A seek drops what was fetched from the old position (librdkafka versions its fetch queue).
      code = consumer_->seek(*p, 10000);
      if (code != RdKafka::ERR_NO_ERROR) {
        status = Error{Errc::kUnavailable, "seek " + p->topic() + "[" + std::to_string(p->partition()) +
                                               "]: " + RdKafka::err2str(code), true};
        break;
      }
    }
    DestroyAll(parts);
    return status;
  }

  void Pause(const std::vector<TopicPartition>& partitions) override { PauseOrResume(partitions, true); }
  void Resume(const std::vector<TopicPartition>& partitions) override { PauseOrResume(partitions, false); }

  void Close() override {
    if (consumer_ && !closed_) {
      closed_ = true;
      consumer_->close();
    }
  }

  void* NativeHandle() override { return consumer_.get(); }

  std::string FatalError() const override {
    std::lock_guard lock(fatal_mu_);
    return fatal_;
  }

 private:
  void PauseOrResume(const std::vector<TopicPartition>& partitions, bool pause) {
    if (partitions.empty()) return;
    std::vector<RdKafka::TopicPartition*> parts;
    for (const auto& tp : partitions) parts.push_back(RdKafka::TopicPartition::create(tp.topic, tp.partition));
    auto code = pause ? consumer_->pause(parts) : consumer_->resume(parts);
    if (code != RdKafka::ERR_NO_ERROR) Log()->warn("{}: {}", pause ? "pause" : "resume", RdKafka::err2str(code));
    DestroyAll(parts);
  }

  Rebalancer rebalancer_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  mutable std::mutex fatal_mu_;
  std::string fatal_;  // guarded by fatal_mu_
  bool closed_ = false;
};

}  // namespace

core::Result<std::unique_ptr<TransactionalProducer>> TransactionalProducer::Open(
    const KafkaConfig& config, const std::string& transactional_id, std::chrono::milliseconds init_timeout) {
  auto p = std::make_unique<ProducerImpl>();
  auto s = p->Init(config, transactional_id, init_timeout);
  if (!s.ok()) return s.error();
  return std::unique_ptr<TransactionalProducer>(std::move(p));
}

core::Result<std::unique_ptr<GroupConsumer>> GroupConsumer::Open(const KafkaConfig& config,
                                                                 const std::string& group_id,
                                                                 const std::vector<std::string>& topics,
                                                                 RebalanceListener listener) {
  auto c = std::make_unique<ConsumerImpl>(std::move(listener));
  auto s = c->Init(config, group_id, topics);
  if (!s.ok()) return s.error();
  return std::unique_ptr<GroupConsumer>(std::move(c));
}

int32_t PartitionOf(std::string_view key, int32_t partitions) {
  // Kafka's murmur2 (the Java client's Utils.murmur2, seed 0x9747b28c), which
  // librdkafka's murmur2 partitioners reproduce: positive hash modulo the count.
  const auto* data = reinterpret_cast<const uint8_t*>(key.data());
  const auto length = static_cast<uint32_t>(key.size());
  constexpr uint32_t kM = 0x5bd1e995;
  constexpr int kR = 24;
  uint32_t h = 0x9747b28c ^ length;
  const uint32_t blocks = length / 4;
  for (uint32_t i = 0; i < blocks; ++i) {
    uint32_t k = static_cast<uint32_t>(data[i * 4]) | static_cast<uint32_t>(data[i * 4 + 1]) << 8 |
                 static_cast<uint32_t>(data[i * 4 + 2]) << 16 | static_cast<uint32_t>(data[i * 4 + 3]) << 24;
    k *= kM;
    k ^= k >> kR;
    k *= kM;
    h *= kM;
    h ^= k;
  }
  const uint32_t tail = blocks * 4;
  switch (length % 4) {
    case 3:
      h ^= static_cast<uint32_t>(data[tail + 2]) << 16;
      [[fallthrough]];
    case 2:
      h ^= static_cast<uint32_t>(data[tail + 1]) << 8;
      [[fallthrough]];
    case 1:
      h ^= data[tail];
      h *= kM;
  }
  h ^= h >> 13;
  h *= kM;
  h ^= h >> 15;
  return static_cast<int32_t>((h & 0x7fffffff) % static_cast<uint32_t>(partitions));
}

core::Result<std::string> ClusterId(const KafkaConfig& config, std::chrono::milliseconds timeout) {
  auto conf = MakeConf(config, {});
  if (!conf.ok()) return conf.error();
  std::string err;
  std::unique_ptr<RdKafka::Producer> p(RdKafka::Producer::create(conf.value().get(), err));
  if (!p) return Error{Errc::kInvalidArgument, err};
  auto id = p->clusterid(static_cast<int>(timeout.count()));
  if (id.empty()) {
    return Error{Errc::kUnavailable, "no cluster id from " + config.brokers + " within " +
                                         std::to_string(timeout.count()) + " ms", true};
  }
  return id;
}

Status WaitForBroker(const KafkaConfig& config, std::chrono::milliseconds timeout) {
  auto conf = MakeConf(config, {});
  if (!conf.ok()) return conf.error();
  std::string err;
  AuthWatch auth;
  if (conf.value()->set("event_cb", static_cast<RdKafka::EventCb*>(&auth), err) != RdKafka::Conf::CONF_OK) {
    return Error{Errc::kInternal, err};
  }
  std::unique_ptr<RdKafka::Producer> p(RdKafka::Producer::create(conf.value().get(), err));
  if (!p) return Error{Errc::kInvalidArgument, err};
  auto deadline = Clock::now() + timeout;
  std::string last;
  do {
    RdKafka::Metadata* md = nullptr;
    auto code = p->metadata(true, nullptr, &md, 2000);
    delete md;
    if (code == RdKafka::ERR_NO_ERROR) return Status::Ok();
    p->poll(0);  // serves the error events (an authentication failure among them)
    if (auto failure = auth.failure(); !failure.empty()) {
      return Error{Errc::kInvalidArgument,
                   "the Kafka broker at " + config.brokers + " refused the credentials: " + failure +
                       " (check sasl.username and sasl.password in --kafka-config-file)"};
    }
    last = RdKafka::err2str(code);
  } while (Clock::now() < deadline);
  return Error{Errc::kUnavailable,
               "Kafka broker at " + config.brokers + " did not answer within " +
                   std::to_string(timeout.count()) + " ms (" + last + "); start it with deployment/kafka/broker start",
               true};
}

Status CreateTopics(const KafkaConfig& config, const std::vector<core::TopicSpec>& all_topics,
                    std::chrono::milliseconds timeout) {
  if (all_topics.empty()) return Status::Ok();
  auto conf = MakeConf(config, {});
  if (!conf.ok()) return conf.error();
  std::string err;
  std::unique_ptr<RdKafka::Producer> p(RdKafka::Producer::create(conf.value().get(), err));
  if (!p) return Error{Errc::kInvalidArgument, err};
  rd_kafka_t* rk = p->c_ptr();
  char errbuf[512];

  // Only the missing topics are created: a principal without the right to
  // create topics (a service under ACLs) then needs none when they exist.
  std::vector<core::TopicSpec> topics;
  {
    RdKafka::Metadata* md_raw = nullptr;
    const auto code = p->metadata(true, nullptr, &md_raw, static_cast<int>(timeout.count()));
    std::unique_ptr<RdKafka::Metadata> md(md_raw);
    if (code != RdKafka::ERR_NO_ERROR) {
      return Error{Errc::kUnavailable, "listing the topics: " + RdKafka::err2str(code), true};
    }
    std::set<std::string> existing;
    for (const auto* t : *md->topics()) {
      if (t->err() == RdKafka::ERR_NO_ERROR) existing.insert(t->topic());
    }
    for (const auto& t : all_topics) {
      if (!existing.contains(t.name)) topics.push_back(t);
    }
  }
  if (topics.empty()) return Status::Ok();

  std::vector<rd_kafka_NewTopic_t*> new_topics;
  for (const auto& t : topics) {
    // Replication factor -1: the broker's default.replication.factor, so that one broker (1) and the
    // three-node cluster (3, with min.insync.replicas=2) each set their own (deployment/kafka/cluster).
    auto* nt = rd_kafka_NewTopic_new(t.name.c_str(), t.partitions, -1, errbuf, sizeof(errbuf));
    if (nt == nullptr) {
      rd_kafka_NewTopic_destroy_array(new_topics.data(), new_topics.size());
      return Error{Errc::kInvalidArgument, "topic " + t.name + ": " + errbuf};
    }
    rd_kafka_NewTopic_set_config(nt, "cleanup.policy", t.compacted ? "compact" : "delete");
    if (t.retain_forever) rd_kafka_NewTopic_set_config(nt, "retention.ms", "-1");
    if (t.compacted) {
      // Compact soon after writes so that rebuilding from a changelog reads little more than the live keys.
      rd_kafka_NewTopic_set_config(nt, "min.cleanable.dirty.ratio", "0.1");
      rd_kafka_NewTopic_set_config(nt, "segment.ms", "600000");
      rd_kafka_NewTopic_set_config(nt, "segment.bytes", "16777216");
    }
    new_topics.push_back(nt);
  }
  auto* options = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_operation_timeout(options, static_cast<int>(timeout.count()), errbuf, sizeof(errbuf));
  rd_kafka_AdminOptions_set_request_timeout(options, static_cast<int>(timeout.count()), errbuf, sizeof(errbuf));
  auto* queue = rd_kafka_queue_new(rk);
  rd_kafka_CreateTopics(rk, new_topics.data(), new_topics.size(), options, queue);
  auto* event = rd_kafka_queue_poll(queue, static_cast<int>(timeout.count()) + 5000);
  Status status;
  if (event == nullptr) {
    status = Error{Errc::kTimeout, "creating topics timed out (broker at " + config.brokers + ")", true};
  } else if (rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    status = Error{Errc::kUnavailable, std::string("creating topics: ") + rd_kafka_event_error_string(event), true};
  } else {
    size_t n = 0;
    const auto* result = rd_kafka_event_CreateTopics_result(event);
    const auto** results = rd_kafka_CreateTopics_result_topics(result, &n);
    for (size_t i = 0; i < n; ++i) {
      auto code = rd_kafka_topic_result_error(results[i]);
      if (code == RD_KAFKA_RESP_ERR_NO_ERROR) {
        Log()->info("created topic {}", rd_kafka_topic_result_name(results[i]));
      } else if (code == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
                 code == RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED) {
        status = Error{Errc::kInvalidArgument,
                       std::string("topic ") + rd_kafka_topic_result_name(results[i]) +
                           " is missing and this principal may not create topics: create them as the admin "
                           "(sagaflow topics create --kafka-config-file <admin credentials>)"};
        break;
      } else if (code != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        status = Error{Errc::kUnavailable,
                       std::string("creating topic ") + rd_kafka_topic_result_name(results[i]) + ": " +
                           (rd_kafka_topic_result_error_string(results[i]) ? rd_kafka_topic_result_error_string(results[i])
                                                                           : rd_kafka_err2str(code)),
                       true};
        break;
      }
    }
  }
  if (event != nullptr) rd_kafka_event_destroy(event);
  rd_kafka_queue_destroy(queue);
  rd_kafka_AdminOptions_destroy(options);
  rd_kafka_NewTopic_destroy_array(new_topics.data(), new_topics.size());
  return status;
}

namespace {

struct Watermarks {
  int64_t low = 0;
  int64_t high = 0;
};

core::Result<std::unique_ptr<RdKafka::KafkaConsumer>> MakeReader(const KafkaConfig& config) {
  // A group id is required by the KafkaConsumer API; nothing is ever committed with it.
  auto conf = MakeConf(config, {{"group.id", config.reader_group},
                                {"enable.auto.commit", "false"},
                                {"enable.auto.offset.store", "false"},
                                {"enable.partition.eof", "true"},
                                {"isolation.level", "read_committed"},
                                {"auto.offset.reset", "earliest"}});
  if (!conf.ok()) return conf.error();
  std::string err;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(RdKafka::KafkaConsumer::create(conf.value().get(), err));
  if (!consumer) return Error{Errc::kInvalidArgument, "cannot create Kafka reader: " + err};
  return consumer;
}

// A consumed message as a Record of `topic`.
Record ToRecord(const RdKafka::Message& m, const std::string& topic) {
  Record r;
  r.topic = topic;
  r.partition = m.partition();
  r.offset = m.offset();
  if (m.key() != nullptr) r.key = *m.key();
  if (m.payload() != nullptr) r.value.assign(static_cast<const char*>(m.payload()), m.len());
  r.timestamp_ms = m.timestamp().timestamp;
  return r;
}

// The low and high watermark of every partition of `topic`.
core::Result<std::map<int32_t, Watermarks>> TopicWatermarks(RdKafka::KafkaConsumer& consumer,
                                                             const std::string& topic) {
  std::string err;
  std::unique_ptr<RdKafka::Topic> t(RdKafka::Topic::create(&consumer, topic, nullptr, err));
  RdKafka::Metadata* md_raw = nullptr;
  auto code = consumer.metadata(false, t.get(), &md_raw, 10000);
  std::unique_ptr<RdKafka::Metadata> md(md_raw);
  if (code != RdKafka::ERR_NO_ERROR || md->topics()->empty()) {
    return Error{Errc::kUnavailable, "metadata of " + topic + ": " + RdKafka::err2str(code), true};
  }
  const auto* tm = (*md->topics())[0];
  if (tm->err() != RdKafka::ERR_NO_ERROR) {
    return Error{Errc::kUnavailable, "topic " + topic + ": " + RdKafka::err2str(tm->err()) +
                                         " (create topics with: sagaflow topics create)", true};
  }
  std::map<int32_t, Watermarks> out;
  for (const auto* pm : *tm->partitions()) {
    Watermarks w;
    code = consumer.query_watermark_offsets(topic, pm->id(), &w.low, &w.high, 10000);
    if (code != RdKafka::ERR_NO_ERROR) {
      return Error{Errc::kUnavailable, "watermarks of " + topic + ": " + RdKafka::err2str(code), true};
    }
    out[pm->id()] = w;
  }
  return out;
}

}  // namespace

core::Result<OffsetMap> EndOffsets(const KafkaConfig& config, const std::string& topic) {
  auto consumer = MakeReader(config);
  if (!consumer.ok()) return consumer.error();
  auto marks = TopicWatermarks(*consumer.value(), topic);
  consumer.value()->close();
  if (!marks.ok()) return marks.error();
  OffsetMap out;
  for (const auto& [p, w] : marks.value()) out[{topic, p}] = w.high;
  return out;
}

core::Result<OffsetMap> CommittedOffsets(const KafkaConfig& config, const std::string& group,
                                         const std::string& topic) {
  // read_uncommitted: the lookup then does not wait for the group's open
  // transactions (librdkafka asks for stable offsets only when reading
  // committed), and what an open transaction would commit is not counted.
  KafkaConfig lookup = config;
  lookup.reader_group = group;
  lookup.overrides["isolation.level"] = "read_uncommitted";
  auto consumer = MakeReader(lookup);
  if (!consumer.ok()) return consumer.error();
  auto marks = TopicWatermarks(*consumer.value(), topic);
  if (!marks.ok()) {
    consumer.value()->close();
    return marks.error();
  }
  std::vector<RdKafka::TopicPartition*> partitions;
  for (const auto& [p, w] : marks.value()) partitions.push_back(RdKafka::TopicPartition::create(topic, p));
  std::string why;
  const bool found = LookUpCommitted(consumer.value().get(), partitions, why) == Lookup::kFound;
  OffsetMap out;
  for (const auto* p : partitions) {
    if (found && p->offset() >= 0) out[{topic, p->partition()}] = p->offset();
  }
  DestroyAll(partitions);
  consumer.value()->close();
  if (!found) return Error{Errc::kUnavailable, "committed offsets of group " + group + " on " + topic + ": " + why, true};
  return out;
}

core::Result<OffsetMap> OffsetsForTime(const KafkaConfig& config, const std::string& topic, int64_t time_ms) {
  auto consumer = MakeReader(config);
  if (!consumer.ok()) return consumer.error();
  auto marks = TopicWatermarks(*consumer.value(), topic);
  if (!marks.ok()) {
    consumer.value()->close();
    return marks.error();
  }
  std::vector<RdKafka::TopicPartition*> query;
  for (const auto& [p, w] : marks.value()) query.push_back(RdKafka::TopicPartition::create(topic, p, time_ms));
  auto code = consumer.value()->offsetsForTimes(query, 10000);
  OffsetMap out;
  for (auto* p : query) {
    // -1: no record at or after the time: start at the end.
    const int64_t offset = p->offset() >= 0 ? p->offset() : marks.value()[p->partition()].high;
    out[{topic, p->partition()}] = offset;
  }
  DestroyAll(query);
  consumer.value()->close();
  if (code != RdKafka::ERR_NO_ERROR) {
    return Error{Errc::kUnavailable, "offsets of " + topic + " by time: " + RdKafka::err2str(code), true};
  }
  return out;
}

core::Result<OffsetMap> ReadToEnd(const KafkaConfig& config, const std::string& topic, const OffsetMap& start,
                                  const std::function<void(const Record&)>& fn,
                                  const std::function<void(int64_t)>& progress,
                                  const std::vector<int32_t>& only_partitions) {
  auto reader = MakeReader(config);
  if (!reader.ok()) return reader.error();
  auto& consumer = reader.value();
  auto marks = TopicWatermarks(*consumer, topic);
  if (!marks.ok()) return marks.error();

  OffsetMap next;
  std::vector<RdKafka::TopicPartition*> assign;
  std::set<int32_t> open;
  for (const auto& [p, w] : marks.value()) {
    if (!only_partitions.empty() &&
        std::find(only_partitions.begin(), only_partitions.end(), p) == only_partitions.end()) {
      continue;
    }
    auto it = start.find({topic, p});
    const int64_t from = std::max(it == start.end() ? int64_t{0} : it->second, w.low);
    next[{topic, p}] = from;
    if (from >= w.high) continue;
    assign.push_back(RdKafka::TopicPartition::create(topic, p, from));
    open.insert(p);
  }
  if (assign.empty()) return next;
  auto code = consumer->assign(assign);
  DestroyAll(assign);
  if (code != RdKafka::ERR_NO_ERROR) return Error{Errc::kUnavailable, "assign: " + RdKafka::err2str(code), true};

  int64_t count = 0;
  auto last_progress = Clock::now();
  auto idle_deadline = Clock::now() + std::chrono::seconds(60);
  while (!open.empty()) {
    std::unique_ptr<RdKafka::Message> m(consumer->consume(200));
    if (m->err() == RdKafka::ERR__TIMED_OUT) {
      if (Clock::now() > idle_deadline) {
        consumer->close();
        return Error{Errc::kTimeout, "reading " + topic + " stalled for 60 s", true};
      }
      continue;
    }
    idle_deadline = Clock::now() + std::chrono::seconds(60);
    if (m->err() == RdKafka::ERR__PARTITION_EOF) {
      next[{topic, m->partition()}] = m->offset();
      open.erase(m->partition());
      continue;
    }
    if (m->err() != RdKafka::ERR_NO_ERROR) {
      Log()->warn("reading {}: {}", topic, m->errstr());
      continue;
    }
    Record r = ToRecord(*m, topic);
    fn(r);
    next[{topic, r.partition}] = r.offset + 1;
    ++count;
    if (progress && Clock::now() - last_progress > std::chrono::seconds(2)) {
      progress(count);
      last_progress = Clock::now();
    }
  }
  if (progress) progress(count);
  consumer->close();
  return next;
}

namespace {

class TopicTailImpl final : public TopicTail {
 public:
  ~TopicTailImpl() override {
    if (consumer_) consumer_->close();
    if (prober_) prober_->close();
  }

  Status Init(const KafkaConfig& config, const std::string& topic, const OffsetMap& start) {
    topic_ = topic;
    config_ = config;
    // A fetch returns as soon as records are committed; on a quiet topic the
    // broker holds it up to fetch.wait.max.ms. Every held fetch costs the
    // broker a request, so the follower waits long (a partition's end past
    // its markers shows late here; CommittedRecordEnds answers that at once,
    // with the second reader).
    KafkaConfig tuned = config;
    tuned.overrides.emplace("fetch.wait.max.ms", "500");
    auto reader = MakeReader(tuned);
    if (!reader.ok()) return reader.error();
    consumer_ = std::move(reader.value());
    auto marks = TopicWatermarks(*consumer_, topic);
    if (!marks.ok()) return marks.error();
    std::vector<RdKafka::TopicPartition*> assign;
    for (const auto& [p, w] : marks.value()) {
      auto it = start.find({topic, p});
      const int64_t from = std::max(it == start.end() ? int64_t{0} : it->second, w.low);
      assign.push_back(RdKafka::TopicPartition::create(topic, p, from));
    }
    auto code = consumer_->assign(assign);
    DestroyAll(assign);
    if (code != RdKafka::ERR_NO_ERROR) return Error{Errc::kUnavailable, "assign: " + RdKafka::err2str(code), true};
    return Status::Ok();
  }

  std::vector<Record> Poll(size_t max_records, std::chrono::milliseconds timeout, OffsetMap& positions) override {
    std::vector<Record> out;
    int wait_ms = static_cast<int>(timeout.count());
    while (out.size() < max_records) {
      std::unique_ptr<RdKafka::Message> m(consumer_->consume(wait_ms));
      wait_ms = 0;
      if (!m || m->err() == RdKafka::ERR__TIMED_OUT) break;
      if (m->err() == RdKafka::ERR__PARTITION_EOF) {
        // The end of the partition: the offset is past any markers that follow the last record.
        positions[{topic_, m->partition()}] = m->offset();
        continue;
      }
      if (m->err() != RdKafka::ERR_NO_ERROR) {
        Log()->warn("reading {}: {}", topic_, m->errstr());
        break;
      }
      Record r = ToRecord(*m, topic_);
      positions[{topic_, r.partition}] = r.offset + 1;
      out.push_back(std::move(r));
    }
    return out;
  }

  core::Result<OffsetMap> EndOffsets() override {
    // Not on the follower's connection: the broker answers a connection's
    // requests in order, each of these after the fetch it holds.
    auto prober = Prober();
    if (!prober.ok()) return prober.error();
    auto marks = TopicWatermarks(*prober.value(), topic_);
    if (!marks.ok()) return marks.error();
    OffsetMap out;
    for (const auto& [p, w] : marks.value()) out[{topic_, p}] = w.high;
    return out;
  }

  core::Result<OffsetMap> CommittedRecordEnds(const OffsetMap& from, const OffsetMap& ends,
                                              std::chrono::milliseconds timeout) override {
    const auto deadline = Clock::now() + timeout;
    std::unique_lock lock(probe_mu_, std::defer_lock);  // one call at a time uses the reader
    if (!lock.try_lock_until(deadline)) {
      return Error{Errc::kTimeout, "another read of the end of " + topic_ + " took the whole " +
                                       std::to_string(timeout.count()) + " ms", true};
    }
    OffsetMap out;
    std::map<int32_t, int64_t> open;  // partition -> its end as asked
    std::vector<RdKafka::TopicPartition*> assign;
    for (const auto& [tp, offset] : from) {
      if (tp.topic != topic_) continue;
      out[tp] = offset;
      auto end = ends.find(tp);
      if (end == ends.end() || offset >= end->second) continue;
      open[tp.partition] = end->second;
      assign.push_back(RdKafka::TopicPartition::create(topic_, tp.partition, offset));
    }
    if (open.empty()) return out;
    auto prober = Prober();
    if (!prober.ok()) {
      DestroyAll(assign);
      return prober.error();
    }
    RdKafka::KafkaConsumer& reader = *prober.value();
    auto code = reader.assign(assign);
    DestroyAll(assign);
    if (code != RdKafka::ERR_NO_ERROR) return Error{Errc::kUnavailable, "assign: " + RdKafka::err2str(code), true};
    while (!open.empty()) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) break;
      std::unique_ptr<RdKafka::Message> m(reader.consume(static_cast<int>(std::min<int64_t>(left.count(), 100))));
      if (!m || m->err() == RdKafka::ERR__TIMED_OUT) continue;
      auto it = open.find(m->partition());
      if (it == open.end()) continue;
      if (m->err() == RdKafka::ERR__PARTITION_EOF) {
        open.erase(it);  // nothing more committed there: the rest were markers
        continue;
      }
      if (m->err() != RdKafka::ERR_NO_ERROR) {
        Log()->warn("reading {}: {}", topic_, m->errstr());
        continue;
      }
      if (m->offset() < it->second) out[{topic_, m->partition()}] = m->offset() + 1;
      if (m->offset() + 1 >= it->second) open.erase(it);
    }
    (void)reader.unassign();
    if (!open.empty()) {
      return Error{Errc::kTimeout,
                   "the end of " + topic_ + " was not read within " + std::to_string(timeout.count()) + " ms", true};
    }
    return out;
  }

 private:
  // The second reader, made on first use: it asks for the ends and reads
  // gaps. Its fetches are not held (an empty one answers at once with the
  // partition's end), and it fetches only during CommittedRecordEnds.
  core::Result<RdKafka::KafkaConsumer*> Prober() {
    std::lock_guard lock(prober_mu_);
    if (!prober_) {
      KafkaConfig tuned = config_;
      tuned.overrides["fetch.wait.max.ms"] = "0";
      auto reader = MakeReader(tuned);
      if (!reader.ok()) return reader.error();
      prober_ = std::move(reader.value());
    }
    return prober_.get();
  }

  std::string topic_;
  KafkaConfig config_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::timed_mutex probe_mu_;  // one CommittedRecordEnds at a time
  std::mutex prober_mu_;
  std::unique_ptr<RdKafka::KafkaConsumer> prober_;
};

}  // namespace

core::Result<std::unique_ptr<TopicTail>> TopicTail::Open(const KafkaConfig& config, const std::string& topic,
                                                         const OffsetMap& start) {
  auto tail = std::make_unique<TopicTailImpl>();
  if (auto s = tail->Init(config, topic, start); !s.ok()) return s.error();
  return std::unique_ptr<TopicTail>(std::move(tail));
}

core::Result<OffsetMap> ReadBulk(const KafkaConfig& config, const std::string& topic, const OffsetMap& start,
                                 const std::function<void(std::span<const RecordView>)>& fn,
                                 const std::function<void(int64_t, int64_t)>& progress) {
  // Defaults are tuned for services that read a little and often; a bulk read
  // wants big fetches and a deep prefetch queue so the broker thread keeps the
  // queue full while the caller works through the last batch.
  KafkaConfig bulk = config;
  const std::map<std::string, std::string> tuned{{"max.partition.fetch.bytes", "16777216"},
                                                 {"fetch.max.bytes", "67108864"},
                                                 {"receive.message.max.bytes", "68000000"},
                                                 {"queued.min.messages", "1000000"},
                                                 {"queued.max.messages.kbytes", "524288"},
                                                 {"fetch.wait.max.ms", "50"}};
  for (const auto& [k, v] : tuned) bulk.overrides.emplace(k, v);  // the caller's overrides win
  auto reader = MakeReader(bulk);
  if (!reader.ok()) return reader.error();
  auto& consumer = reader.value();
  auto marks = TopicWatermarks(*consumer, topic);
  if (!marks.ok()) return marks.error();

  OffsetMap next;
  std::vector<RdKafka::TopicPartition*> assign;
  std::set<int32_t> open;
  int64_t expected = 0;
  for (const auto& [p, w] : marks.value()) {
    auto it = start.find({topic, p});
    const int64_t from = std::max(it == start.end() ? int64_t{0} : it->second, w.low);
    next[{topic, p}] = from;
    if (from >= w.high) continue;
    expected += w.high - from;
    assign.push_back(RdKafka::TopicPartition::create(topic, p, from));
    open.insert(p);
  }
  if (assign.empty()) return next;
  auto code = consumer->assign(assign);
  DestroyAll(assign);
  if (code != RdKafka::ERR_NO_ERROR) return Error{Errc::kUnavailable, "assign: " + RdKafka::err2str(code), true};

  rd_kafka_t* rk = consumer->c_ptr();
  rd_kafka_queue_t* queue = rd_kafka_queue_get_consumer(rk);
  constexpr size_t kBatch = 10'000;
  std::vector<rd_kafka_message_t*> messages(kBatch);
  std::vector<RecordView> views;
  views.reserve(kBatch);
  std::map<int32_t, int64_t> next_by_partition;  // cheaper per record than `next`'s string keys
  for (const auto& [tp, offset] : next) next_by_partition[tp.partition] = offset;
  int64_t count = 0;
  auto idle_deadline = Clock::now() + std::chrono::seconds(60);
  core::Status status;
  while (!open.empty()) {
    const ssize_t n = rd_kafka_consume_batch_queue(queue, 200, messages.data(), kBatch);
    if (n < 0) {
      status = Error{Errc::kUnavailable, std::string("reading ") + topic + ": " + rd_kafka_err2str(rd_kafka_last_error()),
                     true};
      break;
    }
    if (n == 0) {
      if (Clock::now() > idle_deadline) {
        status = Error{Errc::kTimeout, "reading " + topic + " stalled for 60 s", true};
        break;
      }
      continue;
    }
    idle_deadline = Clock::now() + std::chrono::seconds(60);
    views.clear();
    for (ssize_t i = 0; i < n; ++i) {
      const rd_kafka_message_t* m = messages[i];
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        next_by_partition[m->partition] = m->offset;
        open.erase(m->partition);
        continue;
      }
      if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        Log()->warn("reading {}: {}", topic, rd_kafka_message_errstr(m));
        continue;
      }
      RecordView v;
      v.partition = m->partition;
      v.offset = m->offset;
      v.timestamp_ms = rd_kafka_message_timestamp(m, nullptr);
      v.key = std::string_view(static_cast<const char*>(m->key), m->key ? m->key_len : 0);
      v.value = std::string_view(static_cast<const char*>(m->payload), m->payload ? m->len : 0);
      views.push_back(v);
      next_by_partition[m->partition] = m->offset + 1;
    }
    count += static_cast<int64_t>(views.size());
    if (!views.empty()) fn(views);
    for (ssize_t i = 0; i < n; ++i) rd_kafka_message_destroy(messages[i]);
    if (progress) progress(count, expected);
  }
  rd_kafka_queue_destroy(queue);
  consumer->close();
  if (!status.ok()) return status.error();
  for (const auto& [partition, offset] : next_by_partition) next[{topic, partition}] = offset;
  return next;
}

}  // namespace sagaflow::kafka

namespace sagaflow::kafka {

core::Result<std::pair<std::string, std::string>> ParseKafkaProperty(std::string_view line) {
  const auto eq = line.find('=');
  auto trim = [](std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t' || v.back() == '\r')) v.remove_suffix(1);
    return std::string(v);
  };
  if (eq == std::string_view::npos || trim(line.substr(0, eq)).empty()) {
    return Error{Errc::kInvalidArgument, "expected key=value, got '" + std::string(line) + "'"};
  }
  return std::pair{trim(line.substr(0, eq)), trim(line.substr(eq + 1))};
}

core::Result<std::map<std::string, std::string>> LoadKafkaProperties(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return Error{Errc::kInvalidArgument, "Kafka config file " + path + " does not exist"};
  }
  if (!S_ISREG(st.st_mode)) return Error{Errc::kInvalidArgument, "Kafka config file " + path + " is not a file"};
  if ((st.st_mode & 077) != 0) {
    return Error{Errc::kInvalidArgument, "Kafka config file " + path +
                                             " may hold a password but other users can access it; chmod 600 " + path};
  }
  std::ifstream in(path);
  if (!in) return Error{Errc::kInvalidArgument, "Kafka config file " + path + " cannot be read"};
  std::map<std::string, std::string> out;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    auto kv = ParseKafkaProperty(line);
    if (!kv.ok()) return Error{Errc::kInvalidArgument, path + ":" + std::to_string(number) + ": " + kv.error().message};
    out[kv->first] = kv->second;
  }
  if (in.bad()) return Error{Errc::kIoError, "reading Kafka config file " + path + " failed"};
  return out;
}

}  // namespace sagaflow::kafka
