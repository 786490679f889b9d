#include "sagaflow/runtime/participant.hpp"

#include <nlohmann/json.hpp>

namespace sagaflow::runtime {

Participant::Participant(std::string name, core::Service role, ServiceOptions options,
                         ParticipantOptions participant)
    : Service(std::move(name), std::move(options)),
      role_(role),
      mistakes_(participant.mistakes),
      delay_min_ms_(participant.delay_min_ms),
      delay_max_ms_(participant.delay_max_ms) {
  metrics().Describe("commands_total", "Commands answered, by step and result");
  metrics().Describe("duplicate_commands_total", "Commands answered from the recorded reply");
  metrics().Describe("quarantined_records_total",
                     "Commands dead-lettered because applying them would break an invariant of the state");
}

void Participant::AddRoutes(HttpServer& http) {
  auto settings = [this] {
    return nlohmann::json{{"mistakes", mistakes_.load()},
                          {"delay_ms", nlohmann::json::array({delay_min_ms_.load(), delay_max_ms_.load()})}};
  };
  http.Route("GET", "/set", [settings](const HttpRequest&) { return HttpResponse::Json(settings()); });
  http.Route("POST", "/set", [this, settings](const HttpRequest& req) {
    if (auto denied = DenyUnlessAdmin(req)) return *denied;
    auto body = ParseJsonBody(req);
    if (!body.contains("mistakes") && !body.contains("delay_ms")) {
      throw HttpError{400, "expected \"mistakes\" (0..100) and/or \"delay_ms\" ([min, max] or a number)"};
    }
    std::optional<int> mistakes;
    if (body.contains("mistakes")) {
      const auto& m = body["mistakes"];
      if (!m.is_number_integer()) throw HttpError{400, "\"mistakes\" must be an integer from 0 to 100"};
      const auto v = m.get<int64_t>();
      if (v < 0 || v > 100) throw HttpError{400, "\"mistakes\" must be from 0 to 100, got " + std::to_string(v)};
      mistakes = static_cast<int>(v);
    }
    std::optional<std::pair<int, int>> delay;
    if (body.contains("delay_ms")) {
      const auto& d = body["delay_ms"];
      int64_t lo = 0, hi = 0;
      if (d.is_number_integer()) {
        lo = hi = d.get<int64_t>();
      } else if (d.is_array() && d.size() == 2 && d[0].is_number_integer() && d[1].is_number_integer()) {
        lo = d[0].get<int64_t>();
        hi = d[1].get<int64_t>();
      } else {
        throw HttpError{400, "\"delay_ms\" must be an integer or [min, max] integers"};
      }
      if (lo < 0 || hi < lo || hi > 600'000) {
        throw HttpError{400, "\"delay_ms\" needs 0 <= min <= max <= 600000"};
      }
      delay = {static_cast<int>(lo), static_cast<int>(hi)};
    }
    if (mistakes) mistakes_.store(*mistakes);
    if (delay) {
      delay_min_ms_.store(delay->first);
      delay_max_ms_.store(delay->second);
    }
    log().info("settings changed: mistakes={}% delay_ms=[{}, {}]", mistakes_.load(), delay_min_ms_.load(),
               delay_max_ms_.load());
    return HttpResponse::Json(settings());
  });
  AddParticipantRoutes(http);
}

int64_t Participant::DrawDelayMs(std::mt19937_64& rng) const {
  const int lo = delay_min_ms_.load();
  const int hi = delay_max_ms_.load();
  if (hi <= 0) return 0;
  return std::uniform_int_distribution<int64_t>(lo, std::max(lo, hi))(rng);
}

ParticipantTask::ParticipantTask(Participant& participant, int32_t task)
    : ServiceTask(participant, task), participant_(participant) {}

std::chrono::milliseconds ParticipantTask::IdleInterval() const {
  // Wake up in time for the next delayed command.
  if (waiting_.empty()) return std::chrono::milliseconds(50);
  const auto wait = waiting_.begin()->first - core::NowMs();
  return std::chrono::milliseconds(std::clamp<int64_t>(wait, 0, 50));
}

void ParticipantTask::OnRecords(std::span<const kafka::Record> records, core::TxContext& tx) {
  for (const auto& record : records) {
    auto decoded = core::Decode(record.value);
    std::string bad;
    if (!decoded.ok()) {
      bad = decoded.error().message;
    } else {
      bad = InvalidCommandRecord(participant_, record.key, decoded.value());
      if (bad.empty() && !Owns(record.key)) {
        bad = "key '" + record.key + "' does not belong to partition " + std::to_string(record.partition) +
              " (records must be partitioned by Kafka's murmur2 of the key)";
      }
    }
    if (!bad.empty()) {
      // A dead letter is not idempotent like a command: write it only in the
      // transaction that commits the offset past it, i.e. after every earlier
      // record of its partition that still waits on its delay. Otherwise a
      // crash in between would dead-letter it again.
      int64_t after = 0;
      for (const auto& [due, pending] : waiting_) {
        if (pending.record.topic == record.topic && pending.record.partition == record.partition) {
          after = std::max(after, due);
        }
      }
      if (after == 0) {
        DeadLetter(tx, record, bad);
      } else {
        tx.Defer(record);
        waiting_.emplace(after, Pending{record, {}, std::move(bad)});
      }
      continue;
    }
    const int64_t delay = participant_.DrawDelayMs(rng_);
    if (delay > 0) {
      tx.Defer(record);
      waiting_.emplace(core::NowMs() + delay, Pending{record, std::move(decoded.value()), ""});
    } else {
      Process(tx, record, decoded.value());
    }
  }
}

std::string InvalidCommandRecord(const Participant& participant, std::string_view key, const core::Message& message) {
  const auto* command = std::get_if<core::StepCommand>(&message.payload);
  if (command == nullptr) return "expected a StepCommand, got " + std::string(core::PayloadName(message.payload));
  if (!participant.Handles(command->step)) {
    return std::string(core::ToString(participant.role())) + " does not execute step " +
           std::string(core::ToString(command->step));
  }
  if (message.saga_id <= 0) return "saga id must be positive, got " + std::to_string(message.saga_id);
  if (command->order.order_id != message.saga_id) {
    return "a command for order " + std::to_string(command->order.order_id) + " in an envelope for saga " +
           std::to_string(message.saga_id);
  }
  if (command->leg != core::kNoLeg && !participant.TakesLegs(command->step)) {
    return std::string(core::ToString(participant.role())) + " does not take legs of step " +
           std::string(core::ToString(command->step)) + ", got leg " + std::to_string(command->leg);
  }
  if (key != core::CommandKey(message.saga_id, *command)) {
    if (command->leg != core::kNoLeg) {
      return "record key '" + std::string(key) + "' is not the leg's item id " + std::to_string(command->leg) +
             " (a leg of a fanned-out step is keyed by its item)";
    }
    return "record key '" + std::string(key) + "' is not the saga id " + std::to_string(message.saga_id);
  }
  return participant.InvalidCommand(*command);
}

void ParticipantTask::OnIdle(core::TxContext& tx) {
  const auto now = core::NowMs();
  while (!waiting_.empty() && waiting_.begin()->first <= now) {
    auto node = waiting_.extract(waiting_.begin());
    auto& pending = node.mapped();
    if (pending.dead_letter_reason.empty()) {
      Process(tx, pending.record, pending.message);
    } else {
      DeadLetter(tx, pending.record, pending.dead_letter_reason);
    }
    tx.Complete(pending.record.topic, pending.record.partition, pending.record.offset);
  }
}

void ParticipantTask::OnAbortedHook() {
  // The consumer rewinds to the committed offsets: every waiting command comes again.
  waiting_.clear();
}

void ParticipantTask::Process(core::TxContext& tx, const kafka::Record& record, const core::Message& message) {
  const auto& command = std::get<core::StepCommand>(message.payload);
  const auto saga = message.saga_id;
  core::StepReply reply;
  if (auto recorded = Recorded(command)) {
    reply = *recorded;
    reply.attempt = command.attempt;
    metrics().Add("duplicate_commands_total");
    log().info("saga={} {} attempt {}: already answered {}, repeating the reply", saga,
               core::ToString(command.step), command.attempt, reply.ok ? "OK" : "NOT OK");
  } else {
    bool fail = false;
    if (participant_.MayFail(command.step)) {
      fail = std::uniform_int_distribution<int>(1, 100)(rng_) <= participant_.mistakes();
    }
    quarantine_.clear();
    reply = Execute(tx, command, fail);
    if (!quarantine_.empty()) {
      // Applying it would break an invariant of the state: set it aside, keep serving.
      metrics().Add("quarantined_records_total");
      log().error("saga={} {} attempt {}: quarantined: {}", saga, core::ToString(command.step), command.attempt,
                  quarantine_);
      DeadLetter(tx, record, "quarantined: " + quarantine_);
      return;
    }
    reply.step = command.step;
    reply.attempt = command.attempt;
    log().info("saga={} {} attempt {}: {}{}{}", saga, core::ToString(command.step), command.attempt,
               reply.ok ? "OK" : "NOT OK", reply.detail.empty() ? "" : ": ", reply.detail);
  }
  metrics().Add("commands_total", 1,
                "step=\"" + std::string(core::ToString(command.step)) + "\",result=\"" +
                    (reply.ok ? "ok" : "not_ok") + "\"");
  core::Message out;
  out.message_id = NewMessageId("reply", saga);
  out.saga_id = saga;
  out.causation_id = message.message_id;
  out.produced_at_ms = core::NowMs();
  reply.leg = command.leg;
  out.payload = reply;
  // Replies go to the saga's partition, whatever the command's key was.
  Emit(tx, topics().ReplyTopic(participant_.role()), core::SagaKey(saga), out);
}

}  // namespace sagaflow::runtime
