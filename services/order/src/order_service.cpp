#include "sagaflow/order/order_service.hpp"

#include <atomic>
#include <map>
#include <mutex>

#include "sagaflow/runtime/order_json.hpp"

namespace sagaflow::order {
namespace {

using nlohmann::json;
using runtime::HttpError;
using runtime::HttpRequest;
using runtime::HttpResponse;

struct NewOrder {
  core::Order order;
  std::string idempotency_key;
  std::shared_ptr<std::atomic<bool>> abandoned = std::make_shared<std::atomic<bool>>(false);
};

struct Accepted {
  int status = 200;  // 200 accepted (or replayed by idempotency key), 409 conflict
  core::OrderId order_id = 0;
  std::string error;
};

using Queue = runtime::LocalQueue<NewOrder, Accepted>;

std::string OrderKey(core::OrderId id) { return "order/" + core::SagaKey(id); }

class OrderService final : public runtime::Service {
 public:
  OrderService(runtime::ServiceOptions options, OrderOptions order)
      : Service("order", std::move(options)), options_(order), orders_{topics().order_orders, "order"} {
    metrics().Describe("orders_accepted_total", "Orders accepted by POST /neworder");
    metrics().Describe("orders_finished_total", "Orders whose saga ended, by status");
  }

  ~OrderService() override { Stop(); }

  std::vector<std::string> InputTopics() const override { return {topics().status}; }
  std::vector<runtime::Changelog> Changelogs() const override { return {orders_}; }
  const runtime::Changelog& orders() const { return orders_; }

  /// The new orders waiting for task `task` (any thread).
  Queue& QueueOf(int32_t task) {
    std::lock_guard lock(queues_mu_);
    auto& q = queues_[task];
    if (!q) q = std::make_unique<Queue>();
    return *q;
  }

 protected:
  std::unique_ptr<runtime::ServiceTask> CreateTask(int32_t task) override;

  void AddRoutes(runtime::HttpServer& http) override {
    http.Route("POST", "/neworder", [this](const HttpRequest& req) { return PostOrder(req); });
    http.Route("GET", R"(/orders/(\d+))", [this](const HttpRequest& req) {
      auto r = runtime::DecodeStored<core::OrderRecord>(store().Get("order/" + req.captures[0]));
      if (!r) return HttpResponse::Error(404, "no order " + req.captures[0]);
      return HttpResponse::Json(runtime::OrderRecordToJson(*r));
    });
    http.Route("GET", "/orders", [this](const HttpRequest& req) { return ListOrders(req); });
  }

 private:
  HttpResponse PostOrder(const HttpRequest& req) {
    auto body = runtime::ParseJsonBody(req);
    NewOrder request;
    request.order = runtime::OrderFromJson(body);
    request.idempotency_key = req.Header("Idempotency-Key");
    if (request.idempotency_key.size() > 200) throw HttpError{400, "Idempotency-Key is longer than 200 characters"};
    auto abandoned = request.abandoned;
    // The task that owns the order's partition records it; a retried key goes
    // to the same task, which sees the first attempt even before it commits.
    int32_t task = 0;
    if (request.order.order_id != 0) {
      task = TaskOfKey(core::SagaKey(request.order.order_id));
    } else if (!request.idempotency_key.empty()) {
      task = TaskOfKey(request.idempotency_key);
    } else {
      task = static_cast<int32_t>(next_task_.fetch_add(1) % static_cast<uint64_t>(partitions()));
    }
    auto future = QueueOf(task).Push(std::move(request));
    if (future.wait_for(options_.accept_timeout) != std::future_status::ready) {
      abandoned->store(true);
      return HttpResponse::Error(503, "the order could not be recorded within " +
                                          std::to_string(options_.accept_timeout.count()) +
                                          " ms: Kafka is unavailable; retry later (with the same Idempotency-Key)");
    }
    auto result = future.get();
    if (result.status != 200) return HttpResponse::Error(result.status, result.error);
    return HttpResponse::Json({{"order_id", result.order_id},
                               {"status", static_cast<int>(core::OrderStatus::kProcess)},
                               {"status_text", core::ToString(core::OrderStatus::kProcess)}});
  }

  HttpResponse ListOrders(const HttpRequest& req) {
    int64_t limit = 100;
    const auto limit_text = req.Query("limit", "100");
    try {
      limit = std::stoll(limit_text);
    } catch (...) {
      throw HttpError{400, "limit must be a number from 1 to 1000, got '" + limit_text + "'"};
    }
    if (limit < 1 || limit > 1000) throw HttpError{400, "limit must be from 1 to 1000"};
    const auto status_text = req.Query("status");
    std::optional<int> status;
    if (!status_text.empty()) {
      for (int s = 1; s <= 5; ++s) {
        if (status_text == std::to_string(s) || status_text == core::ToString(static_cast<core::OrderStatus>(s))) {
          status = s;
        }
      }
      if (!status) throw HttpError{400, "unknown status '" + status_text + "' (1..5 or NEW, PROCESS, OK, NOT OK)"};
    }
    json orders = json::array();
    store().ScanPrefix("order/", [&](std::string_view, std::string_view value) {
      auto r = runtime::DecodeStored<core::OrderRecord>(std::string(value));
      if (!status || static_cast<int>(r->status) == *status) orders.push_back(runtime::OrderRecordToJson(*r));
      return static_cast<int64_t>(orders.size()) < limit;
    });
    return HttpResponse::Json({{"orders", orders}, {"count", orders.size()}});
  }

  const OrderOptions options_;
  const runtime::Changelog orders_;
  std::mutex queues_mu_;
  std::map<int32_t, std::unique_ptr<Queue>> queues_;
  std::atomic<uint64_t> next_task_{0};
};

// Records the new orders and the final statuses of one partition.
class OrderTask final : public runtime::ServiceTask {
 public:
  OrderTask(OrderService& service, int32_t task);

 protected:
  void ApplyChangelog(const runtime::Changelog& changelog, const kafka::Record& record,
                      eventstore::WriteSet& out) override {
    ServiceTask::ApplyChangelog(changelog, record, out);
    if (record.value.empty()) return;
    auto r = runtime::DecodeStored<core::OrderRecord>(record.value);
    if (r && !r->idempotency_key.empty()) out.Put("idem/" + r->idempotency_key, core::SagaKey(r->order.order_id));
  }

  void OnRecords(std::span<const kafka::Record> records, core::TxContext& tx) override {
    for (const auto& record : records) {
      auto message = DecodeOrDeadLetter(tx, record);
      if (!message) continue;
      const auto* final_status = std::get_if<core::FinalStatus>(&message->payload);
      if (final_status == nullptr) {
        DeadLetter(tx, record, "expected a FinalStatus, got " + std::string(core::PayloadName(message->payload)));
        continue;
      }
      auto r = runtime::DecodeStored<core::OrderRecord>(Get(OrderKey(message->saga_id)));
      if (!r) {
        DeadLetter(tx, record, "final status for unknown order " + std::to_string(message->saga_id));
        continue;
      }
      if (r->status == core::OrderStatus::kOk || r->status == core::OrderStatus::kNotOk) continue;  // duplicate
      r->status = final_status->status;
      r->detail = final_status->detail;
      r->steps = final_status->steps;
      r->finished_at_ms = core::NowMs();
      Put(tx, *r);
      metrics().Add("orders_finished_total", 1, "status=\"" + std::string(core::ToString(r->status)) + "\"");
      log().info("saga={} final status {}{}{}", message->saga_id, core::ToString(r->status),
                 r->detail.empty() ? "" : ": ", r->detail);
    }
  }

  void OnIdle(core::TxContext& tx) override {
    for (auto& item : service_.QueueOf(task()).Drain()) {
      if (item.request.abandoned->load()) continue;
      Accepted result = Accept(tx, item.request);
      in_flight_.emplace_back(std::move(item), result);
    }
  }

  void OnCommittedHook() override {
    for (auto& [item, result] : in_flight_) item.promise->set_value(result);
    in_flight_.clear();
  }

  void OnAbortedHook() override {
    std::vector<Queue::Item> again;
    for (auto& [item, result] : in_flight_) again.push_back(std::move(item));
    in_flight_.clear();
    service_.QueueOf(task()).Requeue(std::move(again));
  }

  std::chrono::milliseconds IdleInterval() const override { return std::chrono::milliseconds(10); }
 private:
  Accepted Accept(core::TxContext& tx, NewOrder& request) {
    if (!request.idempotency_key.empty()) {
      if (auto existing = Get("idem/" + request.idempotency_key)) {
        return {200, std::stoll(*existing), ""};
      }
    }
    auto& order = request.order;
    if (order.order_id != 0) {
      if (Get(OrderKey(order.order_id))) {
        return {409, order.order_id, "order " + std::to_string(order.order_id) + " already exists"};
      }
    } else {
      order.order_id = NewOrderId();
    }
    core::OrderRecord r{order, core::OrderStatus::kProcess, "", {}, core::NowMs(), 0, request.idempotency_key};
    Put(tx, r);
    core::Message placed{NewMessageId("placed", order.order_id), order.order_id, "", core::NowMs(), 1,
                         core::OrderPlaced{order}};
    Emit(tx, topics().order, core::SagaKey(order.order_id), placed);
    metrics().Add("orders_accepted_total");
    log().info("saga={} order accepted: user {}, {} item(s), sum {}", order.order_id, order.user_id,
               order.items.size(), order.sum);
    return {200, order.order_id, ""};
  }

  // Ids are milliseconds * 1000 + a counter, in this task's partition: unique
  // and increasing within a task, never equal across tasks (other
  // partitions), below 2^53 so JavaScript clients read them exactly.
  core::OrderId NewOrderId() {
    while (true) {
      const core::OrderId id = core::NowMs() * 1000 + static_cast<core::OrderId>(counter_++ % 1000);
      if (!Owns(core::SagaKey(id))) continue;  // ids are drawn until one falls in this task's partition
      if (id > last_id_ && !Get(OrderKey(id))) {
        last_id_ = id;
        return id;
      }
      if (id <= last_id_) {
        last_id_ += 1;
        if (Owns(core::SagaKey(last_id_)) && !Get(OrderKey(last_id_))) return last_id_;
      }
    }
  }

  void Put(core::TxContext& tx, const core::OrderRecord& r) {
    core::Message m{NewMessageId("order", r.order.order_id), r.order.order_id, "", core::NowMs(), 1, r};
    EmitChangelog(tx, service_.orders(), core::SagaKey(r.order.order_id), m);
  }

  OrderService& service_;
  std::vector<std::pair<Queue::Item, Accepted>> in_flight_;
  uint64_t counter_ = 0;
  core::OrderId last_id_ = 0;
};

OrderTask::OrderTask(OrderService& service, int32_t task) : ServiceTask(service, task), service_(service) {}

std::unique_ptr<runtime::ServiceTask> OrderService::CreateTask(int32_t task) {
  return std::make_unique<OrderTask>(*this, task);
}

}  // namespace

std::unique_ptr<runtime::Service> MakeOrder(runtime::ServiceOptions options, OrderOptions order) {
  return std::make_unique<OrderService>(std::move(options), order);
}

}  // namespace sagaflow::order
