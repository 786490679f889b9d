#include "sagaflow/runtime/global_view.hpp"

#include <algorithm>

#include "sagaflow/core/log.hpp"

namespace sagaflow::runtime {
namespace {
using Clock = std::chrono::steady_clock;
constexpr size_t kBatch = 2000;
constexpr auto kPollTimeout = std::chrono::milliseconds(100);
// A CatchUp this many offsets or fewer short of the ends asks the tail which
// of them are records (usually none: markers) instead of reading past them.
constexpr int64_t kAskGap = 10'000;

std::shared_ptr<spdlog::logger> Log() {
  static auto logger = core::Logger("view");
  return logger;
}
}  // namespace

GlobalView::GlobalView(GlobalViewOptions options, eventstore::ProjectionStore& store)
    : options_(std::move(options)), store_(store) {}

GlobalView::~GlobalView() { Stop(); }

kafka::TopicPartition GlobalView::OffsetKey(int32_t partition) const { return {"view:" + options_.table, partition}; }

std::string GlobalView::StoreKey(std::string_view key) const {
  std::string out = options_.table;
  out.push_back('/');
  out.append(key);
  return out;
}

core::Status GlobalView::Start() {
  // Where the view stopped: its own offsets, under its pseudo-topic.
  kafka::OffsetMap start;
  const std::string own = OffsetKey(0).topic;
  for (const auto& [tp, offset] : store_.AppliedOffsets()) {
    if (tp.topic == own) start[{options_.topic, tp.partition}] = offset;
  }
  auto tail = options_.tail_factory ? options_.tail_factory(options_.kafka, options_.topic, start)
                                    : kafka::TopicTail::Open(options_.kafka, options_.topic, start);
  if (!tail.ok()) return tail.error();
  std::lock_guard lock(mu_);
  tail_ = std::move(tail.value());
  positions_ = start;
  running_ = true;
  stop_ = false;
  thread_ = std::thread([this] { Run(); });
  Log()->info("following {} as view '{}' from {} stored partition offset(s)", options_.topic, options_.table,
              start.size());
  return core::Status::Ok();
}

void GlobalView::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  std::lock_guard lock(mu_);
  running_ = false;
  cv_.notify_all();
}

void GlobalView::Run() {
  while (true) {
    {
      std::lock_guard lock(mu_);
      if (stop_) break;
    }
    kafka::OffsetMap reached;
    auto records = tail_->Poll(kBatch, kPollTimeout, reached);
    if (!records.empty()) {
      eventstore::WriteSet writes;
      eventstore::OffsetMap next;
      for (const auto& r : records) {
        if (r.value.empty()) {
          writes.Delete(StoreKey(r.key));
        } else {
          writes.Put(StoreKey(r.key), r.value);
        }
        if (options_.index) options_.index(r, writes);
        auto& n = next[OffsetKey(r.partition)];
        n = std::max(n, r.offset + 1);
      }
      auto s = store_.Commit(writes, next);
      // The view can be rebuilt from the topic, but not while this process
      // goes on with a store it failed to write.
      SAGAFLOW_CHECK(s.ok(), s.ok() ? "" : s.error().message);
    }
    // Callbacks first, positions second: once CatchUp returns, the callbacks
    // for everything it waited for have run.
    if (!records.empty() && options_.on_applied) options_.on_applied(records);
    if (!reached.empty()) {
      std::lock_guard lock(mu_);
      for (const auto& [tp, offset] : reached) {
        auto& p = positions_[tp];
        p = std::max(p, offset);
      }
      cv_.notify_all();
    }
  }
}

std::optional<std::string> GlobalView::Get(std::string_view key) const { return store_.Get(StoreKey(key)); }

void GlobalView::Scan(std::string_view key_prefix,
                      const std::function<bool(std::string_view key, std::string_view value)>& fn) const {
  const std::string prefix = StoreKey(key_prefix);
  const size_t strip = options_.table.size() + 1;
  store_.ScanPrefix(prefix, [&](std::string_view key, std::string_view value) { return fn(key.substr(strip), value); });
}

kafka::OffsetMap GlobalView::Positions() const {
  std::lock_guard lock(mu_);
  return positions_;
}

core::Status GlobalView::CatchUp(std::chrono::milliseconds timeout, std::optional<int32_t> partition) const {
  const auto deadline = Clock::now() + timeout;
  kafka::TopicTail* tail = nullptr;
  {
    std::lock_guard lock(mu_);
    if (!running_ || stop_) {
      return core::Error{core::Errc::kUnavailable, "the view of " + options_.topic + " is not running", true};
    }
    tail = tail_.get();
  }
  // The tail stays alive while the view runs; Stop waits for nothing here, so
  // a CatchUp racing Stop only reads the ends of a reader that is closing.
  auto ends = tail->EndOffsets();
  if (!ends.ok()) return ends.error();
  // How far each partition must be read: to its end, or, once the tail told,
  // to the end of its last committed record (the markers after it need not be read).
  kafka::OffsetMap wanted;
  for (const auto& [tp, end] : ends.value()) {
    if (!partition || tp.partition == *partition) wanted[tp] = end;
  }
  std::unique_lock lock(mu_);
  auto short_of = [&] {  // the partitions not read that far, at their positions
    kafka::OffsetMap out;
    for (const auto& [tp, want] : wanted) {
      auto it = positions_.find(tp);
      const int64_t at = it == positions_.end() ? 0 : it->second;
      if (at < want) out[tp] = at;
    }
    return out;
  };
  auto gap = [&] {
    int64_t offsets = 0;
    for (const auto& [tp, at] : short_of()) offsets += wanted[tp] - at;
    return offsets;
  };
  auto timed_out = [&] {
    return core::Error{core::Errc::kTimeout,
                       "the view of " + options_.topic + " did not catch up within " +
                           std::to_string(timeout.count()) + " ms",
                       true};
  };
  // Read on until only a little is left, then ask what of it is records.
  if (!cv_.wait_until(lock, deadline, [&] { return stop_ || gap() <= kAskGap; })) return timed_out();
  if (auto behind = short_of(); !stop_ && !behind.empty()) {
    lock.unlock();
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    auto record_ends = tail->CommittedRecordEnds(behind, wanted, std::max(left, std::chrono::milliseconds(1)));
    lock.lock();
    if (record_ends.ok()) {
      for (const auto& [tp, end] : record_ends.value()) {
        if (auto it = wanted.find(tp); it != wanted.end()) it->second = std::min(it->second, end);
      }
    } else {
      // Reading past the markers answers it too, only later.
      Log()->debug("the end of {}'s records not known yet: {}", options_.topic, record_ends.error().message);
    }
  }
  if (!cv_.wait_until(lock, deadline, [&] { return stop_ || short_of().empty(); })) return timed_out();
  if (!short_of().empty()) {
    return core::Error{core::Errc::kUnavailable, "the view of " + options_.topic + " is stopping", true};
  }
  return core::Status::Ok();
}

}  // namespace sagaflow::runtime
