#include "sagaflow/replay/dlq.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <ostream>
#include <set>
#include <thread>

#include "format.hpp"
#include "sagaflow/core/codec.hpp"
#include "sagaflow/core/kafka/kafka_client.hpp"

namespace sagaflow::replay {
namespace {

using core::Errc;
using core::Error;
using detail::FormatTime;
using detail::StepName;
using nlohmann::json;

struct Letter {
  std::string id;  // "P:OFFSET" in orders.dlq
  int64_t timestamp_ms = 0;
  bool decoded = false;
  std::string undecodable;  // why the dead-letter record itself does not decode
  core::DeadLetter letter;
};

std::string IdOf(int32_t partition, int64_t offset) { return std::to_string(partition) + ":" + std::to_string(offset); }

kafka::KafkaConfig ConfigOf(const SourceOptions& s) { return {s.brokers, s.kafka_properties}; }

core::Status Connect(const SourceOptions& s) {
  if (!kafka::WaitForBroker(ConfigOf(s), std::chrono::milliseconds(s.broker_timeout_ms)).ok()) {
    return Error{Errc::kUnavailable, "Kafka broker at " + s.brokers + " is unreachable", false};
  }
  return core::Status::Ok();
}

core::Result<std::vector<Letter>> ReadLetters(const DlqOptions& o) {
  if (auto s = Connect(o.source); !s.ok()) return s.error();
  const core::TopicNames topics(o.source.topic_prefix);
  std::vector<Letter> out;
  auto result = kafka::ReadToEnd(ConfigOf(o.source), topics.dlq, {}, [&](const kafka::Record& record) {
    Letter l;
    l.id = IdOf(record.partition, record.offset);
    l.timestamp_ms = record.timestamp_ms;
    auto message = core::Decode(record.value);
    if (!message.ok()) {
      l.undecodable = message.error().message;
    } else if (const auto* letter = std::get_if<core::DeadLetter>(&message->payload)) {
      l.decoded = true;
      l.letter = *letter;
    } else {
      l.undecodable = "a " + std::string(core::PayloadName(message->payload)) + ", not a DeadLetter";
    }
    out.push_back(std::move(l));
  });
  if (!result.ok()) return result.error();
  return out;
}

bool Matches(const DlqOptions& o, const Letter& l) {
  if (!o.reason.empty() && (!l.decoded || l.letter.reason.find(o.reason) == std::string::npos)) return false;
  if (!o.topic.empty()) {
    if (!l.decoded) return false;
    const std::string prefixed = o.source.topic_prefix + o.topic;
    if (l.letter.source_topic != o.topic && l.letter.source_topic != prefixed) return false;
  }
  return true;
}

json LetterJson(const Letter& l) {
  if (!l.decoded) return {{"id", l.id}, {"time", FormatTime(l.timestamp_ms)}, {"undecodable", l.undecodable}};
  return {{"id", l.id},
          {"time", FormatTime(l.timestamp_ms)},
          {"service", l.letter.service},
          {"reason", l.letter.reason},
          {"source_topic", l.letter.source_topic},
          {"source_partition", l.letter.source_partition},
          {"source_offset", l.letter.source_offset},
          {"key", l.letter.source_key},
          {"bytes", l.letter.original.size()}};
}

std::string HexDump(const std::string& bytes) {
  std::string out;
  for (size_t i = 0; i < bytes.size(); i += 16) {
    std::string hex, text;
    for (size_t j = i; j < i + 16; ++j) {
      if (j < bytes.size()) {
        const auto c = static_cast<unsigned char>(bytes[j]);
        hex += fmt::format("{:02x} ", c);
        text += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '.';
      } else {
        hex += "   ";
      }
    }
    out += fmt::format("  {:08x}  {} |{}|\n", i, hex, text);
  }
  return out;
}

std::string PayloadText(const core::Payload& payload) {
  return std::visit(
      [](const auto& p) -> std::string {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, core::OrderPlaced>) {
          return fmt::format("OrderPlaced: order {} of user {}, sum {}, {} item line(s)", p.order.order_id,
                             p.order.user_id, p.order.sum, p.order.items.size());
        } else if constexpr (std::is_same_v<T, core::StepCommand>) {
          return fmt::format("StepCommand: {} attempt {} for order {}", StepName(p.step), p.attempt, p.order.order_id);
        } else if constexpr (std::is_same_v<T, core::StepReply>) {
          return fmt::format("StepReply: {} attempt {} {}{}", StepName(p.step), p.attempt, p.ok ? "OK" : "NOT OK",
                             p.detail.empty() ? "" : ": " + p.detail);
        } else if constexpr (std::is_same_v<T, core::FinalStatus>) {
          return fmt::format("FinalStatus: {}{}", core::ToString(p.status), p.detail.empty() ? "" : ": " + p.detail);
        } else {
          return std::string(core::PayloadName(core::Payload{p}));
        }
      },
      payload);
}

}  // namespace

std::string RedrivenTopic(const core::TopicNames& topics) { return topics.dlq + ".redriven"; }

core::Status ValidateForRedrive(const core::TopicNames& topics, const core::DeadLetter& letter) {
  auto message = core::Decode(letter.original);
  if (!message.ok()) return Error{Errc::kCorrupt, "still fails validation: " + message.error().message, false};
  const std::string& topic = letter.source_topic;
  std::string expected;
  if (topic == topics.order) {
    expected = "OrderPlaced";
  } else if (topic == topics.warehouse_reserve || topic == topics.warehouse_cancel || topic == topics.payment_pay ||
             topic == topics.notification_send) {
    expected = "StepCommand";
  } else if (topic == topics.warehouse_status || topic == topics.payment_status || topic == topics.notification_status) {
    expected = "StepReply";
  } else if (topic == topics.status) {
    expected = "FinalStatus";
  } else if (topic == topics.warehouse_restock) {
    expected = "Restock";
  } else {
    return Error{Errc::kInvalidArgument, "source topic " + topic + " is not a command or reply topic of this system"
                                         " (wrong --topic-prefix?)", false};
  }
  const std::string_view got = core::PayloadName(message->payload);
  if (got != expected) {
    return Error{Errc::kInvalidArgument, fmt::format("still fails validation: {} carries {}, not {}", topic, expected, got),
                 false};
  }
  if (const auto* restock = std::get_if<core::Restock>(&message->payload)) {
    if (letter.source_key != core::ItemKey(restock->item_id)) {
      return Error{Errc::kInvalidArgument,
                   fmt::format("still fails validation: key '{}' is not the item id {}", letter.source_key,
                               restock->item_id),
                   false};
    }
    return core::Status::Ok();
  }
  // A leg of a fanned-out step is keyed by its item, everything else by its saga.
  if (const auto* command = std::get_if<core::StepCommand>(&message->payload);
      command && command->leg != core::kNoLeg && message->saga_id > 0) {
    if (letter.source_key != core::CommandKey(message->saga_id, *command)) {
      return Error{Errc::kInvalidArgument,
                   fmt::format("still fails validation: key '{}' is not the leg's item id {}", letter.source_key,
                               command->leg),
                   false};
    }
  } else if (message->saga_id <= 0 || letter.source_key != core::SagaKey(message->saga_id)) {
    return Error{Errc::kInvalidArgument,
                 fmt::format("still fails validation: key '{}' is not the saga id {}", letter.source_key, message->saga_id),
                 false};
  }
  if (const auto* placed = std::get_if<core::OrderPlaced>(&message->payload);
      placed && placed->order.order_id != message->saga_id) {
    return Error{Errc::kInvalidArgument, fmt::format("still fails validation: OrderPlaced with order id {} for saga {}",
                                                     placed->order.order_id, message->saga_id),
                 false};
  }
  return core::Status::Ok();
}

int RunDlqList(const DlqOptions& o, std::ostream& out, std::ostream& err) {
  auto letters = ReadLetters(o);
  if (!letters.ok()) {
    err << "sagaflow dlq list: " << letters.error().message << '\n';
    return kExitBadInput;
  }
  int64_t shown = 0;
  if (!o.json) {
    out << fmt::format("{:<10} {:<25} {:<13} {:<38} {:<8} {}\n", "id", "time", "service", "source (topic[partition]@offset)",
                       "key", "reason");
  }
  for (const Letter& l : letters.value()) {
    if (!Matches(o, l)) continue;
    ++shown;
    if (o.json) {
      out << LetterJson(l).dump() << '\n';
    } else if (!l.decoded) {
      out << fmt::format("{:<10} {:<25} {:<13} {:<38} {:<8} undecodable dead letter: {}\n", l.id,
                         FormatTime(l.timestamp_ms), "?", "?", "?", l.undecodable);
    } else {
      out << fmt::format("{:<10} {:<25} {:<13} {:<38} {:<8} {}\n", l.id, FormatTime(l.timestamp_ms), l.letter.service,
                         fmt::format("{}[{}]@{}", l.letter.source_topic, l.letter.source_partition,
                                     l.letter.source_offset),
                         l.letter.source_key, l.letter.reason);
    }
  }
  if (!o.json) out << fmt::format("{} dead letter(s){}\n", shown, shown == static_cast<int64_t>(letters->size()) ? "" : fmt::format(" of {}", letters->size()));
  return kExitOk;
}

int RunDlqShow(const DlqOptions& o, const std::string& id, std::ostream& out, std::ostream& err) {
  auto letters = ReadLetters(o);
  if (!letters.ok()) {
    err << "sagaflow dlq show: " << letters.error().message << '\n';
    return kExitBadInput;
  }
  for (const Letter& l : letters.value()) {
    if (l.id != id) continue;
    if (!l.decoded) {
      err << "sagaflow dlq show: dead letter " << id << " itself does not decode: " << l.undecodable << '\n';
      return kExitBadInput;
    }
    const core::DeadLetter& d = l.letter;
    auto message = core::Decode(d.original);
    if (o.json) {
      json j = LetterJson(l);
      if (message.ok()) {
        j["decoded"] = {{"message_id", message->message_id}, {"saga_id", message->saga_id},
                        {"causation_id", message->causation_id}, {"produced_at", FormatTime(message->produced_at_ms)},
                        {"schema_version", message->schema_version}, {"payload", PayloadText(message->payload)}};
      } else {
        j["decode_error"] = message.error().message;
        std::string hex;
        for (unsigned char c : d.original) hex += fmt::format("{:02x}", c);
        j["hex"] = hex;
      }
      out << j.dump() << '\n';
      return kExitOk;
    }
    out << fmt::format("dead letter {} ({})\n  service:  {}\n  reason:   {}\n  source:   {}[{}]@{}\n  key:      {}\n",
                       id, FormatTime(l.timestamp_ms), d.service, d.reason, d.source_topic, d.source_partition,
                       d.source_offset, d.source_key);
    if (message.ok()) {
      out << fmt::format(
          "  original ({} bytes), decoded:\n    message id:  {}\n    saga id:     {}\n    causation:   {}\n"
          "    produced at: {}\n    schema:      {}\n    payload:     {}\n",
          d.original.size(), message->message_id, message->saga_id, message->causation_id,
          FormatTime(message->produced_at_ms), message->schema_version, PayloadText(message->payload));
    } else {
      out << fmt::format("  original ({} bytes) does not decode: {}\n{}", d.original.size(), message.error().message,
                         HexDump(d.original));
    }
    const core::TopicNames topics(o.source.topic_prefix);
    auto valid = ValidateForRedrive(topics, d);
    out << "  re-drive: " << (valid.ok() ? "possible" : "refused, " + valid.error().message) << '\n';
    return kExitOk;
  }
  err << "sagaflow dlq show: no dead letter " << id << " in " << core::TopicNames(o.source.topic_prefix).dlq
      << " (ids are PARTITION:OFFSET, see 'sagaflow dlq list')\n";
  return kExitBadInput;
}

int RunDlqRedrive(const DlqOptions& o, const std::vector<std::string>& ids, bool all, std::ostream& out,
                  std::ostream& err) {
  if (ids.empty() && !all) {
    err << "sagaflow dlq redrive: name dead letters (PARTITION:OFFSET) or pass --all\n";
    return kExitBadInput;
  }
  auto letters = ReadLetters(o);
  if (!letters.ok()) {
    err << "sagaflow dlq redrive: " << letters.error().message << '\n';
    return kExitBadInput;
  }
  std::vector<const Letter*> selected;
  if (all) {
    for (const Letter& l : letters.value()) {
      if (Matches(o, l)) selected.push_back(&l);
    }
  } else {
    for (const std::string& id : ids) {
      const Letter* found = nullptr;
      for (const Letter& l : letters.value()) {
        if (l.id == id) found = &l;
      }
      if (found == nullptr) {
        err << "sagaflow dlq redrive: no dead letter " << id << " (ids are PARTITION:OFFSET, see 'sagaflow dlq list')\n";
        return kExitBadInput;
      }
      selected.push_back(found);
    }
  }
  const core::TopicNames topics(o.source.topic_prefix);
  const auto config = ConfigOf(o.source);
  const std::string marker_topic = RedrivenTopic(topics);
  if (auto s = kafka::CreateTopics(config, {core::TopicSpec{marker_topic, 1, true, false}}, std::chrono::seconds(30));
      !s.ok()) {
    err << "sagaflow dlq redrive: " << s.error().message << '\n';
    return kExitBadInput;
  }
  // Open (and so fence any other run) before reading the markers.
  auto producer = kafka::TransactionalProducer::Open(config, o.source.topic_prefix + "sagaflow-dlq-redrive",
                                                     std::chrono::seconds(30));
  if (!producer.ok()) {
    err << "sagaflow dlq redrive: " << producer.error().message << '\n';
    return kExitBadInput;
  }
  std::map<std::string, std::string> done;  // id -> where it went, when
  core::Result<kafka::OffsetMap> read = kafka::OffsetMap{};
  // A marker topic created a moment ago may not have a leader yet: retry that, briefly.
  for (int attempt = 0; attempt < 20; ++attempt) {
    done.clear();
    read = kafka::ReadToEnd(config, marker_topic, {}, [&](const kafka::Record& record) {
      auto message = core::Decode(record.value);
      const auto* marker = message.ok() ? std::get_if<core::DeadLetter>(&message->payload) : nullptr;
      done[record.key] = marker ? marker->source_topic + " at " + FormatTime(message->produced_at_ms) : "?";
    });
    if (read.ok() || !read.error().retryable) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  if (!read.ok()) {
    err << "sagaflow dlq redrive: " << read.error().message << '\n';
    return kExitBadInput;
  }
  auto& tx = *producer.value();
  if (auto s = tx.Begin(); !s.ok()) {
    err << "sagaflow dlq redrive: " << s.error().message << '\n';
    return kExitBadInput;
  }
  int refused = 0, redriven = 0;
  std::vector<std::string> lines;
  for (const Letter* l : selected) {
    if (!l->decoded) {
      ++refused;
      lines.push_back(l->id + ": refused, the dead letter itself does not decode: " + l->undecodable);
      continue;
    }
    if (auto it = done.find(l->id); it != done.end()) {
      lines.push_back(l->id + ": already re-driven (to " + it->second + "), skipped");
      continue;
    }
    if (auto valid = ValidateForRedrive(topics, l->letter); !valid.ok()) {
      ++refused;
      lines.push_back(l->id + ": refused, " + valid.error().message);
      continue;
    }
    core::Message marker;
    marker.message_id = "redrive-" + l->id;
    marker.produced_at_ms = core::NowMs();
    marker.payload = core::DeadLetter{"re-driven", l->letter.source_topic, l->letter.source_partition,
                                      l->letter.source_offset, l->letter.source_key, "", "sagaflow dlq redrive"};
    core::Status s = tx.Produce(l->letter.source_topic, l->letter.source_key, l->letter.original);
    if (s.ok()) s = tx.Produce(marker_topic, l->id, core::Encode(marker));
    if (!s.ok()) {
      (void)tx.Abort();
      err << "sagaflow dlq redrive: " << s.error().message << " (nothing was re-driven)\n";
      return kExitBadInput;
    }
    done[l->id] = l->letter.source_topic;
    ++redriven;
    lines.push_back(fmt::format("{}: re-driven to {} (key {})", l->id, l->letter.source_topic, l->letter.source_key));
  }
  if (auto committed = tx.Commit(); !committed.ok()) {
    (void)tx.Abort();
    err << "sagaflow dlq redrive: " << committed.error().message << " (nothing was re-driven)\n";
    return kExitBadInput;
  }
  for (const auto& line : lines) out << line << '\n';
  out << fmt::format("{} re-driven, {} refused, {} already re-driven\n", redriven, refused,
                     selected.size() - static_cast<size_t>(redriven + refused));
  return refused > 0 ? kExitFindings : kExitOk;
}

}  // namespace sagaflow::replay
