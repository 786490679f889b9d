#include "sagaflow/replay/replay_command.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <ctime>
#include <ostream>
#include <type_traits>
#include <variant>

#include "format.hpp"
#include "progress.hpp"
#include "sagaflow/core/kafka/kafka_client.hpp"
#include "sagaflow/core/topics.hpp"
#include "sagaflow/replay/export_file.hpp"
#include "sagaflow/replay/participants.hpp"

namespace sagaflow::replay {
namespace {

using core::Errc;
using core::Error;
using detail::FormatDuration;
using detail::FormatTime;
using detail::StepName;
using nlohmann::json;

kafka::KafkaConfig KafkaConfigOf(const SourceOptions& source) { return {source.brokers, source.kafka_properties}; }

bool InFlight(const SagaReplay& r) {
  return r.state.phase == core::SagaPhase::kForward || r.state.phase == core::SagaPhase::kCompensating;
}

std::string StateName(const SagaReplay& r) {
  if (r.state.phase == core::SagaPhase::kEnded) return std::string(core::ToString(r.state.status));
  return std::string(core::ToString(r.state.phase));
}

bool MatchesState(const SagaReplay& r, const std::string& wanted) {
  if (wanted.empty()) return true;
  if (wanted == "running" || wanted == "compensating" || wanted == "ended") {
    return core::ToString(r.state.phase) == wanted;
  }
  if (r.state.phase != core::SagaPhase::kEnded) return false;
  if (wanted == "ok") return r.state.status == core::OrderStatus::kOk;
  return r.state.status == core::OrderStatus::kNotOk;  // not_ok
}

int64_t Percentile(std::vector<int64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t index = std::min(sorted.size() - 1, static_cast<size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5));
  return sorted[index];
}

std::string Awaiting(const SagaReplay& r, core::TimeMs now_ms) {
  if (!r.state.pending) return "-";
  const auto& p = *r.state.pending;
  const int64_t left = p.deadline_ms - now_ms;
  return StepName(p.step) + " (attempt " + std::to_string(p.attempt) + ", " +
         (left >= 0 ? "deadline in " + FormatDuration(left) : "deadline passed " + FormatDuration(-left) + " ago") +
         ")";
}

json SagaJson(const SagaReplay& r, core::TimeMs now_ms) {
  json pending = nullptr;
  if (r.state.pending) {
    pending = {{"step", StepName(r.state.pending->step)},
               {"attempt", r.state.pending->attempt},
               {"deadline", FormatTime(r.state.pending->deadline_ms)}};
  }
  json out = {{"type", "saga"},
              {"saga_id", r.id},
              {"state", core::ToString(r.state.phase)},
              {"status", core::ToString(r.state.status)},
              {"detail", r.state.detail},
              {"started_at", FormatTime(r.first_event_ms)},
              {"last_event_at", FormatTime(r.last_event_ms)},
              {"ended_at", r.state.ended_at_ms ? json(FormatTime(r.state.ended_at_ms)) : json(nullptr)},
              {"events", r.events},
              {"retries", r.retries},
              {"timeouts", r.timeouts},
              {"compensations", r.compensations},
              {"pending", pending}};
  if (InFlight(r)) {
    out["in_flight_ms"] = now_ms - r.first_event_ms;
    out["waiting_ms"] = now_ms - r.last_event_ms;
  }
  if (r.partial) out["partial"] = true;
  return out;
}

// ---- the summary and the filtered lists ----

int PrintSummary(const Replayer& replayer, const ReplayOptions& o, core::TimeMs now, const std::string& topic,
                 std::ostream& out) {
  const auto sagas = replayer.Sagas();
  std::map<std::string, int64_t> by_state;
  std::vector<const SagaReplay*> in_flight, selected;
  int64_t retries = 0, timeouts = 0, compensations = 0, partial = 0;
  const bool filtered = !o.state.empty() || o.stuck_ms.has_value();
  for (const SagaReplay* r : sagas) {
    if (r->partial) {
      ++partial;
      continue;
    }
    ++by_state[StateName(*r)];
    retries += r->retries;
    timeouts += r->timeouts;
    compensations += r->compensations;
    if (InFlight(*r)) in_flight.push_back(r);
    if (filtered && MatchesState(*r, o.state) &&
        (!o.stuck_ms || (InFlight(*r) && now - r->first_event_ms >= *o.stuck_ms))) {
      selected.push_back(r);
    }
  }
  auto longest_first = [](const SagaReplay* a, const SagaReplay* b) { return a->first_event_ms < b->first_event_ms; };
  std::sort(in_flight.begin(), in_flight.end(), longest_first);
  if (o.stuck_ms) std::sort(selected.begin(), selected.end(), longest_first);
  const auto& totals = replayer.totals();
  const int64_t counted = static_cast<int64_t>(sagas.size()) - partial;

  auto latencies = replayer.StepLatencies();
  if (o.json) {
    for (const SagaReplay* r : filtered ? selected : in_flight) out << SagaJson(*r, now).dump() << '\n';
    if (filtered) return kExitOk;
    json steps = json::object();
    for (auto& [step, values] : latencies) {
      std::sort(values.begin(), values.end());
      steps[StepName(step)] = {{"replies", values.size()},
                               {"p50_ms", Percentile(values, 0.5)},
                               {"p90_ms", Percentile(values, 0.9)},
                               {"p99_ms", Percentile(values, 0.99)},
                               {"max_ms", values.empty() ? 0 : values.back()}};
    }
    out << json{{"type", "summary"},
                {"topic", topic},
                {"records", totals.records},
                {"events", totals.events},
                {"undecodable", totals.undecodable},
                {"sagas", counted},
                {"partial_sagas_skipped", partial},
                {"by_state", by_state},
                {"in_flight", in_flight.size()},
                {"retries", retries},
                {"timeouts", timeouts},
                {"compensations", compensations},
                {"step_latency", steps}}
               .dump()
        << '\n';
    return kExitOk;
  }

  if (filtered) {
    out << fmt::format("{} saga(s){}{}\n", selected.size(), o.state.empty() ? "" : " in state " + o.state,
                       o.stuck_ms ? " in flight for longer than " + FormatDuration(*o.stuck_ms) : "");
    if (selected.empty()) return kExitOk;
    out << fmt::format("{:<18} {:<13} {:<25} {:>11}  {}\n", "saga", "state", "started", "age/took", "detail / awaiting");
    for (const SagaReplay* r : selected) {
      const int64_t age = (InFlight(*r) ? now : r->state.ended_at_ms) - r->first_event_ms;
      out << fmt::format("{:<18} {:<13} {:<25} {:>11}  {}\n", r->id, StateName(*r), FormatTime(r->first_event_ms),
                         FormatDuration(age), InFlight(*r) ? Awaiting(*r, now) : r->state.detail);
    }
    return kExitOk;
  }

  out << fmt::format("{} event(s) in {} record(s) of {}: {} saga(s)", totals.events, totals.records, topic, counted);
  if (partial > 0) out << fmt::format(" (+{} started before --since, skipped)", partial);
  out << '\n';
  if (totals.undecodable > 0) {
    out << fmt::format("{} undecodable record(s) skipped; the first: {}\n", totals.undecodable,
                       totals.first_undecodable);
  }
  out << fmt::format("\n{:<14} {:>8}\n", "final state", "sagas");
  for (const auto& [state, count] : by_state) out << fmt::format("{:<14} {:>8}\n", state, count);

  out << fmt::format("\nin flight: {}\n", in_flight.size());
  constexpr size_t kShown = 20;
  if (!in_flight.empty()) {
    out << fmt::format("{:<18} {:<13} {:>11} {:>11}  {}\n", "saga", "state", "in flight", "waiting", "awaiting");
    for (size_t i = 0; i < in_flight.size() && i < kShown; ++i) {
      const SagaReplay& r = *in_flight[i];
      out << fmt::format("{:<18} {:<13} {:>11} {:>11}  {}\n", r.id, StateName(r), FormatDuration(now - r.first_event_ms),
                         FormatDuration(now - r.last_event_ms), Awaiting(r, now));
    }
    if (in_flight.size() > kShown) {
      out << fmt::format("... and {} more (--state running, --stuck AGE or --json list them all)\n",
                         in_flight.size() - kShown);
    }
  }

  out << fmt::format("\nstep latency, request to reply:\n{:<15} {:>8} {:>10} {:>10} {:>10} {:>10}\n", "step", "replies",
                     "p50", "p90", "p99", "max");
  for (auto& [step, values] : latencies) {
    std::sort(values.begin(), values.end());
    out << fmt::format("{:<15} {:>8} {:>10} {:>10} {:>10} {:>10}\n", StepName(step), values.size(),
                       FormatDuration(Percentile(values, 0.5)), FormatDuration(Percentile(values, 0.9)),
                       FormatDuration(Percentile(values, 0.99)), FormatDuration(values.empty() ? 0 : values.back()));
  }
  out << fmt::format("\nretries {}, timeouts {}, compensations {}\n", retries, timeouts, compensations);
  return kExitOk;
}

// ---- the timeline of one saga ----

json EventJson(const TimelineEntry& entry, core::TimeMs started, int64_t index, core::OrderId id) {
  const core::SagaEvent& e = entry.event;
  json out = {{"type", "event"},
              {"saga_id", id},
              {"index", index},
              {"time", FormatTime(e.at_ms)},
              {"since_start_ms", e.at_ms - started},
              {"partition", entry.partition},
              {"offset", entry.offset},
              {"compensation", entry.compensation},
              {"text", Describe(e)}};
  auto steps = [](const std::vector<core::Step>& in) {
    json a = json::array();
    for (auto s : in) a.push_back(StepName(s));
    return a;
  };
  std::visit(
      [&](const auto& b) {
        using T = std::decay_t<decltype(b)>;
        if constexpr (std::is_same_v<T, core::SagaStarted>) {
          out["event"] = "SagaStarted";
          out["sum"] = b.order.sum;
          out["user_id"] = b.order.user_id;
        } else if constexpr (std::is_same_v<T, core::StepRequested>) {
          out["event"] = "StepRequested";
          out["step"] = StepName(b.step);
          out["attempt"] = b.attempt;
          out["deadline"] = FormatTime(b.deadline_ms);
        } else if constexpr (std::is_same_v<T, core::StepReplied>) {
          out["event"] = "StepReplied";
          out["step"] = StepName(b.step);
          out["attempt"] = b.attempt;
          out["ok"] = b.ok;
          out["detail"] = b.detail;
          out["outcome"] = core::ToString(b.outcome);
          if (!b.compensations.empty()) out["compensations"] = steps(b.compensations);
        } else if constexpr (std::is_same_v<T, core::StepTimedOut>) {
          out["event"] = "StepTimedOut";
          out["step"] = StepName(b.step);
          out["attempt"] = b.attempt;
          out["outcome"] = core::ToString(b.outcome);
          if (!b.compensations.empty()) out["compensations"] = steps(b.compensations);
        } else {
          out["event"] = "SagaEnded";
          out["status"] = core::ToString(b.status);
          out["detail"] = b.detail;
        }
      },
      e.body);
  return out;
}

int PrintTimeline(const Replayer& replayer, core::OrderId id, bool json_lines, core::TimeMs now, std::ostream& out,
                  std::ostream& err) {
  const SagaReplay* r = replayer.Find(id);
  if (r == nullptr) {
    err << "sagaflow replay: no saga " << id << " in the history (" << replayer.Sagas().size() << " saga(s) read)\n";
    return kExitBadInput;
  }
  const auto& timeline = replayer.Timeline();
  const core::TimeMs started = timeline.empty() ? r->first_event_ms : timeline.front().event.at_ms;
  if (json_lines) {
    for (size_t i = 0; i < timeline.size(); ++i) out << EventJson(timeline[i], started, static_cast<int64_t>(i), id).dump() << '\n';
    out << SagaJson(*r, now).dump() << '\n';
    return kExitOk;
  }
  const core::Order& order = r->state.order;
  out << fmt::format("saga {}: order of user {}, sum {}, {} item line(s)\n\n", id, order.user_id, order.sum,
                     order.items.size());
  out << fmt::format("{:<25} {:>11}  {}\n", "time", "since start", "event");
  for (const TimelineEntry& entry : timeline) {
    out << fmt::format("{:<25} {:>11}  {}{}\n", FormatTime(entry.event.at_ms),
                       "+" + FormatDuration(entry.event.at_ms - started), entry.compensation ? "[compensation] " : "",
                       Describe(entry.event));
  }
  out << "\nfinal: ";
  if (r->state.phase == core::SagaPhase::kEnded) {
    out << fmt::format("ended {} after {}{}\n", core::ToString(r->state.status),
                       FormatDuration(r->state.ended_at_ms - started),
                       r->state.detail.empty() ? "" : " (" + r->state.detail + ")");
  } else {
    out << fmt::format("{} for {}, awaiting {}\n", core::ToString(r->state.phase), FormatDuration(now - started),
                       Awaiting(*r, now));
  }
  if (r->partial) out << "(the history read starts after this saga began: --since)\n";
  return kExitOk;
}

// ---- verify ----

int PrintVerification(const Replayer& replayer, const std::vector<Mismatch>& mismatches, bool participants,
                      bool json_lines, std::ostream& out) {
  int64_t checked = 0, divergent = 0, violations = 0;
  for (const SagaReplay* r : replayer.Sagas()) {
    if (r->partial) continue;
    ++checked;
    if (r->divergence) {
      ++divergent;
      const Divergence& d = *r->divergence;
      if (json_lines) {
        out << json{{"type", "divergence"},   {"saga_id", r->id},       {"index", d.index},
                    {"time", FormatTime(d.at_ms)}, {"history", d.recorded}, {"code", d.expected}}
                   .dump()
            << '\n';
      } else {
        out << fmt::format("saga {}: history and code diverge at event {} ({})\n  history: {}\n  code:    {}\n", r->id,
                           d.index, FormatTime(d.at_ms), d.recorded, d.expected);
      }
    }
    for (const std::string& v : r->violations) {
      ++violations;
      if (json_lines) {
        out << json{{"type", "invariant"}, {"saga_id", r->id}, {"violation", v}}.dump() << '\n';
      } else {
        out << fmt::format("saga {}: invariant broken: {}\n", r->id, v);
      }
    }
  }
  for (const Mismatch& m : mismatches) {
    if (json_lines) {
      out << json{{"type", "participant_mismatch"}, {"saga_id", m.saga_id}, {"check", m.check},
                  {"history", m.history}, {"participant", m.participant}}
                 .dump()
          << '\n';
    } else {
      out << fmt::format("saga {}: {}\n  history:     {}\n  participant: {}\n", m.saga_id, m.check, m.history,
                         m.participant);
    }
  }
  const bool clean = divergent == 0 && violations == 0 && mismatches.empty();
  if (json_lines) {
    out << json{{"type", "verify"},          {"sagas", checked},
                {"events", replayer.totals().events}, {"divergent", divergent},
                {"invariant_violations", violations}, {"participants_checked", participants},
                {"participant_mismatches", mismatches.size()}, {"ok", clean}}
               .dump()
        << '\n';
  } else {
    out << fmt::format("verified {} saga(s), {} event(s), against today's code: {} agree, {} diverge; {} invariant "
                       "violation(s)",
                       checked, replayer.totals().events, checked - divergent, divergent, violations);
    if (participants) out << fmt::format("; participants: {} mismatch(es)", mismatches.size());
    out << (clean ? " -- OK\n" : " -- FAILED\n");
  }
  return clean ? kExitOk : kExitFindings;
}

core::Status ReadFromKafka(const SourceOptions& source, Replayer& replayer, const std::string& topic) {
  const auto config = KafkaConfigOf(source);
  if (auto s = kafka::WaitForBroker(config, std::chrono::milliseconds(source.broker_timeout_ms)); !s.ok()) {
    return Error{Errc::kUnavailable, "Kafka broker at " + source.brokers + " is unreachable", false};
  }
  kafka::OffsetMap start;
  if (source.since_ms) {
    auto from = kafka::OffsetsForTime(config, topic, *source.since_ms);
    if (!from.ok()) return from.error();
    start = from.value();
  }
  detail::ProgressBar bar(source.progress, "reading " + topic);
  auto result = kafka::ReadBulk(
      config, topic, start,
      [&](std::span<const kafka::RecordView> records) {
        for (const auto& r : records) replayer.Add(SourceRecord{r.partition, r.offset, r.timestamp_ms, r.key, r.value});
      },
      [&](int64_t read, int64_t expected) { bar.Update(read, expected); });
  bar.Done();
  if (!result.ok()) return result.error();
  return core::Status::Ok();
}

}  // namespace

core::Status ReadSagaLog(const SourceOptions& source, Replayer& replayer) {
  const std::string topic = core::TopicNames(source.topic_prefix).saga_events;
  core::Status status;
  if (!source.file.empty()) {
    detail::ProgressBar bar(source.progress, "reading " + source.file);
    auto info = ReadExportFile(
        source.file,
        [&](const SourceRecord& record) {
          if (source.since_ms && record.timestamp_ms < *source.since_ms) return;
          replayer.Add(record);
        },
        [&](int64_t done, int64_t size) { bar.Update(done, size, "bytes"); });
    bar.Done();
    if (!info.ok()) status = info.error();
  } else {
    status = ReadFromKafka(source, replayer, topic);
  }
  replayer.Finish();
  return status;
}

int RunReplay(const ReplayOptions& o, std::ostream& out, std::ostream& err) {
  if (!o.state.empty() && o.state != "running" && o.state != "compensating" && o.state != "ended" && o.state != "ok" &&
      o.state != "not_ok") {
    err << "sagaflow replay: --state must be running, compensating, ended, ok or not_ok, not '" << o.state << "'\n";
    return kExitBadInput;
  }
  const core::TimeMs now = o.now_ms != 0 ? o.now_ms : core::NowMs();
  Replayer replayer(core::OrderSagaDefinition(o.timings), ReplayerOptions{.verify = o.verify, .timeline_of = o.saga});
  if (auto s = ReadSagaLog(o.source, replayer); !s.ok()) {
    err << "sagaflow replay: " << s.error().message << '\n';
    return kExitBadInput;
  }
  const std::string topic = o.source.file.empty() ? core::TopicNames(o.source.topic_prefix).saga_events : o.source.file;
  if (o.verify) {
    std::vector<Mismatch> mismatches;
    if (o.participants) {
      auto records = ReadParticipants(o.source);
      if (!records.ok()) {
        err << "sagaflow replay: " << records.error().message << '\n';
        return kExitBadInput;
      }
      mismatches = CheckParticipants(replayer, records.value(), !o.source.since_ms.has_value());
    }
    return PrintVerification(replayer, mismatches, o.participants, o.json, out);
  }
  if (o.saga) return PrintTimeline(replayer, *o.saga, o.json, now, out, err);
  return PrintSummary(replayer, o, now, topic, out);
}

int RunExport(const SourceOptions& source, const std::string& out_path, std::ostream& out, std::ostream& err) {
  const std::string topic = core::TopicNames(source.topic_prefix).saga_events;
  if (!source.file.empty()) {
    err << "sagaflow replay export: reads from Kafka (--brokers), not from a file\n";
    return kExitBadInput;
  }
  const auto config = KafkaConfigOf(source);
  if (auto s = kafka::WaitForBroker(config, std::chrono::milliseconds(source.broker_timeout_ms)); !s.ok()) {
    err << "sagaflow replay export: Kafka broker at " << source.brokers << " is unreachable\n";
    return kExitBadInput;
  }
  kafka::OffsetMap start;
  if (source.since_ms) {
    auto from = kafka::OffsetsForTime(config, topic, *source.since_ms);
    if (!from.ok()) {
      err << "sagaflow replay export: " << from.error().message << '\n';
      return kExitBadInput;
    }
    start = from.value();
  }
  // Written to a temporary name first: a failed export never leaves a file that looks whole.
  const std::string temp = out_path + ".partial";
  auto writer = ExportWriter::Open(temp, topic);
  if (!writer.ok()) {
    err << "sagaflow replay export: " << writer.error().message << '\n';
    return kExitBadInput;
  }
  core::Status write_status;
  detail::ProgressBar bar(source.progress, "exporting " + topic);
  auto result = kafka::ReadBulk(
      config, topic, start,
      [&](std::span<const kafka::RecordView> records) {
        for (const auto& r : records) {
          if (!write_status.ok()) return;
          write_status = writer.value()->Write(SourceRecord{r.partition, r.offset, r.timestamp_ms, r.key, r.value});
        }
      },
      [&](int64_t read, int64_t expected) { bar.Update(read, expected); });
  bar.Done();
  core::Status status = !result.ok() ? core::Status(result.error()) : write_status;
  if (status.ok()) status = writer.value()->Close();
  if (status.ok() && std::rename(temp.c_str(), out_path.c_str()) != 0) {
    status = Error{Errc::kIoError, "cannot rename " + temp + " to " + out_path, false};
  }
  if (!status.ok()) {
    std::remove(temp.c_str());
    err << "sagaflow replay export: " << status.error().message << '\n';
    return kExitBadInput;
  }
  out << fmt::format("exported {} record(s) of {} to {}\n", writer.value()->records(), topic, out_path);
  return kExitOk;
}

core::Result<int64_t> ParseDuration(const std::string& text) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  const std::string number = text.substr(0, i), unit = text.substr(i);
  double value = 0;
  try {
    size_t used = 0;
    value = std::stod(number, &used);
    if (used != number.size()) throw std::invalid_argument("");
  } catch (...) {
    return Error{Errc::kInvalidArgument, "'" + text + "' is not a duration (e.g. 90s, 5m, 2h, 1d, 250ms)", false};
  }
  double scale = 0;
  if (unit.empty() || unit == "s") scale = 1000;
  else if (unit == "ms") scale = 1;
  else if (unit == "m" || unit == "min") scale = 60'000;
  else if (unit == "h") scale = 3'600'000;
  else if (unit == "d") scale = 86'400'000;
  else return Error{Errc::kInvalidArgument, "'" + text + "' has an unknown unit (ms, s, m, h, d)", false};
  return static_cast<int64_t>(value * scale);
}

core::Result<core::TimeMs> ParseTime(const std::string& text, core::TimeMs now_ms) {
  if (!text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }) &&
      text.size() >= 12) {
    return static_cast<core::TimeMs>(std::stoll(text));  // ms since the epoch
  }
  std::tm tm{};
  int y = 0, mo = 0, d = 0, h = 0, mi = 0;
  double s = 0;
  int consumed = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%lf%n", &y, &mo, &d, &h, &mi, &s, &consumed) == 6 ||
      std::sscanf(text.c_str(), "%4d-%2d-%2d %2d:%2d:%lf%n", &y, &mo, &d, &h, &mi, &s, &consumed) == 6) {
    const std::string zone = text.substr(static_cast<size_t>(consumed));
    int64_t offset_ms = 0;
    if (zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':') {
      const int64_t minutes = std::stoi(zone.substr(1, 2)) * 60 + std::stoi(zone.substr(4, 2));
      offset_ms = (zone[0] == '+' ? 1 : -1) * minutes * 60'000;
    } else if (zone != "Z" && !zone.empty()) {
      return Error{Errc::kInvalidArgument, "'" + text + "': unknown time zone '" + zone + "' (use Z or +hh:mm)", false};
    }
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = 0;
    const int64_t secs = static_cast<int64_t>(timegm(&tm));
    return secs * 1000 + static_cast<int64_t>(s * 1000.0 + 0.5) - offset_ms;
  }
  auto ago = ParseDuration(text);
  if (!ago.ok()) {
    return Error{Errc::kInvalidArgument,
                 "'" + text + "' is not a time (2026-11-27T06:00:00Z, ms since the epoch, or a duration ago like 2h)",
                 false};
  }
  return now_ms - ago.value();
}

}  // namespace sagaflow::replay
