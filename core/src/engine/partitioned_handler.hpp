#pragma once
/// The handlers of several partition tasks behind one processor: what lets an
/// instance run all its tasks in one transaction per cycle (see
/// TaskEngineOptions::shared_producer).
///
/// Records go to the handler of their partition (the processor hands them
/// over grouped by partition, in offset order within each); every handler gets
/// OnIdle, OnCommitted and OnAborted. Each handler sees a transaction context
/// of its own: its produced() counts only its records and its OnCommitted gets
/// only where its records landed, in the order it produced them, exactly as if
/// it ran alone.
///
/// Internal to the engine; all calls come from the processor's thread.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "sagaflow/core/engine/task_engine.hpp"

namespace sagaflow::core {

class PartitionedHandler final : public TaskHandler {
 public:
  /// One handler per partition, made by `factory(partition)`.
  PartitionedHandler(const std::vector<int32_t>& partitions, const std::function<std::unique_ptr<TaskHandler>(int32_t)>& factory);
  ~PartitionedHandler() override;

  size_t size() const { return handlers_.size(); }

  /// Restores every partition's state; after a failure, a retry restores only
  /// the partitions not restored yet.
  Status Restore() override;
  void OnRecords(std::span<const kafka::Record> records, TxContext& tx) override;
  void OnIdle(TxContext& tx) override;
  void OnCommitted(const std::vector<kafka::Delivered>& delivered) override;
  void OnAborted() override;
  std::chrono::milliseconds IdleInterval() const override;
  size_t Waiting() const override;
  bool MayWait(const kafka::Record& record) const override;

 private:
  class Share;
  struct Entry {
    std::unique_ptr<TaskHandler> handler;
    std::unique_ptr<Share> share;
    bool restored = false;
  };
  Entry& EntryOf(int32_t partition, TxContext& tx);

  std::map<int32_t, Entry> handlers_;
  // For each record produced in the current iteration, in order: the partition whose handler produced it.
  std::vector<int32_t> producers_;
};

}  // namespace sagaflow::core
