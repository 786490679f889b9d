#pragma once
/// Domain types shared by every sagaflow module: orders, steps, statuses and
/// the messages that travel between services. Plain values; no I/O.
/// The wire form of each type is in schemas/sagaflow.fbs; core/codec.hpp converts.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace sagaflow::core {

/// An order id is also the saga id and the Kafka key of every record of the saga.
using OrderId = int64_t;
using ItemId = int64_t;
/// Milliseconds since the Unix epoch.
using TimeMs = int64_t;
/// The key of one leg of a fanned-out step (see StepDefinition::fan_out): the
/// item id for a step fanned out per item. kNoLeg: a step sent as one command.
using LegKey = int64_t;
inline constexpr LegKey kNoLeg = -1;

/// Reference codes: 1 card, 2 SBP.
enum class PaymentType : int8_t { kUnknown = 0, kCard = 1, kSbp = 2 };
/// Reference codes: 1 email, 2 SMS.
enum class NotificationType : int8_t { kUnknown = 0, kEmail = 1, kSms = 2 };
/// Reference codes: 1 New, 2 Process, 3 OK, 4 NOT OK, 5 Canceled.
enum class OrderStatus : int8_t { kUnknown = 0, kNew = 1, kProcess = 2, kOk = 3, kNotOk = 4, kCanceled = 5 };
/// Whether an order with status `s` has ended (OK or NOT OK).
inline bool IsFinal(OrderStatus s) { return s == OrderStatus::kOk || s == OrderStatus::kNotOk; }
/// A saga step; compensations are steps too.
enum class Step : int8_t { kUnknown = 0, kReserveStock = 1, kCharge = 2, kNotify = 3, kReleaseStock = 4 };
/// Reference service ids: 1 warehouse, 2 payment, 3 notification.
enum class Service : int8_t { kNone = 0, kWarehouse = 1, kPayment = 2, kNotification = 3 };

std::string_view ToString(OrderStatus status);   // "NEW", "PROCESS", "OK", "NOT OK", ...
std::string_view ToString(Step step);            // "reserve_stock", "charge", ...
std::string_view ToString(Service service);      // "warehouse", "payment", "notification"
Service ServiceOf(Step step);

struct Item {
  ItemId item_id = 0;
  int32_t quantity = 0;
  int64_t price = 0;
  bool operator==(const Item&) const = default;
};

struct Order {
  OrderId order_id = 0;
  int64_t user_id = 0;
  PaymentType payment = PaymentType::kUnknown;
  NotificationType notification = NotificationType::kUnknown;
  std::string created_at;
  std::string approved_at;
  int64_t sum = 0;
  std::vector<Item> items;
  bool operator==(const Order&) const = default;
};

/// One step taken by a saga: what was asked, what came back.
struct StepRecord {
  Step step = Step::kUnknown;
  int32_t attempt = 0;
  bool ok = false;
  TimeMs at_ms = 0;
  std::string detail;
  /// The leg that answered, for a fanned-out step.
  LegKey leg = kNoLeg;
  bool operator==(const StepRecord&) const = default;
};

// ---- commands and replies ----
struct OrderPlaced {
  Order order;
  bool operator==(const OrderPlaced&) const = default;
};
struct StepCommand {
  Step step = Step::kUnknown;
  int32_t attempt = 0;
  /// For a leg of a fanned-out step: only the leg's lines of the order.
  Order order;
  /// The leg this command is for (kNoLeg: the whole step). A leg's command is
  /// keyed by the leg (the item id), not by the saga.
  LegKey leg = kNoLeg;
  bool operator==(const StepCommand&) const = default;
};
struct StepReply {
  Step step = Step::kUnknown;
  int32_t attempt = 0;
  bool ok = false;
  std::string detail;
  /// The leg answered (the command's leg).
  LegKey leg = kNoLeg;
  bool operator==(const StepReply&) const = default;
};
struct FinalStatus {
  OrderStatus status = OrderStatus::kUnknown;
  std::string detail;
  std::vector<StepRecord> steps;
  bool operator==(const FinalStatus&) const = default;
};

// ---- saga aggregate events ----
struct SagaStarted {
  Order order;
  bool operator==(const SagaStarted&) const = default;
};
struct StepRequested {
  Step step = Step::kUnknown;
  int32_t attempt = 0;
  TimeMs deadline_ms = 0;
  /// For a fanned-out step: the legs this attempt was sent to, one command
  /// each (a retry goes to the legs still unanswered). Empty: one command.
  std::vector<LegKey> legs;
  bool operator==(const StepRequested&) const = default;
};
/// What a reply or a timeout did to the saga. Decided by Decide and recorded
/// in the event, so that Apply needs no configuration to fold it.
/// kUnrecorded: an event written before schema version 2 (Apply then derives
/// the outcome from the saga definition, as those versions did).
enum class StepOutcome : int8_t {
  kUnrecorded = 0,
  kSucceeded = 1,     // a forward step succeeded
  kRetry = 2,         // a timeout with attempts left: the same step is asked again
  kNoted = 3,         // a retriable step failed for good: noted, the saga carries on
  kCompensate = 4,    // the saga starts compensating; `compensations` is the plan
  kAcknowledged = 5,  // a compensation was acknowledged
  kLegAnswered = 6,   // one leg of a fanned-out step answered; the step still waits for others
};
std::string_view ToString(StepOutcome outcome);  // "unrecorded", "succeeded", "retry", ...

struct StepReplied {
  Step step = Step::kUnknown;
  int32_t attempt = 0;
  bool ok = false;
  std::string detail;
  StepOutcome outcome = StepOutcome::kUnrecorded;
  /// With kCompensate: the compensations to run, in order.
  std::vector<Step> compensations;
  /// The leg that answered, for a fanned-out step.
  LegKey leg = kNoLeg;
  bool operator==(const StepReplied&) const = default;
};
struct StepTimedOut {
  Step step = Step::kUnknown;
  int32_t attempt = 0;
  StepOutcome outcome = StepOutcome::kUnrecorded;
  /// With kCompensate: the compensations to run, in order.
  std::vector<Step> compensations;
  bool operator==(const StepTimedOut&) const = default;
};
struct SagaEnded {
  OrderStatus status = OrderStatus::kUnknown;
  std::string detail;
  bool operator==(const SagaEnded&) const = default;
};
using SagaEventBody = std::variant<SagaStarted, StepRequested, StepReplied, StepTimedOut, SagaEnded>;
struct SagaEvent {
  TimeMs at_ms = 0;
  SagaEventBody body;
  bool operator==(const SagaEvent&) const = default;
};
/// The events one decision recorded, in order, carried by one record: what the
/// orchestrator writes (earlier versions wrote one SagaEvent record per event;
/// readers accept both). Never empty on the wire.
struct SagaEvents {
  std::vector<SagaEvent> events;
  bool operator==(const SagaEvents&) const = default;
};

// ---- participant changelog records (full latest state of their key) ----
/// An Idempotency-Key of POST /stock applied to an item, with the hash of
/// the request it came with.
struct AppliedRestock {
  std::string key;
  uint64_t request_hash = 0;
  TimeMs at_ms = 0;
  bool operator==(const AppliedRestock&) const = default;
};
struct StockLevel {
  ItemId item_id = 0;
  int64_t available = 0;
  int64_t reserved = 0;
  /// The Idempotency-Keys applied to the item, oldest first (bounded by the warehouse).
  std::vector<AppliedRestock> restocks;
  bool operator==(const StockLevel&) const = default;
};
enum class ReservationState : int8_t { kUnknown = 0, kReserved = 1, kRejected = 2, kReleased = 3 };
/// orders.warehouse.reservations: one per (order, item), keyed so that it
/// lives in the item's partition (core::ReservationKey).
struct Reservation {
  OrderId order_id = 0;
  ReservationState state = ReservationState::kUnknown;
  std::vector<Item> items;
  bool reply_ok = false;
  std::string detail;
  TimeMs at_ms = 0;
  bool released_without_reserve = false;
  /// The item this reservation is for (kNoLeg: a whole-order reservation of
  /// an earlier version).
  LegKey item_id = kNoLeg;
  bool operator==(const Reservation&) const = default;
};
/// A restock command (orders.warehouse.restock, key = item id): add
/// `quantity` to the item's available stock. Executed by the item's owner.
/// With a non-empty `idempotency_key` the owner applies it at most once per
/// (item, key); `request_hash` identifies the whole request under that key.
struct Restock {
  ItemId item_id = 0;
  int64_t quantity = 0;
  std::string idempotency_key;
  uint64_t request_hash = 0;
  bool operator==(const Restock&) const = default;
};
struct Payment {
  OrderId order_id = 0;
  int64_t user_id = 0;
  int64_t amount = 0;
  PaymentType payment = PaymentType::kUnknown;
  bool ok = false;
  std::string detail;
  TimeMs at_ms = 0;
  bool operator==(const Payment&) const = default;
};
struct Notification {
  OrderId order_id = 0;
  int64_t user_id = 0;
  NotificationType channel = NotificationType::kUnknown;
  bool ok = false;
  std::string detail;
  TimeMs at_ms = 0;
  bool operator==(const Notification&) const = default;
};
struct OrderRecord {
  Order order;
  OrderStatus status = OrderStatus::kUnknown;
  std::string detail;
  std::vector<StepRecord> steps;
  TimeMs accepted_at_ms = 0;
  TimeMs finished_at_ms = 0;
  std::string idempotency_key;
  bool operator==(const OrderRecord&) const = default;
};
struct DeadLetter {
  std::string reason;
  std::string source_topic;
  int32_t source_partition = 0;
  int64_t source_offset = 0;
  std::string source_key;
  std::string original;
  std::string service;
  bool operator==(const DeadLetter&) const = default;
};

// ---- the saga aggregate's state (folded by saga_aggregate.hpp; snapshotted to orders.saga.state) ----
enum class SagaPhase : int8_t { kNotStarted = 0, kForward = 1, kCompensating = 2, kEnded = 3 };
std::string_view ToString(SagaPhase phase);  // "not_started", "running", "compensating", "ended"

/// The request a saga is waiting on (sagas are sequential: at most one step;
/// a fanned-out step waits on each of its legs, see SagaState::legs).
struct PendingRequest {
  Step step = Step::kUnknown;
  int32_t attempt = 0;
  TimeMs deadline_ms = 0;
  bool operator==(const PendingRequest&) const = default;
};

/// What became of one leg of a fanned-out step (forward or compensation).
enum class LegStatus : int8_t { kAwaited = 0, kSucceeded = 1, kFailed = 2 };
struct LegRecord {
  Step step = Step::kUnknown;
  LegKey leg = kNoLeg;
  /// Answered OK (kSucceeded) or NOT OK (kFailed); a compensation's leg is
  /// acknowledged by either answer.
  LegStatus status = LegStatus::kAwaited;
  bool operator==(const LegRecord&) const = default;
};

/// Everything known about one saga; the fold of its events.
struct SagaState {
  OrderId order_id = 0;
  Order order;
  SagaPhase phase = SagaPhase::kNotStarted;
  std::optional<PendingRequest> pending;
  /// Forward steps that succeeded, in order.
  std::vector<Step> succeeded;
  /// Compensations still to run, in the order they will run.
  std::vector<Step> to_compensate;
  /// Why the saga is compensating (becomes the NOT OK detail).
  std::string failure;
  /// Failures that do not fail the saga (kRetriable steps), in order.
  std::vector<std::string> notes;
  /// Every reply and timeout, in order (shown by GET /orders/{id}).
  std::vector<StepRecord> history;
  OrderStatus status = OrderStatus::kUnknown;  // kProcess while running
  std::string detail;
  TimeMs started_at_ms = 0;
  TimeMs ended_at_ms = 0;
  /// Number of events applied.
  int64_t version = 0;
  /// The legs of the fanned-out steps requested so far, in request order.
  std::vector<LegRecord> legs;
  bool operator==(const SagaState&) const = default;
};

using Payload = std::variant<OrderPlaced, StepCommand, StepReply, FinalStatus, SagaEvent, StockLevel, Reservation,
                             Payment, Notification, OrderRecord, DeadLetter, SagaState, Restock, SagaEvents>;

/// The saga events a payload carries, in order: one for a SagaEvent, all of a
/// SagaEvents, none for any other payload. Points into `payload`.
std::span<const SagaEvent> SagaEventsOf(const Payload& payload);

/// The envelope every Kafka record value carries.
struct Message {
  std::string message_id;
  OrderId saga_id = 0;
  std::string causation_id;
  TimeMs produced_at_ms = 0;
  uint16_t schema_version = 1;
  Payload payload;
  /// On a saga snapshot: every saga in flight when it was written has its
  /// first event at or after this offset of its saga-events partition (-1: not said).
  int64_t events_watermark = -1;
  bool operator==(const Message&) const = default;
};

/// Wall-clock now in milliseconds since the epoch.
TimeMs NowMs();

}  // namespace sagaflow::core
