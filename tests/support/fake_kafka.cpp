#include "support/fake_kafka.hpp"

#include <algorithm>
#include <thread>

namespace sagaflow::testing {

using kafka::TopicPartition;

class FakeConsumer final : public kafka::GroupConsumer {
 public:
  FakeConsumer(FakeKafka& k, kafka::RebalanceListener listener) : k_(k), listener_(std::move(listener)) {}

  std::vector<kafka::Record> Poll(size_t max_records, std::chrono::milliseconds timeout) override {
    // Rebalances first, outside the lock: the listener calls back into Pause.
    while (true) {
      FakeKafka::Event event;
      {
        std::lock_guard lock(k_.mu_);
        if (k_.events_.empty()) break;
        event = k_.events_.front();
        k_.events_.pop_front();
      }
      if (event.assign) {
        for (const auto& tp : event.partitions) {
          std::lock_guard lock(k_.mu_);
          position_[tp] = k_.group_offsets_.contains(tp) ? k_.group_offsets_[tp] : 0;
        }
        if (listener_.on_assigned) listener_.on_assigned(event.partitions);
      } else {
        if (listener_.on_revoked) listener_.on_revoked(event.partitions, false);
        std::lock_guard lock(k_.mu_);
        for (const auto& tp : event.partitions) {
          position_.erase(tp);
          k_.paused_.erase(tp);
        }
      }
    }
    std::vector<kafka::Record> out;
    {
      std::lock_guard lock(k_.mu_);
      for (auto& [tp, next] : position_) {
        if (k_.paused_.contains(tp)) continue;
        const auto& log = k_.logs_[tp];
        while (next < static_cast<int64_t>(log.size()) && out.size() < max_records) {
          out.push_back({tp.topic, tp.partition, next, "k", log[static_cast<size_t>(next)], 0});
          ++next;
        }
      }
    }
    if (out.empty()) std::this_thread::sleep_for(std::min(timeout, std::chrono::milliseconds(5)));
    return out;
  }

  core::Status RewindToCommitted() override {
    std::vector<TopicPartition> all;
    for (const auto& [tp, next] : position_) all.push_back(tp);
    return RewindToCommitted(all);
  }

  core::Status RewindToCommitted(const std::vector<TopicPartition>& partitions) override {
    std::lock_guard lock(k_.mu_);
    for (const auto& tp : partitions) position_[tp] = k_.group_offsets_.contains(tp) ? k_.group_offsets_[tp] : 0;
    return core::Status::Ok();
  }

  void Pause(const std::vector<TopicPartition>& partitions) override {
    std::lock_guard lock(k_.mu_);
    for (const auto& tp : partitions) k_.paused_.insert(tp);
  }
  void Resume(const std::vector<TopicPartition>& partitions) override {
    std::lock_guard lock(k_.mu_);
    for (const auto& tp : partitions) k_.paused_.erase(tp);
  }
  void Close() override {}
  void* NativeHandle() override { return nullptr; }
  std::string FatalError() const override {
    std::lock_guard lock(k_.mu_);
    return k_.consumer_failure_;
  }

 private:
  FakeKafka& k_;
  kafka::RebalanceListener listener_;
  std::map<TopicPartition, int64_t> position_;  // consumer thread only (and Rewind, on it too)
};

class FakeProducer final : public kafka::TransactionalProducer {
 public:
  FakeProducer(FakeKafka& k, std::string id, size_t serial) : k_(k), id_(std::move(id)), serial_(serial) {}

  core::Status Begin() override {
    in_txn_ = true;
    return core::Status::Ok();
  }
  core::Status Produce(const std::string& topic, const std::string&, const std::string& value) override {
    outputs_.push_back({topic, 0, value});
    return core::Status::Ok();
  }
  core::Status ProduceTo(const std::string& topic, int32_t partition, const std::string&,
                         const std::string& value) override {
    outputs_.push_back({topic, std::max(partition, 0), value});
    return core::Status::Ok();
  }
  core::Status SendOffsets(const kafka::OffsetMap& offsets, kafka::GroupConsumer&) override {
    for (const auto& [tp, o] : offsets) offsets_[tp] = o;
    return core::Status::Ok();
  }
  core::Result<std::vector<kafka::Delivered>> Commit() override {
    std::lock_guard lock(k_.mu_);
    if (k_.fail_commits_ > 0) {
      --k_.fail_commits_;
      return core::Error{core::Errc::kAbortRequired, "commit failed on purpose"};
    }
    if (Fenced()) return core::Error{core::Errc::kFenced, id_ + " is fenced"};
    std::vector<kafka::Delivered> delivered;
    for (auto& [topic, partition, value] : outputs_) {
      delivered.push_back({topic, partition, static_cast<int64_t>(k_.committed_outputs_.size())});
      k_.committed_outputs_.emplace_back(topic, value);
    }
    for (const auto& [tp, o] : offsets_) k_.group_offsets_[tp] = o;
    Clear();
    return delivered;
  }
  core::Status Abort() override {
    Clear();
    std::lock_guard lock(k_.mu_);
    if (Fenced()) return core::Error{core::Errc::kFenced, id_ + " is fenced"};
    return core::Status::Ok();
  }
  bool InTransaction() const override { return in_txn_; }

 private:
  bool Fenced() const {  // k_.mu_ held
    const auto up_to = k_.fenced_up_to_.find(id_);
    return k_.fenced_.contains(id_) || (up_to != k_.fenced_up_to_.end() && serial_ < up_to->second);
  }
  void Clear() {
    outputs_.clear();
    offsets_.clear();
    in_txn_ = false;
  }
  FakeKafka& k_;
  std::string id_;
  size_t serial_;  // how many producers of this id were opened before this one
  bool in_txn_ = false;
  struct Output {
    std::string topic;
    int32_t partition;
    std::string value;
  };
  std::vector<Output> outputs_;
  kafka::OffsetMap offsets_;
};

void FakeKafka::Append(const std::string& topic, int32_t partition, const std::string& value) {
  std::lock_guard lock(mu_);
  logs_[{topic, partition}].push_back(value);
}

std::vector<std::string> FakeKafka::Values(const std::string& topic) const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& [t, v] : committed_outputs_) {
    if (t == topic) out.push_back(v);
  }
  return out;
}

int64_t FakeKafka::CommittedOffset(const std::string& topic, int32_t partition) const {
  std::lock_guard lock(mu_);
  auto it = group_offsets_.find({topic, partition});
  return it == group_offsets_.end() ? 0 : it->second;
}

void FakeKafka::Assign(std::vector<TopicPartition> partitions) {
  std::lock_guard lock(mu_);
  events_.push_back({true, std::move(partitions)});
}

void FakeKafka::Revoke(std::vector<TopicPartition> partitions) {
  std::lock_guard lock(mu_);
  events_.push_back({false, std::move(partitions)});
}

void FakeKafka::FailNextCommits(int n) {
  std::lock_guard lock(mu_);
  fail_commits_ = n;
}

void FakeKafka::Fence(const std::string& transactional_id) {
  std::lock_guard lock(mu_);
  fenced_.insert(transactional_id);
}

void FakeKafka::FenceOpened(const std::string& transactional_id) {
  std::lock_guard lock(mu_);
  fenced_up_to_[transactional_id] = static_cast<size_t>(std::count(opened_.begin(), opened_.end(), transactional_id));
}

void FakeKafka::FailConsumer(const std::string& reason) {
  std::lock_guard lock(mu_);
  consumer_failure_ = reason;
}

bool FakeKafka::Paused(const std::string& topic, int32_t partition) const {
  std::lock_guard lock(mu_);
  return paused_.contains({topic, partition});
}

std::vector<std::string> FakeKafka::OpenedProducers() const {
  std::lock_guard lock(mu_);
  return opened_;
}

core::ConsumerFactory FakeKafka::Consumers() {
  return [this](const kafka::KafkaConfig&, const std::string&, const std::vector<std::string>&,
                kafka::RebalanceListener listener) -> core::Result<std::unique_ptr<kafka::GroupConsumer>> {
    return std::unique_ptr<kafka::GroupConsumer>(std::make_unique<FakeConsumer>(*this, std::move(listener)));
  };
}

core::ProducerFactory FakeKafka::Producers() {
  return [this](const kafka::KafkaConfig&, const std::string& id,
                std::chrono::milliseconds) -> core::Result<std::unique_ptr<kafka::TransactionalProducer>> {
    std::lock_guard lock(mu_);
    const auto serial = static_cast<size_t>(std::count(opened_.begin(), opened_.end(), id));
    opened_.push_back(id);
    return std::unique_ptr<kafka::TransactionalProducer>(std::make_unique<FakeProducer>(*this, id, serial));
  };
}

}  // namespace sagaflow::testing
