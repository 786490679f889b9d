#include "sagaflow/warehouse/warehouse_service.hpp"

#include <future>

namespace sagaflow::warehouse {
namespace {

using core::ReservationState;
using nlohmann::json;
using runtime::HttpError;
using runtime::HttpRequest;
using runtime::HttpResponse;

constexpr auto kRestockTimeout = std::chrono::seconds(10);
// Bounds of a reservation command: what the REST edge accepts, with room.
constexpr size_t kMaxLines = 1000;
constexpr int64_t kMaxQuantity = 1'000'000'000;

struct Restock {
  std::vector<std::pair<core::ItemId, int64_t>> items;
  /// The client's Idempotency-Key ("" without one).
  std::string key;
};

/// What a restock request got: 200 and the levels after it (the first
/// answer again for a repeated key), or 422 for a key used with other items.
struct RestockOutcome {
  int status = 200;
  std::vector<core::StockLevel> levels;
  std::string error;
};

json StockToJson(const core::StockLevel& s) {
  return {{"item_id", s.item_id}, {"available", s.available}, {"reserved", s.reserved}};
}

using RestockQueue = runtime::LocalQueue<Restock, RestockOutcome>;

// A restock with an Idempotency-Key is recorded in the reservations changelog
// (in the transaction that applies it) under "restock:<key>", as a reservation
// of no order whose detail holds the request and the levels it left, so that
// a retry (after a 503, or after a restart) answers the same without
// restocking twice, and a key reused with other items is refused.
std::string RestockRecordKey(const std::string& key) { return "restock:" + key; }

json RequestJson(const Restock& r) {
  json items = json::array();
  for (const auto& [id, quantity] : r.items) items.push_back({id, quantity});
  return items;
}

class WarehouseService final : public runtime::Participant {
 public:
  WarehouseService(runtime::ServiceOptions options, WarehouseOptions warehouse)
      : Participant("warehouse", core::Service::kWarehouse, std::move(options), warehouse.participant),
        default_stock_(warehouse.default_stock),
        stock_{topics().warehouse_stock, "stock"},
        reservations_{topics().warehouse_reservations, "reservation"} {}

  ~WarehouseService() override { Stop(); }

  std::vector<std::string> InputTopics() const override {
    return {topics().warehouse_reserve, topics().warehouse_cancel};
  }
  std::vector<runtime::Changelog> Changelogs() const override { return {stock_, reservations_}; }
  bool Handles(core::Step step) const override {
    return step == core::Step::kReserveStock || step == core::Step::kReleaseStock;
  }
  bool MayFail(core::Step step) const override { return step == core::Step::kReserveStock; }

  std::string InvalidCommand(const core::StepCommand& command) const override {
    if (command.step != core::Step::kReserveStock) return {};  // a release uses the recorded reservation
    const auto& items = command.order.items;
    if (items.empty()) return "a reservation needs at least one item";
    if (items.size() > kMaxLines) return "a reservation has at most " + std::to_string(kMaxLines) + " items";
    for (const auto& i : items) {
      if (i.item_id < 0) return "item id must not be negative, got " + std::to_string(i.item_id);
      if (i.quantity < 1 || i.quantity > kMaxQuantity) {
        return "quantity of item " + std::to_string(i.item_id) + " must be from 1 to " +
               std::to_string(kMaxQuantity) + ", got " + std::to_string(i.quantity);
      }
    }
    return {};
  }

  int64_t default_stock() const { return default_stock_; }
  const runtime::Changelog& stock() const { return stock_; }
  const runtime::Changelog& reservations() const { return reservations_; }
  RestockQueue& restocks() { return restocks_; }

 protected:
  bool SingleTask() const override { return true; }
  std::unique_ptr<runtime::ServiceTask> CreateTask(int32_t task) override;

  void AddParticipantRoutes(runtime::HttpServer& http) override {
    http.Route("GET", "/stock", [this](const HttpRequest&) {
      json items = json::array();
      store().ScanPrefix("stock/", [&](std::string_view, std::string_view value) {
        items.push_back(StockToJson(*runtime::DecodeStored<core::StockLevel>(std::string(value))));
        return true;
      });
      return HttpResponse::Json({{"items", items}, {"default_stock", default_stock_}});
    });
    http.Route("POST", "/stock", [this](const HttpRequest& req) { return PostStock(req); });
    http.Route("GET", R"(/reservations/(\d+))", [this](const HttpRequest& req) {
      auto r = runtime::DecodeStored<core::Reservation>(store().Get("reservation/" + req.captures[0]));
      if (!r) return HttpResponse::Error(404, "no reservation for order " + req.captures[0]);
      json items = json::array();
      for (const auto& i : r->items) items.push_back({{"item_id", i.item_id}, {"quantity", i.quantity}});
      static const char* kStates[] = {"unknown", "reserved", "rejected", "released"};
      return HttpResponse::Json({{"order_id", r->order_id},
                                 {"state", kStates[static_cast<int>(r->state)]},
                                 {"items", items},
                                 {"detail", r->detail}});
    });
  }

 private:
  HttpResponse PostStock(const HttpRequest& req) {
    if (auto denied = DenyUnlessAdmin(req)) return *denied;
    Restock restock;
    restock.key = req.Header("Idempotency-Key");
    if (restock.key.size() > 200) throw HttpError{400, "Idempotency-Key is longer than 200 characters"};
    auto body = runtime::ParseJsonBody(req);
    json list = body.contains("items") ? body["items"] : json::array({body});
    if (!list.is_array() || list.empty()) throw HttpError{400, "\"items\" must be a non-empty array"};
    for (const auto& i : list) {
      if (!i.is_object() || !i.contains("item_id") || !i["item_id"].is_number_integer() || !i.contains("quantity") ||
          !i["quantity"].is_number_integer()) {
        throw HttpError{400, "each item needs integer \"item_id\" and \"quantity\", e.g. {\"item_id\":10,\"quantity\":100}"};
      }
      const auto id = i["item_id"].get<int64_t>();
      const auto quantity = i["quantity"].get<int64_t>();
      if (id < 0 || quantity < 1 || quantity > 1'000'000'000'000) {
        throw HttpError{400, "item_id must be >= 0 and quantity from 1 to 10^12"};
      }
      restock.items.emplace_back(id, quantity);
    }
    auto future = restocks_.Push(std::move(restock));
    if (future.wait_for(kRestockTimeout) != std::future_status::ready) {
      return HttpResponse::Error(
          503, restock.key.empty()
                   ? "the restock was not recorded within 10 s and may still be applied later (Kafka is "
                     "unavailable): send restocks with an Idempotency-Key to retry them safely"
                   : "the restock was not recorded within 10 s: Kafka is unavailable; retry later with the same "
                     "Idempotency-Key (it is applied once)");
    }
    auto outcome = future.get();
    if (outcome.status != 200) return HttpResponse::Error(outcome.status, outcome.error);
    json items = json::array();
    for (const auto& level : outcome.levels) items.push_back(StockToJson(level));
    return HttpResponse::Json({{"items", items}});
  }

  const int64_t default_stock_;
  const runtime::Changelog stock_;
  const runtime::Changelog reservations_;
  RestockQueue restocks_;
};

// Reserves and releases stock. One task owns all partitions: stock is keyed
// by item, not by order, so it is not partitioned like the commands.
class WarehouseTask final : public runtime::ParticipantTask {
 public:
  WarehouseTask(WarehouseService& service, int32_t task);

 protected:
  std::optional<core::StepReply> Recorded(const core::StepCommand& command) override {
    auto r = Reservation(command.order.order_id);
    if (!r) return std::nullopt;
    if (command.step == core::Step::kReserveStock) {
      if (r->state == ReservationState::kReleased && r->released_without_reserve) {
        return core::StepReply{command.step, command.attempt, false,
                               "order " + std::to_string(r->order_id) + " was cancelled before stock was reserved"};
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
      auto outcome = Restocked(item.request);
      if (!outcome) outcome = ApplyRestock(tx, item.request);
      in_flight_.push_back({std::move(item), std::move(*outcome)});
    }
  }

  void OnCommittedHook(const std::vector<kafka::Delivered>&) override {
    for (auto& [item, outcome] : in_flight_) item.promise->set_value(std::move(outcome));
    in_flight_.clear();
  }

  void OnAbortedHook() override {
    ParticipantTask::OnAbortedHook();
    std::vector<RestockQueue::Item> again;
    for (auto& [item, levels] : in_flight_) again.push_back(std::move(item));
    in_flight_.clear();
    service_.restocks().Requeue(std::move(again));
  }

 private:
  // The recorded outcome of a restock's Idempotency-Key (this transaction's
  // included), or nothing when it has no key or the key is new.
  std::optional<RestockOutcome> Restocked(const Restock& request) const {
    if (request.key.empty()) return std::nullopt;
    auto record = runtime::DecodeStored<core::Reservation>(Get("reservation/" + RestockRecordKey(request.key)));
    if (!record) return std::nullopt;
    const auto recorded = json::parse(record->detail, nullptr, false);
    if (recorded.is_discarded() || recorded.value("request", json()) != RequestJson(request)) {
      return RestockOutcome{422, {},
                            "Idempotency-Key '" + request.key +
                                "' was used for a restock of other items; use a new key for a new restock"};
    }
    RestockOutcome outcome;
    for (const auto& l : recorded.value("levels", json::array())) {
      outcome.levels.push_back({l.at("item_id").get<int64_t>(), l.at("available").get<int64_t>(),
                                l.at("reserved").get<int64_t>()});
    }
    return outcome;
  }

  RestockOutcome ApplyRestock(core::TxContext& tx, const Restock& request) {
    RestockOutcome outcome;
    json levels = json::array();
    for (const auto& [id, quantity] : request.items) {
      auto level = Stock(id);
      level.available += quantity;
      PutStock(tx, level);
      outcome.levels.push_back(level);
      levels.push_back(StockToJson(level));
      log().info("restocked item {} by {}: {} available", id, quantity, level.available);
    }
    if (!request.key.empty()) {
      core::Reservation record{0, ReservationState::kRejected, {}, false,
                               json{{"request", RequestJson(request)}, {"levels", levels}}.dump(), core::NowMs(),
                               false};
      core::Message m{NewMessageId("restock", 0), 0, "", core::NowMs(), 1, record};
      EmitChangelog(tx, service_.reservations(), RestockRecordKey(request.key), m);
    }
    return outcome;
  }

  core::StepReply Reserve(core::TxContext& tx, const core::StepCommand& command, bool fail_on_purpose) {
    const auto& order = command.order;
    core::Reservation r{order.order_id, ReservationState::kRejected, order.items, false, "", core::NowMs(), false};
    if (fail_on_purpose) {
      r.detail = "warehouse refused the reservation (failure injected: mistakes=" + std::to_string(participant().mistakes()) + "%)";
    } else {
      // Sum per item first: an order may list the same item twice.
      std::map<core::ItemId, int64_t> wanted;
      for (const auto& i : order.items) wanted[i.item_id] += i.quantity;
      std::vector<core::StockLevel> levels;
      for (const auto& [id, quantity] : wanted) {
        auto level = Stock(id);
        if (level.available < quantity) {
          r.detail = "not enough stock for item " + std::to_string(id) + ": requested " + std::to_string(quantity) +
                     ", available " + std::to_string(level.available);
          break;
        }
        level.available -= quantity;
        level.reserved += quantity;
        levels.push_back(level);
      }
      if (r.detail.empty()) {
        for (const auto& level : levels) PutStock(tx, level);
        r.state = ReservationState::kReserved;
        r.reply_ok = true;
        r.detail = "reserved " + std::to_string(wanted.size()) + " item(s)";
      }
    }
    PutReservation(tx, r);
    return {command.step, command.attempt, r.reply_ok, r.detail};
  }

  core::StepReply Release(core::TxContext& tx, const core::StepCommand& command) {
    auto r = Reservation(command.order.order_id);
    if (!r) {
      // The release overtook the reservation (it timed out): record it so a
      // late reserve command is refused instead of reserving for a dead saga.
      core::Reservation tomb{command.order.order_id, ReservationState::kReleased, {}, false,
                             "released before any reservation was made", core::NowMs(), true};
      PutReservation(tx, tomb);
      return {command.step, command.attempt, true, tomb.detail};
    }
    if (r->state == ReservationState::kReserved) {
      std::map<core::ItemId, int64_t> held;
      for (const auto& i : r->items) held[i.item_id] += i.quantity;
      std::vector<core::StockLevel> levels;
      for (const auto& [id, quantity] : held) {
        auto level = Stock(id);
        if (level.reserved < quantity) {
          Quarantine("releasing order " + std::to_string(r->order_id) + " would leave item " + std::to_string(id) +
                     " with a negative reserved count (" + std::to_string(level.reserved) + " reserved, " +
                     std::to_string(quantity) + " to release)");
          return {command.step, command.attempt, false, ""};
        }
        level.available += quantity;
        level.reserved -= quantity;
        levels.push_back(level);
      }
      for (const auto& level : levels) PutStock(tx, level);
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
    auto level = runtime::DecodeStored<core::StockLevel>(Get("stock/" + std::to_string(id)));
    return level ? *level : core::StockLevel{id, service_.default_stock(), 0};
  }
  std::optional<core::Reservation> Reservation(core::OrderId id) const {
    return runtime::DecodeStored<core::Reservation>(Get("reservation/" + std::to_string(id)));
  }
  void PutStock(core::TxContext& tx, const core::StockLevel& level) {
    core::Message m{NewMessageId("stock", 0), 0, "", core::NowMs(), 1, level};
    EmitChangelog(tx, service_.stock(), std::to_string(level.item_id), m);
  }
  void PutReservation(core::TxContext& tx, const core::Reservation& r) {
    core::Message m{NewMessageId("reservation", r.order_id), r.order_id, "", core::NowMs(), 1, r};
    EmitChangelog(tx, service_.reservations(), core::SagaKey(r.order_id), m);
  }

  WarehouseService& service_;
  std::vector<std::pair<RestockQueue::Item, RestockOutcome>> in_flight_;
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
