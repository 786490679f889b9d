#include "partitioned_handler.hpp"

#include <algorithm>

namespace sagaflow::core {

// One partition handler's view of the iteration's transaction.
class PartitionedHandler::Share final : public TxContext {
 public:
  Share(PartitionedHandler& owner, int32_t partition) : owner_(owner), partition_(partition) {}

  void Bind(TxContext& tx) { tx_ = &tx; }
  void Reset() { produced_ = 0; }

  void Produce(const std::string& topic, const std::string& key, const std::string& value) override {
    tx_->Produce(topic, key, value);
    Count();
  }
  void ProduceTo(const std::string& topic, int32_t partition, const std::string& key,
                 const std::string& value) override {
    tx_->ProduceTo(topic, partition, key, value);
    Count();
  }
  void Defer(const kafka::Record& record) override { tx_->Defer(record); }
  void Complete(const std::string& topic, int32_t partition, int64_t offset) override {
    tx_->Complete(topic, partition, offset);
  }
  size_t produced() const override { return produced_; }

 private:
  void Count() {
    ++produced_;
    owner_.producers_.push_back(partition_);
  }

  PartitionedHandler& owner_;
  const int32_t partition_;
  TxContext* tx_ = nullptr;
  size_t produced_ = 0;
};

PartitionedHandler::PartitionedHandler(const std::vector<int32_t>& partitions,
                                       const std::function<std::unique_ptr<TaskHandler>(int32_t)>& factory) {
  for (auto p : partitions) {
    Entry e;
    e.handler = factory(p);
    e.share = std::make_unique<Share>(*this, p);
    handlers_.emplace(p, std::move(e));
  }
}

PartitionedHandler::~PartitionedHandler() = default;

Status PartitionedHandler::Restore() {
  for (auto& [p, e] : handlers_) {
    if (e.restored) continue;
    if (auto s = e.handler->Restore(); !s.ok()) return s;
    e.restored = true;
  }
  return Status::Ok();
}

PartitionedHandler::Entry& PartitionedHandler::EntryOf(int32_t partition, TxContext& tx) {
  auto it = handlers_.find(partition);
  SAGAFLOW_CHECK(it != handlers_.end(), "a record of partition " + std::to_string(partition) +
                                            ", which is not among this instance's tasks");
  it->second.share->Bind(tx);
  return it->second;
}

void PartitionedHandler::OnRecords(std::span<const kafka::Record> records, TxContext& tx) {
  // Each run of records of one partition goes to that partition's handler.
  size_t begin = 0;
  while (begin < records.size()) {
    const int32_t partition = records[begin].partition;
    size_t end = begin + 1;
    while (end < records.size() && records[end].partition == partition) ++end;
    auto& e = EntryOf(partition, tx);
    e.handler->OnRecords(records.subspan(begin, end - begin), *e.share);
    begin = end;
  }
}

void PartitionedHandler::OnIdle(TxContext& tx) {
  for (auto& [p, e] : handlers_) e.handler->OnIdle(*EntryOf(p, tx).share);
}

void PartitionedHandler::OnCommitted(const std::vector<kafka::Delivered>& delivered) {
  SAGAFLOW_CHECK(delivered.size() == producers_.size(),
                 "the transaction delivered " + std::to_string(delivered.size()) + " records, the tasks produced " +
                     std::to_string(producers_.size()));
  std::map<int32_t, std::vector<kafka::Delivered>> shares;
  for (size_t i = 0; i < delivered.size(); ++i) shares[producers_[i]].push_back(delivered[i]);
  producers_.clear();
  for (auto& [p, e] : handlers_) {
    e.share->Reset();
    auto it = shares.find(p);
    e.handler->OnCommitted(it == shares.end() ? std::vector<kafka::Delivered>{} : std::move(it->second));
  }
}

void PartitionedHandler::OnAborted() {
  producers_.clear();
  for (auto& [p, e] : handlers_) {
    e.share->Reset();
    e.handler->OnAborted();
  }
}

std::chrono::milliseconds PartitionedHandler::IdleInterval() const {
  auto interval = std::chrono::milliseconds::max();
  for (const auto& [p, e] : handlers_) interval = std::min(interval, e.handler->IdleInterval());
  return handlers_.empty() ? TaskHandler::IdleInterval() : interval;
}

size_t PartitionedHandler::Waiting() const {
  size_t waiting = 0;
  for (const auto& [p, e] : handlers_) waiting += e.handler->Waiting();
  return waiting;
}

bool PartitionedHandler::MayWait(const kafka::Record& record) const {
  auto it = handlers_.find(record.partition);
  return it != handlers_.end() && it->second.handler->MayWait(record);
}

}  // namespace sagaflow::core
