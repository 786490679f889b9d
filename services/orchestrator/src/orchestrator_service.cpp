#include "sagaflow/orchestrator/orchestrator_service.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <mutex>
#include <set>
#include <unordered_map>

#include "sagaflow/core/saga_aggregate.hpp"
#include "sagaflow/runtime/order_json.hpp"

namespace sagaflow::orchestrator {
namespace {

using core::SagaPhase;
using core::SagaState;
using nlohmann::json;
using runtime::HttpError;
using runtime::HttpRequest;
using runtime::HttpResponse;

std::string SagaPrefix(core::OrderId id) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "ev/%020" PRId64 "/", id);
  return buf;
}

std::string EventKey(core::OrderId id, int64_t version) {
  char buf[48];
  std::snprintf(buf, sizeof(buf), "ev/%020" PRId64 "/%010" PRId64, id, version);
  return buf;
}

// A short account of an event for the logs.
std::string Describe(const core::SagaEvent& e) {
  return std::visit(
      [](const auto& b) -> std::string {
        using T = std::decay_t<decltype(b)>;
        if constexpr (std::is_same_v<T, core::SagaStarted>) {
          return "saga started";
        } else if constexpr (std::is_same_v<T, core::StepRequested>) {
          std::string legs;
          for (auto leg : b.legs) legs += (legs.empty() ? ", legs " : " ") + std::to_string(leg);
          return std::string(core::ToString(b.step)) + " requested (attempt " + std::to_string(b.attempt) + legs + ")";
        } else if constexpr (std::is_same_v<T, core::StepReplied>) {
          return std::string(core::ToString(b.step)) +
                 (b.leg == core::kNoLeg ? std::string() : " leg " + std::to_string(b.leg)) + " replied " +
                 (b.ok ? "OK" : "NOT OK") + (b.detail.empty() ? "" : ": " + b.detail);
        } else if constexpr (std::is_same_v<T, core::StepTimedOut>) {
          return std::string(core::ToString(b.step)) + " timed out (attempt " + std::to_string(b.attempt) + ")";
        } else {
          return std::string("saga ended ") + std::string(core::ToString(b.status)) +
                 (b.detail.empty() ? "" : ": " + b.detail);
        }
      },
      e.body);
}

json EventToJson(const core::SagaEvent& e) {
  json out = {{"time", runtime::FormatTime(e.at_ms)}};
  std::visit(
      [&](const auto& b) {
        using T = std::decay_t<decltype(b)>;
        if constexpr (std::is_same_v<T, core::SagaStarted>) {
          out["type"] = "SagaStarted";
        } else if constexpr (std::is_same_v<T, core::StepRequested>) {
          out["type"] = "StepRequested";
          out["step"] = core::ToString(b.step);
          out["attempt"] = b.attempt;
          out["deadline"] = runtime::FormatTime(b.deadline_ms);
          if (!b.legs.empty()) out["legs"] = b.legs;
        } else if constexpr (std::is_same_v<T, core::StepReplied>) {
          out["type"] = "StepReplied";
          out["step"] = core::ToString(b.step);
          out["attempt"] = b.attempt;
          out["ok"] = b.ok;
          out["detail"] = b.detail;
          if (b.leg != core::kNoLeg) out["leg"] = b.leg;
        } else if constexpr (std::is_same_v<T, core::StepTimedOut>) {
          out["type"] = "StepTimedOut";
          out["step"] = core::ToString(b.step);
          out["attempt"] = b.attempt;
        } else {
          out["type"] = "SagaEnded";
          out["status"] = core::ToString(b.status);
          out["detail"] = b.detail;
        }
      },
      e.body);
  return out;
}

struct Summary {
  SagaPhase phase = SagaPhase::kNotStarted;
  core::OrderStatus status = core::OrderStatus::kUnknown;
};

class OrchestratorService final : public runtime::Service {
 public:
  OrchestratorService(runtime::ServiceOptions options, OrchestratorOptions orchestrator)
      : Service("orchestrator", std::move(options)),
        definition_(core::OrderSagaDefinition(orchestrator.timings)),
        events_{topics().saga_events, "ev"},
        states_{topics().saga_state, "snap"} {
    metrics().Describe("sagas_started_total", "Sagas started");
    metrics().Describe("sagas_ended_total", "Sagas ended, by status");
    metrics().Describe("step_timeouts_total", "Step requests that got no reply before their deadline");
    metrics().Describe("step_retries_total", "Step requests sent again after a timeout");
    metrics().Describe("compensations_total", "Compensation steps requested");
    metrics().Describe("ignored_inputs_total", "Duplicate or stale inputs that changed nothing");
    metrics().Describe("late_replies_total", "Participant replies that arrived after their saga ended");
    metrics().Describe("active_sagas", "Sagas not ended");
  }

  ~OrchestratorService() override { Stop(); }

  std::vector<std::string> InputTopics() const override {
    return {topics().order, topics().warehouse_status, topics().payment_status, topics().notification_status};
  }
  // Events first: on a disk that survived, replaying them and then the
  // snapshots written in the same transactions ends on the same states.
  std::vector<runtime::Changelog> Changelogs() const override { return {events_, states_}; }

  const core::SagaDefinition& definition() const { return definition_; }
  const runtime::Changelog& events() const { return events_; }
  const runtime::Changelog& states() const { return states_; }

  // ---- for the tasks (any task thread) ----
  void Summarize(core::OrderId id, SagaPhase phase, core::OrderStatus status) {
    std::lock_guard lock(summary_mu_);
    summary_[id] = {phase, status};
  }
  void SetActive(int32_t task, size_t active) {
    std::lock_guard lock(summary_mu_);
    active_by_task_[task] = active;
    size_t total = 0;
    for (const auto& [t, n] : active_by_task_) total += n;
    metrics().Set("active_sagas", static_cast<double>(total));
  }
  void Count(const core::SagaEvent& event) {
    if (std::holds_alternative<core::SagaStarted>(event.body)) metrics().Add("sagas_started_total");
    if (const auto* ended = std::get_if<core::SagaEnded>(&event.body)) {
      metrics().Add("sagas_ended_total", 1, "status=\"" + std::string(core::ToString(ended->status)) + "\"");
    }
    if (std::holds_alternative<core::StepTimedOut>(event.body)) metrics().Add("step_timeouts_total");
    if (const auto* requested = std::get_if<core::StepRequested>(&event.body)) {
      if (requested->attempt > 1) metrics().Add("step_retries_total");
      if (definition_.Find(requested->step) == nullptr) metrics().Add("compensations_total");
    }
  }

 protected:
  std::unique_ptr<runtime::ServiceTask> CreateTask(int32_t task) override;

  void AddRoutes(runtime::HttpServer& http) override {
    http.Route("GET", R"(/sagas/(\d+))", [this](const HttpRequest& req) {
      auto state = runtime::DecodeStored<SagaState>(store().Get("snap/" + req.captures[0]));
      if (!state) return HttpResponse::Error(404, "no saga " + req.captures[0]);
      // After a rebuild from snapshots the events before it are not stored locally.
      json events = json::array();
      store().ScanPrefix(SagaPrefix(state->order_id), [&](std::string_view, std::string_view value) {
        auto message = core::Decode(value);
        SAGAFLOW_CHECK(message.ok(), "corrupt event record in the local store");
        for (const auto& event : core::SagaEventsOf(message->payload)) events.push_back(EventToJson(event));
        return true;
      });
      auto body = StateToJson(*state, events);
      body["history_complete"] = static_cast<int64_t>(events.size()) == state->version;
      return HttpResponse::Json(body);
    });
    http.Route("GET", "/sagas", [this](const HttpRequest& req) {
      const auto wanted = req.Query("state");
      if (!wanted.empty() && wanted != "running" && wanted != "compensating" && wanted != "ended") {
        throw HttpError{400, "state must be running, compensating or ended"};
      }
      int64_t limit = 100;
      try {
        limit = std::stoll(req.Query("limit", "100"));
      } catch (...) {
        throw HttpError{400, "limit must be a number from 1 to 10000"};
      }
      if (limit < 1 || limit > 10000) throw HttpError{400, "limit must be from 1 to 10000"};
      json sagas = json::array();
      std::map<std::string, int64_t> counts;
      std::lock_guard lock(summary_mu_);
      for (const auto& [id, s] : summary_) {
        const std::string phase(core::ToString(s.phase));
        ++counts[phase];
        if ((wanted.empty() || wanted == phase) && static_cast<int64_t>(sagas.size()) < limit) {
          sagas.push_back({{"saga_id", id}, {"state", phase}, {"status", core::ToString(s.status)}});
        }
      }
      return HttpResponse::Json({{"sagas", sagas}, {"counts", counts}});
    });
  }

 private:
  json StateToJson(const SagaState& s, const json& events) const {
    json pending = nullptr;
    if (s.pending) {
      pending = {{"step", core::ToString(s.pending->step)},
                 {"attempt", s.pending->attempt},
                 {"deadline", runtime::FormatTime(s.pending->deadline_ms)}};
    }
    json history = json::array();
    for (const auto& h : s.history) history.push_back(runtime::StepRecordToJson(h));
    static const char* kLegStatus[] = {"awaited", "ok", "not_ok"};
    json legs = json::array();
    for (const auto& l : s.legs) {
      legs.push_back({{"step", core::ToString(l.step)}, {"leg", l.leg}, {"status", kLegStatus[static_cast<int>(l.status)]}});
    }
    return {{"saga_id", s.order_id},
            {"state", core::ToString(s.phase)},
            {"status", static_cast<int>(s.status)},
            {"status_text", core::ToString(s.status)},
            {"detail", s.detail},
            {"pending", pending},
            {"order", runtime::OrderToJson(s.order)},
            {"steps", history},
            {"legs", legs},
            {"events", events},
            {"started_at", runtime::FormatTime(s.started_at_ms)},
            {"ended_at", s.ended_at_ms == 0 ? json(nullptr) : json(runtime::FormatTime(s.ended_at_ms))}};
  }

  const core::SagaDefinition definition_;
  const runtime::Changelog events_;
  const runtime::Changelog states_;
  std::mutex summary_mu_;
  std::map<core::OrderId, Summary> summary_;
  std::map<int32_t, size_t> active_by_task_;
};

// Drives the sagas of one partition.
class SagaTask final : public runtime::ServiceTask {
 public:
  SagaTask(OrchestratorService& service, int32_t task) : ServiceTask(service, task), service_(service) {}

 protected:
  // On an empty disk: every saga that ended is rebuilt from its final snapshot
  // (orders.saga.state), every saga in flight from its events, read from the
  // watermark of the newest snapshot on (an offset before the first event of
  // every saga that was in flight when it was written).
  core::Status BeforeRestore() override {
    SAGAFLOW_CHECK(task() >= 0, "the orchestrator runs one task per partition");
    const kafka::TopicPartition events{service_.events().topic, task()};
    const kafka::TopicPartition states{service_.states().topic, task()};
    if (store().AppliedOffsets().contains(events)) return core::Status::Ok();
    eventstore::WriteSet snapshots;
    int64_t watermark = 0;
    int64_t snapshots_read = 0;
    auto end = kafka::ReadToEnd(
        service_.kafka_config(), states.topic, {},
        [&](const kafka::Record& r) {
          ServiceTask::ApplyChangelog(service_.states(), r, snapshots);
          auto m = core::Decode(r.value);
          if (m.ok() && m->events_watermark >= 0) watermark = m->events_watermark;  // the newest one wins
          ++snapshots_read;
        },
        {}, OwnPartitions());
    if (!end.ok()) return end.error();
    eventstore::OffsetMap applied = end.value();
    applied[events] = watermark;
    snapshots.Put(WatermarkKey(), std::to_string(watermark));
    if (auto s = CommitLocal(snapshots, applied); !s.ok()) return s;
    rebuilding_ = true;
    log().info("task {}: no local state: {} saga snapshot(s) from {}; the sagas in flight from {} at offset {}",
               task(), snapshots_read, states.topic, events.topic, watermark);
    return core::Status::Ok();
  }

  // A saga event is stored under the saga's next version and folded into its
  // working state; a snapshot is stored as the saga's latest state.
  void ApplyChangelog(const runtime::Changelog& changelog, const kafka::Record& record,
                      eventstore::WriteSet& out) override {
    if (changelog.topic == service_.states().topic) {
      ServiceTask::ApplyChangelog(changelog, record, out);
      return;
    }
    auto message = core::Decode(record.value);
    SAGAFLOW_CHECK(message.ok(), "undecodable record in " + record.topic + ": " +
                                     (message.ok() ? std::string() : message.error().message));
    const auto events = core::SagaEventsOf(message->payload);
    SAGAFLOW_CHECK(!events.empty(), "a non-event record in " + record.topic);
    SagaState& state = Working(message->saga_id);
    // The record is stored whole, under the version of its first event.
    int64_t first_version = state.version;
    size_t skip = 0;
    if (rebuilding_) {
      // An ended saga's final snapshot says it all. A snapshot of a saga in
      // flight (written by earlier versions, once per input) already holds
      // the saga's first `version` events.
      if (state.phase == SagaPhase::kEnded) return;
      int64_t& seen = rebuild_seen_[message->saga_id];
      first_version = seen;
      seen += static_cast<int64_t>(events.size());
      if (seen <= state.version) return;
      skip = static_cast<size_t>(std::max<int64_t>(0, state.version - first_version));
    }
    out.Put(EventKey(message->saga_id, first_version), record.value);
    for (const auto& event : events.subspan(skip)) state = core::Apply(service_.definition(), std::move(state), event);
    // During the restore, keep snap/ in step with the events in every batch
    // written, so a restore that stops half-way resumes from consistent states.
    // While serving, Handle() writes the snapshot once per input instead.
    if (catching_up_) {
      out.Put("snap/" + core::SagaKey(message->saga_id),
              core::Encode({message->message_id, message->saga_id, "", message->produced_at_ms, 1, state}));
    }
  }

  core::Status AfterRestore() override {
    catching_up_ = false;
    rebuilding_ = false;
    rebuild_seen_.clear();
    dirty_.clear();
    const auto applied = store().AppliedOffsets();
    auto it = applied.find({service_.events().topic, task()});
    events_end_ = it == applied.end() ? 0 : it->second;
    // The sagas carrying on began at or after the last watermark written.
    auto floor = Get(WatermarkKey());
    restored_floor_ = floor ? std::stoll(*floor) : 0;
    size_t sagas = 0;
    store().ScanPrefix("snap/", [&](std::string_view key, std::string_view value) {
      if (!Owns(key.substr(5))) return true;
      auto state = runtime::DecodeStored<SagaState>(std::string(value));
      service_.Summarize(state->order_id, state->phase, state->status);
      ++sagas;
      if (state->phase != SagaPhase::kEnded) {
        restored_in_flight_.insert(state->order_id);
        active_[state->order_id] = std::move(*state);
      }
      return true;
    });
    service_.SetActive(task(), active_.size());
    log().info("task {}: rebuilt {} saga(s); {} not ended carry on", task(), sagas, active_.size());
    return core::Status::Ok();
  }

  void OnRecords(std::span<const kafka::Record> records, core::TxContext& tx) override {
    const auto now = core::NowMs();
    for (const auto& record : records) {
      auto message = DecodeOrDeadLetter(tx, record);
      if (!message) continue;
      if (message->saga_id <= 0 || record.key != core::SagaKey(message->saga_id)) {
        DeadLetter(tx, record, "record key '" + record.key + "' is not the envelope's saga id " +
                                   std::to_string(message->saga_id));
        continue;
      }
      if (!Owns(record.key)) {
        DeadLetter(tx, record, "key '" + record.key + "' does not belong to partition " +
                                   std::to_string(record.partition) +
                                   " (records must be partitioned by Kafka's murmur2 of the key)");
        continue;
      }
      if (const auto* placed = std::get_if<core::OrderPlaced>(&message->payload)) {
        if (placed->order.order_id <= 0 || placed->order.order_id != message->saga_id) {
          DeadLetter(tx, record, "OrderPlaced with order id " + std::to_string(placed->order.order_id) +
                                     " in an envelope for saga " + std::to_string(message->saga_id));
          continue;
        }
        Handle(tx, message->saga_id, *placed, message->message_id, now);
      } else if (const auto* reply = std::get_if<core::StepReply>(&message->payload)) {
        const auto phase = PhaseOf(message->saga_id);
        if (phase == SagaPhase::kNotStarted) {
          DeadLetter(tx, record, std::string("a ") + std::string(core::ToString(reply->step)) +
                                     " reply for saga " + std::to_string(message->saga_id) +
                                     ", which this orchestrator never started");
          continue;
        }
        if (phase == SagaPhase::kEnded) {
          // A late answer to a request that timed out and was retried or compensated: expected, counted.
          metrics().Add("late_replies_total");
          log().info("saga={} {} reply (attempt {}) after the saga ended: ignored", message->saga_id,
                     core::ToString(reply->step), reply->attempt);
          continue;
        }
        Handle(tx, message->saga_id, *reply, message->message_id, now);
      } else {
        DeadLetter(tx, record, "the orchestrator does not handle " + std::string(core::PayloadName(message->payload)));
      }
    }
  }

  void OnIdle(core::TxContext& tx) override {
    const auto now = core::NowMs();
    std::vector<core::OrderId> due;
    auto collect = [&](core::OrderId id, const SagaState& s) {
      if (s.phase != SagaPhase::kEnded && s.pending && s.pending->deadline_ms <= now) due.push_back(id);
    };
    for (const auto& [id, s] : dirty_) collect(id, s);
    for (const auto& [id, s] : active_) {
      if (!dirty_.contains(id)) collect(id, s);
    }
    for (auto id : due) Handle(tx, id, core::Tick{now}, "", now);
  }

  void OnCommittedHook(const std::vector<kafka::Delivered>& delivered) override {
    for (const auto& [id, index] : started_) first_event_[id] = delivered[index].offset;
    started_.clear();
    for (const auto& d : delivered) {
      if (d.topic == service_.events().topic) events_end_ = std::max(events_end_, d.offset + 1);
    }
    for (auto& [id, state] : dirty_) {
      service_.Summarize(id, state.phase, state.status);
      if (state.phase == SagaPhase::kEnded) {
        active_.erase(id);
        first_event_.erase(id);
        restored_in_flight_.erase(id);
      } else {
        active_[id] = std::move(state);
      }
    }
    dirty_.clear();
    service_.SetActive(task(), active_.size());
  }

  void OnAbortedHook() override {
    dirty_.clear();
    started_.clear();
  }

 private:
  // The saga's phase as this iteration sees it, without loading it for work.
  SagaPhase PhaseOf(core::OrderId id) const {
    if (auto it = dirty_.find(id); it != dirty_.end()) return it->second.phase;
    if (auto it = active_.find(id); it != active_.end()) return it->second.phase;
    auto stored = runtime::DecodeStored<SagaState>(Get("snap/" + core::SagaKey(id)));
    return stored ? stored->phase : SagaPhase::kNotStarted;
  }

  // The saga's state as this iteration sees it; loaded into dirty_ on first touch.
  SagaState& Working(core::OrderId id) {
    if (auto it = dirty_.find(id); it != dirty_.end()) return it->second;
    SagaState state;
    if (auto it = active_.find(id); it != active_.end()) {
      state = it->second;
    } else if (auto stored = runtime::DecodeStored<SagaState>(Get("snap/" + core::SagaKey(id)))) {
      // Ended sagas are not kept in memory.
      state = std::move(*stored);
    }
    return dirty_[id] = std::move(state);
  }

  void Handle(core::TxContext& tx, core::OrderId id, const core::SagaInput& input, const std::string& causation,
              core::TimeMs now) {
    const SagaState& before = Working(id);
    const auto decision = core::Decide(service_.definition(), before, input, now);
    if (decision.empty()) {
      metrics().Add("ignored_inputs_total");
      log().debug("saga={} input changed nothing (duplicate or stale)", id);
      return;
    }
    // One record carries the decision's events.
    for (const auto& event : decision.events) {
      if (std::holds_alternative<core::SagaStarted>(event.body)) started_.emplace_back(id, tx.produced());
      log().info("saga={} {}", id, Describe(event));
      service_.Count(event);
    }
    EmitChangelog(tx, service_.events(), core::SagaKey(id),
                  core::Message{NewMessageId("events", id), id, causation, now, 1, core::SagaEvents{decision.events}});
    for (const auto& command : decision.commands) {
      core::Message m{NewMessageId("command", id), id, causation, now, 1, command};
      // A leg of a fanned-out step goes to its item's partition; its reply comes back keyed by saga.
      Emit(tx, topics().CommandTopic(command.step), core::CommandKey(id, command), m);
    }
    // Locally the snapshot follows every input. On Kafka only the final one is
    // written: a wiped disk rebuilds the sagas in flight from their events,
    // from the watermark the final snapshots carry.
    core::Message snapshot{NewMessageId("state", id), id, causation, now, 1, Working(id)};
    if (Working(id).phase == SagaPhase::kEnded) {
      snapshot.events_watermark = Watermark();
      EmitChangelog(tx, service_.states(), core::SagaKey(id), snapshot);
      StageLocal(WatermarkKey(), std::to_string(snapshot.events_watermark));
    } else {
      StageLocal("snap/" + core::SagaKey(id), core::Encode(snapshot));
    }
    if (decision.final_status) {
      core::Message m{NewMessageId("status", id), id, causation, now, 1, *decision.final_status};
      Emit(tx, topics().status, core::SagaKey(id), m);
    }
  }

  // An offset of the task's events partition at or before the first event of
  // every saga in flight: sagas started in this transaction come after
  // events_end_, the others have a known first event or began after restored_floor_.
  int64_t Watermark() const {
    int64_t w = events_end_;
    for (const auto& [id, offset] : first_event_) w = std::min(w, offset);
    if (!restored_in_flight_.empty()) w = std::min(w, restored_floor_);
    return w;
  }
  std::string WatermarkKey() const { return "watermark/" + std::to_string(task()); }

  OrchestratorService& service_;
  // True until the restore of the changelogs is over.
  bool catching_up_ = true;
  // True while an empty disk is rebuilt (see BeforeRestore).
  bool rebuilding_ = false;
  std::unordered_map<core::OrderId, int64_t> rebuild_seen_;
  // For the watermark: where each saga in flight began, the sagas started in
  // this transaction (their SagaStarted's produce index), the next offset of
  // the events partition, and the sagas carried over from the restore.
  std::unordered_map<core::OrderId, int64_t> first_event_;
  std::vector<std::pair<core::OrderId, size_t>> started_;
  int64_t events_end_ = 0;
  int64_t restored_floor_ = 0;
  std::set<core::OrderId> restored_in_flight_;
  std::unordered_map<core::OrderId, SagaState> active_;
  std::unordered_map<core::OrderId, SagaState> dirty_;
};

std::unique_ptr<runtime::ServiceTask> OrchestratorService::CreateTask(int32_t task) {
  return std::make_unique<SagaTask>(*this, task);
}

}  // namespace

std::unique_ptr<runtime::Service> MakeOrchestrator(runtime::ServiceOptions options, OrchestratorOptions orchestrator) {
  return std::make_unique<OrchestratorService>(std::move(options), orchestrator);
}

}  // namespace sagaflow::orchestrator
