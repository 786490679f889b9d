#include "sagaflow/core/processor.hpp"

#include <algorithm>
#include <set>
#include <string_view>
#include <thread>

#include "sagaflow/core/log.hpp"

namespace sagaflow::core {
namespace {
using Clock = std::chrono::steady_clock;
constexpr auto kInitTimeout = std::chrono::seconds(60);
// A producer fenced twice within this long shares its transactional id with another process.
constexpr auto kRefenceWindow = std::chrono::seconds(60);

std::shared_ptr<spdlog::logger> Log() {
  static auto logger = Logger("processor");
  return logger;
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// The partitions a transaction wrote: the broker is sent one Produce request, and
// appends one commit marker, for each.
size_t DistinctPartitions(const std::vector<kafka::Delivered>& delivered) {
  std::set<std::pair<std::string_view, int32_t>> partitions;
  for (const auto& d : delivered) partitions.emplace(d.topic, d.partition);
  return partitions.size();
}
}  // namespace

// Collects one iteration's outputs and hands them to the producer together,
// after the handler is done: librdkafka registers the partitions of records
// produced close together in one AddPartitionsToTxn request (records produced
// one by one while the handler works cost one request per few records), and
// the transaction is begun only when there is something to produce, so idle
// iterations cost no broker round trip.
class Processor::Context final : public TxContext {
  static constexpr int32_t kAnyPartition = -1;

 public:
  explicit Context(Processor& p) : p_(p) {}

  void Produce(const std::string& topic, const std::string& key, const std::string& value) override {
    ProduceTo(topic, kAnyPartition, key, value);
  }

  void ProduceTo(const std::string& topic, int32_t partition, const std::string& key,
                 const std::string& value) override {
    pending_.push_back(Pending{topic, partition, key, value});
  }

  // Produces what the handler added, in the order it added it (so that
  // `delivered[i]` is the i-th record). Returns the first error.
  Status Flush() {
    if (pending_.empty()) return Status::Ok();
    if (!p_.producer_->InTransaction()) {
      if (auto s = p_.producer_->Begin(); !s.ok()) return s;
    }
    for (const auto& r : pending_) {
      auto s = r.partition == kAnyPartition ? p_.producer_->Produce(r.topic, r.key, r.value)
                                            : p_.producer_->ProduceTo(r.topic, r.partition, r.key, r.value);
      if (!s.ok()) return s;
    }
    produced_ += pending_.size();
    pending_.clear();
    return Status::Ok();
  }

  void Defer(const kafka::Record& record) override {
    if (p_.deferred_[{record.topic, record.partition}].insert(record.offset).second) ++p_.deferred_count_;
  }

  void Complete(const std::string& topic, int32_t partition, int64_t offset) override {
    auto it = p_.deferred_.find({topic, partition});
    if (it != p_.deferred_.end() && it->second.erase(offset) > 0) --p_.deferred_count_;
  }

  size_t produced() const override { return produced_ + pending_.size(); }

 private:
  struct Pending {
    std::string topic;
    int32_t partition;
    std::string key;
    std::string value;
  };
  Processor& p_;
  size_t produced_ = 0;  // handed to the producer by Flush
  std::vector<Pending> pending_;
};

Processor::Processor(ProcessorOptions options, ProcessorHandler& handler, Metrics& metrics, RecordSource& source)
    : options_(std::move(options)), handler_(handler), metrics_(metrics), source_(source) {
  metrics_.Describe("records_processed_total", "Input records handed to the service logic");
  metrics_.Describe("transactions_committed_total", "Kafka transactions committed");
  metrics_.Describe("transactions_aborted_total", "Kafka transactions aborted (the input is processed again)");
  metrics_.Describe("records_produced_total", "Records produced in committed transactions");
  metrics_.Describe("batch_seconds",
                    "Time from the end of a batch's fill to its commit (the handler's OnIdle, producing, "
                    "sending the offsets, committing)");
  metrics_.Describe("send_offsets_seconds",
                    "Time a transaction spent in send_offsets_to_transaction (AddOffsetsToTxn and "
                    "TxnOffsetCommit, behind the batch's Produce requests)");
  metrics_.Describe("commit_seconds", "Time a transaction spent in commit_transaction (the last acks, EndTxn)");
  metrics_.Describe("transaction_partitions_total",
                    "Partitions written by committed transactions (a Produce request and a commit marker each)");
}

Processor::~Processor() = default;

Status Processor::Connect(std::chrono::milliseconds timeout) {
  auto producer = options_.producer_factory
                      ? options_.producer_factory(options_.kafka, options_.transactional_id, timeout)
                      : kafka::TransactionalProducer::Open(options_.kafka, options_.transactional_id, timeout);
  if (!producer.ok()) return producer.error();
  producer_ = std::move(producer.value());
  Log()->info("{}: transactional producer ready (transactional.id={})", options_.service,
              options_.transactional_id);
  return Status::Ok();
}

Status Processor::RecreateProducer() {
  producer_.reset();
  auto backoff = std::chrono::milliseconds(200);
  while (!stop_.load()) {
    auto s = Connect(kInitTimeout);
    if (s.ok()) return s;
    if (s.error().code == Errc::kFenced) return s;
    Log()->warn("{}: cannot recreate the producer: {}; retrying", options_.service, s.error().message);
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
  }
  return Error{Errc::kUnavailable, "stopped while reconnecting"};
}

bool Processor::MayReopen() {
  const auto now = Clock::now();
  if (!options_.reopen_when_fenced) return false;
  if (last_reopened_ != Clock::time_point{} && now - last_reopened_ <= kRefenceWindow) return false;
  last_reopened_ = now;
  return true;
}

Error Processor::FencedForGood(Error error) const {
  if (options_.reopen_when_fenced) {
    error.message += "; fenced twice within a minute: another process uses the transactional id " +
                     options_.transactional_id + " (give every instance its own --instance-id)";
  }
  return error;
}

Status Processor::Recover(const Error& error) {
  metrics_.Add("transactions_aborted_total");
  Log()->warn("{}: aborting the current batch: {}", options_.service, error.message);
  bool recreate = error.code == Errc::kInternal;
  if (!recreate && producer_ && producer_->InTransaction()) {
    auto s = producer_->Abort();
    if (!s.ok()) {
      Log()->warn("{}: abort failed: {}", options_.service, s.error().message);
      // Fenced while aborting: the broker aborted the transaction itself (it outlived
      // transaction.timeout.ms, e.g. while its coordinator moved) or another producer took the id.
      if (s.error().code == Errc::kFenced && !MayReopen()) return FencedForGood(s.error());
      recreate = true;
    }
  }
  if (recreate) {
    auto s = RecreateProducer();
    if (!s.ok()) return s;
  }
  handler_.OnAborted();
  deferred_.clear();
  deferred_count_ = 0;
  consumed_.clear();
  sent_.clear();
  auto backoff = std::chrono::milliseconds(100);
  while (!stop_.load()) {
    auto s = source_.Rewind();
    if (s.ok()) break;
    Log()->warn("{}: cannot rewind to the committed offsets: {}; retrying", options_.service, s.error().message);
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
  }
  return Status::Ok();
}

Status Processor::RunIteration() {
  Context ctx(*this);
  size_t handled = 0;
  // Records go to the handler as they arrive, also while the batch fills: by
  // the end of a fill only the last arrivals are left to handle, so a record
  // waits for the next commit, not for the whole batch's handling as well.
  // Each arrival is grouped by partition (offset order within each is kept):
  // a handler of several partition tasks hands each task one run of its records.
  auto hand = [&](std::vector<kafka::Record>& arrived) {
    if (arrived.empty()) return;
    std::stable_sort(arrived.begin(), arrived.end(),
                     [](const kafka::Record& a, const kafka::Record& b) { return a.partition < b.partition; });
    for (const auto& r : arrived) consumed_[{r.topic, r.partition}] = r.offset + 1;
    handler_.OnRecords(arrived, ctx);
    metrics_.Add("records_processed_total", static_cast<double>(arrived.size()));
    handled += arrived.size();
  };
  if (deferred_count_ < options_.max_deferred) {
    // Behind twice in a row (a burst of a few records is not a backlog): let the
    // batch fill until the commit interval since the last transaction is over.
    // Without an interval there is nothing to fill, so nothing to look at.
    const bool was_behind = behind_;
    behind_ = options_.commit_interval.count() > 0 && (source_.Queued() > 0 || handler_.Waiting() > 0);
    const bool fill = behind_ && was_behind;
    auto records = source_.Poll(options_.max_batch, handler_.IdleInterval());
    auto may_wait = [this](const std::vector<kafka::Record>& arrived) {
      return std::all_of(arrived.begin(), arrived.end(),
                         [this](const kafka::Record& r) { return handler_.MayWait(r); });
    };
    // Nobody waits for these records: they fill from now on, until input that
    // is waited for comes.
    const bool lazy = !fill && options_.commit_interval.count() > 0 && !records.empty() && may_wait(records) &&
                      handler_.Waiting() == 0;
    const auto due = lazy ? Clock::now() + options_.commit_interval : last_commit_ + options_.commit_interval;
    hand(records);
    while ((fill || lazy) && handled < options_.max_batch && !stop_.load()) {
      const auto now = Clock::now();
      if (now >= due) break;
      auto more = source_.Poll(options_.max_batch - handled,
                               std::chrono::duration_cast<std::chrono::milliseconds>(due - now) +
                                   std::chrono::milliseconds(1));
      const bool waited_for = lazy && (!may_wait(more) || handler_.Waiting() > 0);
      hand(more);
      if (waited_for) break;
    }
  } else {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const auto started = Clock::now();
  handler_.OnIdle(ctx);
  if (auto s = ctx.Flush(); !s.ok()) return s;

  kafka::OffsetMap offsets;
  for (const auto& [tp, next] : consumed_) {
    auto d = deferred_.find(tp);
    const int64_t target = (d == deferred_.end() || d->second.empty()) ? next : *d->second.begin();
    auto s = sent_.find(tp);
    if (s == sent_.end() || s->second != target) offsets[tp] = target;
  }
  if (ctx.produced() == 0 && offsets.empty()) {
    // Nothing to commit, but the handler may have answered requests from committed state.
    handler_.OnCommitted({});
    return Status::Ok();
  }

  last_commit_ = Clock::now();
  if (!producer_->InTransaction()) {
    auto s = producer_->Begin();
    if (!s.ok()) return s;
  }
  const auto sending = Clock::now();
  if (auto s = producer_->SendOffsets(offsets, source_.consumer()); !s.ok()) return s;
  const auto committing = Clock::now();
  auto delivered = producer_->Commit();
  if (!delivered.ok()) {
    if (delivered.error().retryable) {
      // The commit may still go through: try once more before giving up on the batch.
      delivered = producer_->Commit();
    }
    if (!delivered.ok()) return delivered.error();
  }
  metrics_.Observe("send_offsets_seconds", Seconds(committing - sending));
  metrics_.Observe("commit_seconds", Seconds(Clock::now() - committing));
  for (const auto& [tp, off] : offsets) sent_[tp] = off;
  metrics_.Add("transactions_committed_total");
  metrics_.Add("records_produced_total", static_cast<double>(delivered->size()));
  metrics_.Add("transaction_partitions_total", static_cast<double>(DistinctPartitions(delivered.value())));
  handler_.OnCommitted(delivered.value());
  metrics_.Observe("batch_seconds", Seconds(Clock::now() - started));
  return Status::Ok();
}

Status Processor::Run() {
  running_.store(true);
  if (!producer_) {
    auto s = Connect(kInitTimeout);
    if (!s.ok()) {
      running_.store(false);
      return s;
    }
  }
  Status result;
  auto backoff = std::chrono::milliseconds(100);
  while (!stop_.load()) {
    auto s = RunIteration();
    if (s.ok()) {
      backoff = std::chrono::milliseconds(100);
      continue;
    }
    auto error = s.error();
    if (error.code == Errc::kFenced) {
      if (!MayReopen()) {
        result = FencedForGood(error);
        Log()->error("{}: {}", options_.service, result.error().message);
        break;
      }
      error.code = Errc::kInternal;  // Recover opens a new producer
    }
    auto r = Recover(error);
    if (!r.ok()) {
      Log()->error("{}: cannot recover: {}", options_.service, r.error().message);
      result = r;
      break;
    }
    // Give a broker that is away time to come back instead of spinning.
    const auto until = Clock::now() + backoff;
    while (!stop_.load() && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
  }
  if (producer_ && producer_->InTransaction()) {
    (void)producer_->Abort();
    handler_.OnAborted();
  }
  running_.store(false);
  Log()->debug("{}: processor stopped", options_.service);
  return result;
}

}  // namespace sagaflow::core
