#include "sagaflow/warehouse/warehouse_service.hpp"

#include <condition_variable>
#include <future>
#include <map>
#include <mutex>

#include "sagaflow/runtime/global_view.hpp"
#include "sagaflow/warehouse/restock_keys.hpp"

namespace sagaflow::warehouse {
namespace {

using core::ReservationState;
using nlohmann::json;
using runtime::HttpError;
using runtime::HttpRequest;
using runtime::HttpResponse;

constexpr auto kRestockTimeout = std::chrono::seconds(10);
// How long a read waits for the views to hold what was committed before it.
constexpr auto kViewCatchUp = std::chrono::seconds(2);
// Bounds of a reservation command: what the REST edge accepts, with room.
constexpr size_t kMaxLines = 1000;
constexpr int64_t kMaxQuantity = 1'000'000'000;
constexpr int64_t kMaxRestock = 1'000'000'000'000;

json StockToJson(const core::StockLevel& s) {
  return {{"item_id", s.item_id}, {"available", s.available}, {"reserved", s.reserved}};
}

const char* StateName(ReservationState state) {
  static const char* kStates[] = {"unknown", "reserved", "rejected", "released"};
  return kStates[static_cast<int>(state)];
}

// POST /stock: restocks to send to the items' owners, each as a Restock record.
using RestockQueue = runtime::LocalQueue<std::vector<core::Restock>, bool>;

class WarehouseService final : public runtime::Participant {
 public:
  WarehouseService(runtime::ServiceOptions options, WarehouseOptions warehouse)
      : Participant("warehouse", core::Service::kWarehouse, std::move(options), warehouse.participant),
        default_stock_(warehouse.default_stock),
        stock_{topics().warehouse_stock, "stock"},
        reservations_{topics().warehouse_reservations, "reservation"} {
    metrics().Describe("restocks_total", "Restock records applied by the item's owner");
    metrics().Describe("restocks_duplicate_total",
                       "Restock records skipped by the item's owner: their Idempotency-Key was applied already");
  }

  ~WarehouseService() override { Stop(); }

  std::vector<std::string> InputTopics() const override {
    return {topics().warehouse_reserve, topics().warehouse_cancel, topics().warehouse_restock};
  }
  std::vector<runtime::Changelog> Changelogs() const override { return {stock_, reservations_}; }
  bool Handles(core::Step step) const override {
    return step == core::Step::kReserveStock || step == core::Step::kReleaseStock;
  }
  bool MayFail(core::Step step) const override { return step == core::Step::kReserveStock; }
  bool TakesLegs(core::Step step) const override { return Handles(step); }

  std::string InvalidCommand(const core::StepCommand& command) const override {
    if (command.leg == core::kNoLeg) {
      // A release for the order as a whole is answered (nothing is held that
      // way); a reservation must name its item.
      if (command.step != core::Step::kReserveStock) return {};
      return "a reservation is made per item: the command needs a leg (the item id), keyed by it";
    }
    if (command.leg < 0) return "leg must be an item id (>= 0), got " + std::to_string(command.leg);
    if (command.step != core::Step::kReserveStock) return {};  // a release uses the recorded reservation
    const auto& items = command.order.items;
    if (items.empty()) return "a reservation needs at least one item";
    if (items.size() > kMaxLines) return "a reservation has at most " + std::to_string(kMaxLines) + " items";
    for (const auto& i : items) {
      if (i.item_id != command.leg) {
        return "the leg of item " + std::to_string(command.leg) + " carries a line of item " +
               std::to_string(i.item_id);
      }
      if (i.quantity < 1 || i.quantity > kMaxQuantity) {
        return "quantity of item " + std::to_string(i.item_id) + " must be from 1 to " +
               std::to_string(kMaxQuantity) + ", got " + std::to_string(i.quantity);
      }
    }
    return {};
  }

  /// Why a decoded restock record with key `key` must not be applied ("" when it may).
  static std::string InvalidRestock(std::string_view key, const core::Message& message) {
    const auto* restock = std::get_if<core::Restock>(&message.payload);
    if (restock == nullptr) return "expected a Restock, got " + std::string(core::PayloadName(message.payload));
    if (restock->item_id < 0) return "item id must not be negative, got " + std::to_string(restock->item_id);
    if (restock->quantity < 1 || restock->quantity > kMaxRestock) {
      return "restock quantity must be from 1 to 10^12, got " + std::to_string(restock->quantity);
    }
    if (restock->idempotency_key.size() > runtime::kMaxIdempotencyKey) {
      return "Idempotency-Key is longer than " + std::to_string(runtime::kMaxIdempotencyKey) + " characters";
    }
    if (key != core::ItemKey(restock->item_id)) {
      return "record key '" + std::string(key) + "' is not the item id " + std::to_string(restock->item_id);
    }
    return {};
  }

  int64_t default_stock() const { return default_stock_; }
  const runtime::Changelog& stock() const { return stock_; }
  const runtime::Changelog& reservations() const { return reservations_; }
  RestockQueue& restocks() { return restocks_; }

 protected:
  std::unique_ptr<runtime::ServiceTask> CreateTask(int32_t task) override;

  // The stock and the reservations of every item, whichever instance owns it:
  // read-only views of the two changelogs over all their partitions, kept in
  // this instance's store next to (not mixed with) its tasks' state.
  core::Status BeforeServing() override {
    for (auto* view : {&stock_view_, &reservations_view_}) {
      if (*view) (*view)->Stop();
      view->reset();
    }
    stock_view_ = std::make_unique<runtime::GlobalView>(
        runtime::GlobalViewOptions{.kafka = kafka_config(),
                                   .topic = stock_.topic,
                                   .table = "view-stock",
                                   .on_applied = [this](const std::vector<kafka::Record>&) { StockViewMoved(); }},
        mutable_store());
    reservations_view_ = std::make_unique<runtime::GlobalView>(
        runtime::GlobalViewOptions{
            .kafka = kafka_config(), .topic = reservations_.topic, .table = "view-reservation"},
        mutable_store());
    if (auto s = stock_view_->Start(); !s.ok()) return s;
    return reservations_view_->Start();
  }
  void AfterStopping() override {
    if (stock_view_) stock_view_->Stop();
    if (reservations_view_) reservations_view_->Stop();
  }

  void AddParticipantRoutes(runtime::HttpServer& http) override {
    // Reads wait (briefly) until the view holds what was committed before
    // them: a client that saw its order end sees its reservation.
    http.Route("GET", "/stock", [this](const HttpRequest&) {
      const bool caught_up = stock_view_->CatchUp(kViewCatchUp).ok();
      json items = json::array();
      stock_view_->Scan("", [&](std::string_view, std::string_view value) {
        items.push_back(StockToJson(*runtime::DecodeStored<core::StockLevel>(std::string(value))));
        return true;
      });
      return HttpResponse::Json({{"items", items}, {"default_stock", default_stock_}, {"up_to_date", caught_up}});
    });
    http.Route("POST", "/stock", [this](const HttpRequest& req) { return PostStock(req); });
    http.Route("GET", R"(/reservations/(\d+))", [this](const HttpRequest& req) {
      (void)reservations_view_->CatchUp(kViewCatchUp);
      std::vector<core::Reservation> legs;
      reservations_view_->Scan(req.captures[0] + "/", [&](std::string_view, std::string_view value) {
        legs.push_back(*runtime::DecodeStored<core::Reservation>(std::string(value)));
        return true;
      });
      return ReservationsToJson(req.captures[0], legs);
    });
  }

 private:
  // One entry per item (a leg of the order's reservation); "state" is the
  // legs' common state, or "mixed" while they differ.
  static HttpResponse ReservationsToJson(const std::string& order, const std::vector<core::Reservation>& legs) {
    if (legs.empty()) return HttpResponse::Error(404, "no reservation for order " + order);
    json items = json::array();
    json by_leg = json::array();
    std::string state = StateName(legs.front().state);
    for (const auto& r : legs) {
      if (StateName(r.state) != state) state = "mixed";
      for (const auto& i : r.items) items.push_back({{"item_id", i.item_id}, {"quantity", i.quantity}});
      by_leg.push_back({{"item_id", r.item_id}, {"state", StateName(r.state)}, {"detail", r.detail}});
    }
    return HttpResponse::Json({{"order_id", legs.front().order_id},
                               {"state", state},
                               {"items", items},
                               {"legs", by_leg},
                               {"detail", legs.size() == 1 ? legs.front().detail : std::string()}});
  }

  HttpResponse PostStock(const HttpRequest& req) {
    if (auto denied = DenyUnlessAdmin(req)) return *denied;
    const std::string key = runtime::IdempotencyKey(req);
    auto body = runtime::ParseJsonBody(req);
    json list = body.contains("items") ? body["items"] : json::array({body});
    if (!list.is_array() || list.empty()) throw HttpError{400, "\"items\" must be a non-empty array"};
    std::vector<core::Restock> restocks;
    for (const auto& i : list) {
      if (!i.is_object() || !i.contains("item_id") || !i["item_id"].is_number_integer() || !i.contains("quantity") ||
          !i["quantity"].is_number_integer()) {
        throw HttpError{400, "each item needs integer \"item_id\" and \"quantity\", e.g. {\"item_id\":10,\"quantity\":100}"};
      }
      const auto id = i["item_id"].get<int64_t>();
      const auto quantity = i["quantity"].get<int64_t>();
      if (id < 0 || quantity < 1 || quantity > kMaxRestock) {
        throw HttpError{400, "item_id must be >= 0 and quantity from 1 to 10^12"};
      }
      restocks.push_back({id, quantity});
    }
    if (!key.empty()) return PostKeyedStock(key, MergeRestocks(restocks));
    json accepted = json::array();
    for (const auto& r : restocks) accepted.push_back({{"item_id", r.item_id}, {"quantity", r.quantity}});
    // A task of this instance records the restocks (one record per item,
    // keyed by it); each item's owner applies its own, whichever instance runs it.
    auto future = restocks_.Push(std::move(restocks));
    WakeTasks();
    if (future.wait_for(kRestockTimeout) != std::future_status::ready) {
      return HttpResponse::Error(503, "the restock was not recorded within 10 s (Kafka is unavailable or this "
                                      "instance owns no partition yet) and may still be applied later: check "
                                      "GET /stock before sending it again (a request with an Idempotency-Key may be retried safely)");
    }
    future.get();
    return HttpResponse::Json({{"accepted", accepted},
                               {"detail", "recorded; each item's owner applies it in moments (see GET /stock)"}},
                              202);
  }

  // POST /stock with an Idempotency-Key (see restock_keys.hpp): sends what
  // the items do not hold yet, then waits (within kRestockTimeout) until the
  // stock view shows the key on every item. 200 once applied (the same answer
  // to every retry), 202 when recorded but not seen applied in time, 422 for
  // a key used for a different restock, 503 when nothing could be recorded.
  HttpResponse PostKeyedStock(const std::string& key, const std::vector<core::Restock>& merged) {
    const auto deadline = std::chrono::steady_clock::now() + kRestockTimeout;
    const uint64_t hash = RestockRequestHash(merged);
    const std::string retry = "; retry with the same Idempotency-Key (it restocks each item once)";
    if (auto s = stock_view_->CatchUp(kViewCatchUp); !s.ok()) {
      return HttpResponse::Error(503, "the stock view could not catch up (" + s.error().message + ")" + retry);
    }
    auto plan = PlanKeyedRestock(merged, key, hash, AppliedUnder(key));
    if (!plan.conflict.empty()) return HttpResponse::Error(422, plan.conflict);
    if (!plan.to_send.empty()) {
      auto future = restocks_.Push(std::move(plan.to_send));
      WakeTasks();
      if (future.wait_until(deadline) != std::future_status::ready) {
        return HttpResponse::Error(503, "the restock was not recorded within 10 s (Kafka is unavailable or this "
                                        "instance owns no partition yet) and may still be applied later" + retry);
      }
      future.get();
    }
    json items = json::array();
    for (const auto& r : merged) items.push_back({{"item_id", r.item_id}, {"quantity", r.quantity}});
    while (true) {
      const uint64_t seen = StockViewGeneration();
      plan = PlanKeyedRestock(merged, key, hash, AppliedUnder(key));
      if (!plan.conflict.empty()) return HttpResponse::Error(422, plan.conflict);
      if (plan.to_send.empty()) {
        return HttpResponse::Json({{"applied", items}, {"idempotency_key", key}, {"detail", "restocked once under the key"}});
      }
      if (!WaitForStockView(seen, deadline)) {
        return HttpResponse::Json({{"accepted", items},
                                   {"idempotency_key", key},
                                   {"detail", "recorded, not applied yet by every item's owner" + retry +
                                                  " to learn when it is (200)"}},
                                  202);
      }
    }
  }

  // Item -> request hash, for every item of the stock view that holds `key`.
  std::map<core::ItemId, uint64_t> AppliedUnder(std::string_view key) const {
    std::map<core::ItemId, uint64_t> out;
    stock_view_->Scan("", [&](std::string_view, std::string_view value) {
      auto level = runtime::DecodeStored<core::StockLevel>(std::string(value));
      if (level) {
        for (const auto& a : level->restocks) {
          if (a.key == key) out[level->item_id] = a.request_hash;
        }
      }
      return true;
    });
    return out;
  }

  void StockViewMoved() {
    {
      std::lock_guard lock(view_mu_);
      ++view_generation_;
    }
    view_cv_.notify_all();
  }
  uint64_t StockViewGeneration() {
    std::lock_guard lock(view_mu_);
    return view_generation_;
  }
  // Waits until the stock view stored a batch after generation `seen`; false at the deadline.
  bool WaitForStockView(uint64_t seen, std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(view_mu_);
    return view_cv_.wait_until(lock, deadline, [&] { return view_generation_ != seen; });
  }

  const int64_t default_stock_;
  const runtime::Changelog stock_;
  const runtime::Changelog reservations_;
  RestockQueue restocks_;
  std::unique_ptr<runtime::GlobalView> stock_view_;
  std::unique_ptr<runtime::GlobalView> reservations_view_;
  std::mutex view_mu_;
  std::condition_variable view_cv_;
  uint64_t view_generation_ = 0;
};

// Reserves and releases the stock of the items of its partition, one leg
// (order, item) at a time, and applies their restocks. Stock and reservations
// are keyed so that an item's state lives in the item's partition: the task
// that owns the partition owns the item.
class WarehouseTask final : public runtime::ParticipantTask {
 public:
  WarehouseTask(WarehouseService& service, int32_t task);

 protected:
  void OnRecords(std::span<const kafka::Record> records, core::TxContext& tx) override {
    std::vector<kafka::Record> commands;
    for (const auto& record : records) {
      if (record.topic == topics().warehouse_restock) {
        ApplyRestockRecord(tx, record);
      } else {
        commands.push_back(record);
      }
    }
    if (!commands.empty()) ParticipantTask::OnRecords(commands, tx);
  }

  std::optional<core::StepReply> Recorded(const core::StepCommand& command) override {
    if (command.leg == core::kNoLeg) {
      // A release for the whole order (InvalidCommand lets no other legless command through).
      return core::StepReply{command.step, command.attempt, true,
                             "nothing is reserved for an order as a whole (stock is reserved per item)"};
    }
    auto r = Reservation(command.order.order_id, command.leg);
    if (!r) return std::nullopt;
    if (command.step == core::Step::kReserveStock) {
      if (r->state == ReservationState::kReleased && r->released_without_reserve) {
        return core::StepReply{command.step, command.attempt, false,
                               "order " + std::to_string(r->order_id) + " item " + std::to_string(command.leg) +
                                   " was cancelled before stock was reserved"};
      }
      return core::StepReply{command.step, command.attempt, r->reply_ok, r->detail};
    }
    // Release: answered once the reservation is released (or was never made).
    if (r->state == ReservationState::kReleased) return core::StepReply{command.step, command.attempt, true, r->detail};
    return std::nullopt;
  }

  core::StepReply Execute(core::TxContext& tx, const core::StepCommand& command, bool fail_on_purpose) override {
    return command.step == core::Step::kReserveStock ? Reserve(tx, command, fail_on_purpose) : Release(tx, command);
  }

  void OnIdle(core::TxContext& tx) override {
    ParticipantTask::OnIdle(tx);
    for (auto& item : service_.restocks().Drain()) {
      for (const auto& restock : item.request) {
        core::Message m{NewMessageId("restock", 0), 0, "", core::NowMs(), 1, restock};  // carries the key, if any
        Emit(tx, topics().warehouse_restock, core::ItemKey(restock.item_id), m);
      }
      in_flight_.push_back(std::move(item));
    }
  }

  void OnCommittedHook(const std::vector<kafka::Delivered>&) override {
    for (auto& item : in_flight_) item.promise->set_value(true);
    in_flight_.clear();
  }

  void OnAbortedHook() override {
    ParticipantTask::OnAbortedHook();
    service_.restocks().Requeue(std::move(in_flight_));
    in_flight_.clear();
  }

 private:
  void ApplyRestockRecord(core::TxContext& tx, const kafka::Record& record) {
    auto message = DecodeOrDeadLetter(tx, record);
    if (!message) return;
    std::string bad = WarehouseService::InvalidRestock(record.key, *message);
    if (bad.empty() && !Owns(record.key)) {
      bad = "key '" + record.key + "' does not belong to partition " + std::to_string(record.partition) +
            " (records must be partitioned by Kafka's murmur2 of the key)";
    }
    if (!bad.empty()) {
      DeadLetter(tx, record, bad);
      return;
    }
    const auto& restock = std::get<core::Restock>(message->payload);
    auto level = Stock(restock.item_id);
    switch (ClassifyRestock(level, restock)) {
      case KeyedRestock::kDuplicate:
        metrics().Add("restocks_duplicate_total");
        log().info("restock of item {} under Idempotency-Key '{}' was applied already: skipped", restock.item_id,
                   restock.idempotency_key);
        return;
      case KeyedRestock::kConflict:
        DeadLetter(tx, record,
                   "Idempotency-Key '" + restock.idempotency_key + "' was applied to item " +
                       std::to_string(restock.item_id) + " for a different restock request");
        return;
      case KeyedRestock::kApply:
        break;
    }
    warehouse::ApplyRestock(level, restock, core::NowMs());
    PutStock(tx, level);
    metrics().Add("restocks_total");
    log().info("restocked item {} by {}{}: {} available", restock.item_id, restock.quantity,
               restock.idempotency_key.empty() ? "" : " (Idempotency-Key '" + restock.idempotency_key + "')",
               level.available);
  }

  core::StepReply Reserve(core::TxContext& tx, const core::StepCommand& command, bool fail_on_purpose) {
    const auto& order = command.order;
    const core::ItemId item = command.leg;
    core::Reservation r{order.order_id, ReservationState::kRejected, order.items, false, "", core::NowMs(), false,
                        item};
    if (fail_on_purpose) {
      r.detail = "warehouse refused the reservation (failure injected: mistakes=" + std::to_string(participant().mistakes()) + "%)";
    } else {
      // An order may list the same item on several lines: they are one leg.
      int64_t wanted = 0;
      for (const auto& i : order.items) wanted += i.quantity;
      auto level = Stock(item);
      if (level.available < wanted) {
        r.detail = "not enough stock for item " + std::to_string(item) + ": requested " + std::to_string(wanted) +
                   ", available " + std::to_string(level.available);
      } else {
        level.available -= wanted;
        level.reserved += wanted;
        PutStock(tx, level);
        r.state = ReservationState::kReserved;
        r.reply_ok = true;
        r.detail = "reserved " + std::to_string(wanted) + " of item " + std::to_string(item);
      }
    }
    PutReservation(tx, r);
    return {command.step, command.attempt, r.reply_ok, r.detail};
  }

  core::StepReply Release(core::TxContext& tx, const core::StepCommand& command) {
    const core::ItemId item = command.leg;
    auto r = Reservation(command.order.order_id, item);
    if (!r) {
      // The release overtook the reservation (it timed out, or another leg
      // failed first): record it so a late reserve command is refused
      // instead of reserving for a dead saga.
      core::Reservation tomb{command.order.order_id, ReservationState::kReleased, {}, false,
                             "released before any reservation was made", core::NowMs(), true, item};
      PutReservation(tx, tomb);
      return {command.step, command.attempt, true, tomb.detail};
    }
    if (r->state == ReservationState::kReserved) {
      int64_t held = 0;
      for (const auto& i : r->items) held += i.quantity;
      auto level = Stock(item);
      if (level.reserved < held) {
        Quarantine("releasing order " + std::to_string(r->order_id) + " would leave item " + std::to_string(item) +
                   " with a negative reserved count (" + std::to_string(level.reserved) + " reserved, " +
                   std::to_string(held) + " to release)");
        return {command.step, command.attempt, false, ""};
      }
      level.available += held;
      level.reserved -= held;
      PutStock(tx, level);
      r->detail = "reservation released";
    } else {
      r->detail = "nothing was reserved";
    }
    r->state = ReservationState::kReleased;
    r->at_ms = core::NowMs();
    PutReservation(tx, *r);
    return {command.step, command.attempt, true, r->detail};
  }

  core::StockLevel Stock(core::ItemId id) const {
    auto level = runtime::DecodeStored<core::StockLevel>(Get("stock/" + core::ItemKey(id)));
    return level ? *level : core::StockLevel{id, service_.default_stock(), 0};
  }
  std::optional<core::Reservation> Reservation(core::OrderId order, core::ItemId item) const {
    return runtime::DecodeStored<core::Reservation>(Get("reservation/" + core::ReservationKey(order, item)));
  }
  void PutStock(core::TxContext& tx, const core::StockLevel& level) {
    core::Message m{NewMessageId("stock", 0), 0, "", core::NowMs(), 1, level};
    EmitChangelog(tx, service_.stock(), core::ItemKey(level.item_id), m);
  }
  // Keyed "<order>/<item>" but produced to the item's partition (this task's),
  // so the reservation is restored with the item's stock.
  void PutReservation(core::TxContext& tx, const core::Reservation& r) {
    core::Message m{NewMessageId("reservation", r.order_id), r.order_id, "", core::NowMs(), 1, r};
    EmitChangelogTo(tx, service_.reservations(), service_.TaskOfKey(core::ItemKey(r.item_id)),
                    core::ReservationKey(r.order_id, r.item_id), m);
  }

  WarehouseService& service_;
  std::vector<RestockQueue::Item> in_flight_;
};

WarehouseTask::WarehouseTask(WarehouseService& service, int32_t task)
    : ParticipantTask(service, task), service_(service) {}

std::unique_ptr<runtime::ServiceTask> WarehouseService::CreateTask(int32_t task) {
  return std::make_unique<WarehouseTask>(*this, task);
}

}  // namespace

std::unique_ptr<runtime::Participant> MakeWarehouse(runtime::ServiceOptions options, WarehouseOptions warehouse) {
  return std::make_unique<WarehouseService>(std::move(options), warehouse);
}

}  // namespace sagaflow::warehouse
