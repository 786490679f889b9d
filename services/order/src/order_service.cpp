#include "sagaflow/order/order_service.hpp"

#include <atomic>
#include <map>
#include <mutex>
#include <unordered_map>

#include "sagaflow/runtime/order_json.hpp"

namespace sagaflow::order {
namespace {

using nlohmann::json;
using runtime::HttpError;
using runtime::HttpRequest;
using runtime::HttpResponse;

// Long polls (GET /orders/{id}?wait=S) wait at most this long, and at most
// this many at once; event streams (GET /orders/events) at most this many.
constexpr int64_t kMaxWaitSeconds = 60;
constexpr size_t kMaxWaiters = 100'000;
constexpr size_t kMaxEventStreams = 64;

struct NewOrder {
  core::Order order;
  std::string idempotency_key;
  std::shared_ptr<std::atomic<bool>> abandoned = std::make_shared<std::atomic<bool>>(false);
  runtime::HttpResponder responder;  // answered once the order is committed
};

struct Accepted {
  int status = 200;  // 200 accepted (or replayed by idempotency key), 409 conflict, 422 key reused
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
    // Both answer later without holding a thread: POST /neworder once its
    // transaction committed, a long poll once the order's final status did.
    http.RouteDeferred("POST", "/neworder",
                       [this](const HttpRequest& req, runtime::HttpResponder responder) { PostOrder(req, responder); });
    http.RouteDeferred("GET", R"(/orders/(\d+))",
                       [this](const HttpRequest& req, runtime::HttpResponder responder) { GetOrder(req, responder); });
    http.RouteDeferred("GET", "/orders/events",
                       [this](const HttpRequest&, runtime::HttpResponder responder) { OpenEvents(responder); });
    http.Route("GET", "/orders", [this](const HttpRequest& req) { return ListOrders(req); });
  }

 public:
  static HttpResponse AcceptedResponse(const Accepted& result) {
    if (result.status != 200) return HttpResponse::Error(result.status, result.error);
    return HttpResponse::Json({{"order_id", result.order_id},
                               {"status", static_cast<int>(core::OrderStatus::kProcess)},
                               {"status_text", core::ToString(core::OrderStatus::kProcess)}});
  }

  // After a task's commit (its thread): answers the long polls of the orders
  // that became final and tells the event streams.
  void Announce(const std::vector<core::OrderRecord>& finished) {
    std::vector<std::pair<runtime::HttpResponder, std::string>> answers;
    std::vector<runtime::HttpEventStream> streams;
    {
      std::lock_guard lock(waiters_mu_);
      for (const auto& r : finished) {
        auto it = waiters_.find(r.order.order_id);
        if (it == waiters_.end()) continue;
        const std::string body = runtime::OrderRecordToJson(r).dump();
        for (auto& w : it->second) answers.emplace_back(std::move(w.responder), body);
        waiter_count_ -= it->second.size();
        waiters_.erase(it);
      }
      streams = streams_;
    }
    for (auto& [responder, body] : answers) responder.Send(HttpResponse{200, std::move(body), "application/json"});
    if (streams.empty()) return;
    for (const auto& r : finished) {
      const std::string data = json{{"order_id", r.order.order_id},
                                    {"status", static_cast<int>(r.status)},
                                    {"status_text", core::ToString(r.status)},
                                    {"detail", r.detail},
                                    {"idempotency_key", r.idempotency_key},
                                    {"accepted_at_ms", r.accepted_at_ms},
                                    {"finished_at_ms", r.finished_at_ms}}
                                   .dump(-1, ' ', false, json::error_handler_t::replace);
      for (const auto& s : streams) s.Send("final", data);
    }
  }

 private:
  void PostOrder(const HttpRequest& req, const runtime::HttpResponder& responder) {
    auto body = runtime::ParseJsonBody(req);
    NewOrder request;
    request.order = runtime::OrderFromJson(body);
    request.idempotency_key = req.Header("Idempotency-Key");
    if (request.idempotency_key.size() > 200) throw HttpError{400, "Idempotency-Key is longer than 200 characters"};
    request.responder = responder;
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
    // The task answers after the commit; if that does not happen in time the
    // order is given up (the task skips it if it has not taken it yet) and 503
    // tells the client to retry with its key.
    const auto timeout = options_.accept_timeout;
    responder.OnTimeout(timeout, [abandoned, timeout] {
      abandoned->store(true);
      return HttpResponse::Error(503, "the order could not be recorded within " + std::to_string(timeout.count()) +
                                          " ms: Kafka is unavailable; retry later (with the same Idempotency-Key)");
    });
    (void)QueueOf(task).Push(std::move(request));
  }

  static bool IsFinal(core::OrderStatus s) { return s == core::OrderStatus::kOk || s == core::OrderStatus::kNotOk; }

  std::optional<core::OrderRecord> ReadOrder(core::OrderId id) const {
    return runtime::DecodeStored<core::OrderRecord>(store().Get(OrderKey(id)));
  }

  // GET /orders/{id}[?wait=SECONDS]: with a wait, answers as soon as the order
  // is final, or with its state as it is when the wait runs out. A waiter holds
  // no thread: it is a responder in waiters_, completed by Announce.
  void GetOrder(const HttpRequest& req, const runtime::HttpResponder& responder) {
    const auto& id_text = req.captures.at(0);
    int64_t wait = 0;
    if (req.query.count("wait")) wait = runtime::ParseIntParam(req.Query("wait"), 0, kMaxWaitSeconds, "wait");
    core::OrderId id = 0;
    try {
      id = std::stoll(id_text);
    } catch (...) {
      throw HttpError{404, "no order " + id_text};
    }
    auto current = ReadOrder(id);
    if (!current) throw HttpError{404, "no order " + id_text};
    if (wait == 0 || IsFinal(current->status)) {
      responder.Send(HttpResponse::Json(runtime::OrderRecordToJson(*current)));
      return;
    }
    uint64_t ticket = 0;
    {
      std::lock_guard lock(waiters_mu_);
      if (waiter_count_ >= kMaxWaiters) throw HttpError{503, "too many clients are waiting; retry later"};
      ticket = ++next_ticket_;
      waiters_[id].push_back({ticket, responder});
      ++waiter_count_;
    }
    // Registered first, read again second: a final status committed in
    // between is either seen here or announced to the waiter.
    current = ReadOrder(id);
    if (current && IsFinal(current->status)) {
      Unwait(id, ticket);
      responder.Send(HttpResponse::Json(runtime::OrderRecordToJson(*current)));
      return;
    }
    responder.OnTimeout(std::chrono::seconds(wait), [this, id, ticket] {
      Unwait(id, ticket);
      auto r = ReadOrder(id);
      if (!r) return HttpResponse::Error(404, "no order " + std::to_string(id));
      return HttpResponse::Json(runtime::OrderRecordToJson(*r));
    });
  }

  void Unwait(core::OrderId id, uint64_t ticket) {
    std::lock_guard lock(waiters_mu_);
    auto it = waiters_.find(id);
    if (it == waiters_.end()) return;
    auto& list = it->second;
    for (auto w = list.begin(); w != list.end(); ++w) {
      if (w->ticket == ticket) {
        list.erase(w);
        --waiter_count_;
        break;
      }
    }
    if (list.empty()) waiters_.erase(it);
  }

  // GET /orders/events: a server-sent-events stream with one "final" event
  // per order whose final status is committed from now on.
  void OpenEvents(const runtime::HttpResponder& responder) {
    std::lock_guard lock(waiters_mu_);
    std::erase_if(streams_, [](const runtime::HttpEventStream& s) { return !s.open(); });
    if (streams_.size() >= kMaxEventStreams) {
      throw HttpError{503, "too many event streams are open (" + std::to_string(kMaxEventStreams) + ")"};
    }
    streams_.push_back(responder.StartEvents());
  }

  HttpResponse ListOrders(const HttpRequest& req) {
    const int64_t limit = runtime::ParseIntParam(req.Query("limit", "100"), 1, 1000, "limit");
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

  struct Waiter {
    uint64_t ticket;
    runtime::HttpResponder responder;
  };
  std::mutex waiters_mu_;
  std::unordered_map<core::OrderId, std::vector<Waiter>> waiters_;
  size_t waiter_count_ = 0;
  uint64_t next_ticket_ = 0;
  std::vector<runtime::HttpEventStream> streams_;
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
      finished_.push_back(*r);
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

  void OnCommittedHook(const std::vector<kafka::Delivered>&) override {
    for (auto& [item, result] : in_flight_) {
      item.request.responder.Send(OrderService::AcceptedResponse(result));
      item.promise->set_value(result);
    }
    in_flight_.clear();
    if (!finished_.empty()) service_.Announce(finished_);
    finished_.clear();
  }

  void OnAbortedHook() override {
    finished_.clear();
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
        const core::OrderId id = std::stoll(*existing);
        // A retry must be the same order; a different body under a used key is a client bug.
        auto first = runtime::DecodeStored<core::OrderRecord>(Get(OrderKey(id)));
        core::Order asked = request.order;
        if (asked.order_id == 0 && first) asked.order_id = first->order.order_id;
        if (first && !(asked == first->order)) {
          return {422, id, "Idempotency-Key '" + request.idempotency_key + "' was used for a different order (" +
                               std::to_string(id) + "); use a new key for a new order"};
        }
        return {200, id, ""};
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
  std::vector<core::OrderRecord> finished_;  // final statuses of the open transaction
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
