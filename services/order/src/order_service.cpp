#include "sagaflow/order/order_service.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "sagaflow/order/early_finals.hpp"
#include "sagaflow/runtime/global_view.hpp"
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
// A read that must see everything committed before it (a miss, a list) waits
// this long for the view; then 503.
constexpr auto kReadCatchUp = std::chrono::seconds(2);
// Start-up waits this long for the view before serving (it then goes on in the background).
constexpr auto kStartCatchUp = std::chrono::seconds(60);
// The view of every partition of orders.order.orders, and its index by Idempotency-Key.
constexpr char kViewTable[] = "global-order";
constexpr char kViewIdem[] = "global-idem/";
// Orders whose end was announced from the status topic and whose recorded end
// the view has not applied yet, at most (EarlyFinals).
constexpr size_t kMaxEarlyFinals = 100'000;

// What the HTTP side knows of one POST /neworder while it is being recorded.
struct RequestState {
  std::atomic<bool> abandoned{false};
  std::mutex mu;
  std::string forwarded_as;  // message id of the request when handed to another instance
};

struct NewOrder {
  core::Order order;
  std::string idempotency_key;
  std::shared_ptr<RequestState> state = std::make_shared<RequestState>();
  runtime::HttpResponder responder;  // answered once the order is committed
  /// Message id of a request that came through orders.service.neworder (the
  /// order's changelog record names it as its cause).
  std::string request_id;
};

struct Accepted {
  int status = 200;  // 200 accepted (or replayed by idempotency key), 409 conflict, 422 key reused
  core::OrderId order_id = 0;
  std::string error;
};

using Queue = runtime::LocalQueue<NewOrder, Accepted>;

std::string OrderKey(core::OrderId id) { return "order/" + core::SagaKey(id); }

// The key whose partition records a new order: the client's order id, else
// its Idempotency-Key; empty when any partition may.
std::string RoutingKey(const NewOrder& r) {
  if (r.order.order_id != 0) return core::SagaKey(r.order.order_id);
  return r.idempotency_key;
}

// The answer to a request whose Idempotency-Key was used before for `first`:
// the same order again, or 422 for a different body under the key.
Accepted Replayed(const std::string& key, core::Order asked, core::OrderId first_id,
                  const std::optional<core::Order>& first) {
  if (asked.order_id == 0) asked.order_id = first_id;
  if (first && !(asked == *first)) {
    return {422, first_id, "Idempotency-Key '" + key + "' was used for a different order (" +
                               std::to_string(first_id) + "); use a new key for a new order"};
  }
  return {200, first_id, ""};
}

// An order record of the view with the envelope's causation (records come
// from Kafka: one that does not decode is skipped, not trusted).
struct ViewedOrder {
  core::OrderRecord record;
  std::string causation_id;
};
std::optional<ViewedOrder> DecodeViewed(std::string_view bytes) {
  if (bytes.empty()) return std::nullopt;
  auto m = core::Decode(bytes);
  if (!m.ok()) return std::nullopt;
  auto* r = std::get_if<core::OrderRecord>(&m->payload);
  if (r == nullptr) return std::nullopt;
  return ViewedOrder{std::move(*r), std::move(m->causation_id)};
}

class OrderService final : public runtime::Service {
 public:
  OrderService(runtime::ServiceOptions options, OrderOptions order)
      : Service("order", std::move(options)), options_(order), orders_{topics().order_orders, "order"} {
    metrics().Describe("orders_accepted_total", "Orders accepted by POST /neworder");
    metrics().Describe("orders_finished_total", "Orders whose saga ended, by status");
    metrics().Describe("orders_forwarded_total",
                       "POST /neworder requests handed to the instance owning their partition");
    metrics().Describe("order_requests_expired_total",
                       "Forwarded requests dropped by the owner because their client had been answered 503");
    metrics().Describe("orders_finished_early_total",
                       "Orders whose end was announced from the orchestrator's status record, before the order "
                       "service recorded it");
  }

  ~OrderService() override { Stop(); }

  std::vector<std::string> InputTopics() const override { return {topics().status, topics().neworder}; }
  std::vector<runtime::Changelog> Changelogs() const override { return {orders_}; }
  const runtime::Changelog& orders() const { return orders_; }
  std::chrono::milliseconds accept_timeout() const { return options_.accept_timeout; }

  /// The new orders waiting for task `task` (any thread); closed while the
  /// task does not run on this instance.
  Queue& QueueOf(int32_t task) {
    std::lock_guard lock(queues_mu_);
    auto& q = queues_[task];
    if (!q) q = std::make_unique<Queue>(/*open=*/false);
    return *q;
  }

  /// Requests a task leaves behind when its partition moves away: handed to
  /// the partition's new owner through Kafka (any thread; does not block).
  void ForwardAll(std::vector<Queue::Item> items) {
    for (auto& item : items) {
      // A client still waiting (not answered 503, not gone with a stopping server).
      if (!item.request.state->abandoned.load() && item.request.responder.pending()) Forward(std::move(item.request));
    }
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

  // Reads answer from a view of every partition of the orders changelog, so
  // every instance answers the same; it is filled before HTTP serves.
  core::Status BeforeServing() override {
    runtime::GlobalViewOptions o;
    o.kafka = kafka_config();
    o.topic = topics().order_orders;
    o.table = kViewTable;
    o.index = [](const kafka::Record& record, eventstore::WriteSet& out) {
      auto viewed = DecodeViewed(record.value);
      if (viewed && !viewed->record.idempotency_key.empty()) {
        out.Put(kViewIdem + viewed->record.idempotency_key, core::SagaKey(viewed->record.order.order_id));
      }
    };
    o.on_applied = [this](const std::vector<kafka::Record>& records) { OnViewApplied(records); };
    view_ = std::make_unique<runtime::GlobalView>(std::move(o), mutable_store());
    if (auto s = view_->Start(); !s.ok()) return s;
    if (auto s = view_->CatchUp(kStartCatchUp); !s.ok()) {
      log().warn("the view of {} is not complete yet ({}); it goes on in the background", topics().order_orders,
                 s.error().message);
    }
    // The status topic from where the order tasks have recorded it (the
    // group's committed offsets): an end announced early before a restart is
    // read again, so reads do not go back to the order in process.
    auto start = kafka::CommittedOffsets(kafka_config(), group_id(), topics().status);
    if (!start.ok()) {
      // Then from its end: ends committed before reach the clients through the view.
      log().warn("reading {} from its end: {}", topics().status, start.error().message);
      start = kafka::EndOffsets(kafka_config(), topics().status);
      if (!start.ok()) return start.error();
    }
    auto statuses = kafka::TopicTail::Open(kafka_config(), topics().status, start.value());
    if (!statuses.ok()) return statuses.error();
    statuses_ = std::move(statuses.value());
    stop_statuses_ = false;
    status_reader_ = std::thread([this] { FollowStatuses(); });
    forwarder_ = std::thread([this] { ForwardLoop(); });
    return core::Status::Ok();
  }

  void AfterStopping() override {
    {
      std::lock_guard lock(outbox_mu_);
      stop_forwarding_ = true;
      outbox_cv_.notify_all();
    }
    if (forwarder_.joinable()) forwarder_.join();
    stop_statuses_ = true;
    if (status_reader_.joinable()) status_reader_.join();
    if (view_) view_->Stop();
  }

 public:
  static HttpResponse AcceptedResponse(const Accepted& result) {
    if (result.status != 200) return HttpResponse::Error(result.status, result.error);
    return HttpResponse::Json({{"order_id", result.order_id},
                               {"status", static_cast<int>(core::OrderStatus::kProcess)},
                               {"status_text", core::ToString(core::OrderStatus::kProcess)}});
  }

 private:
  // ---------------------------------------------------------------- writes

  void PostOrder(const HttpRequest& req, const runtime::HttpResponder& responder) {
    auto body = runtime::ParseJsonBody(req);
    NewOrder request;
    request.order = runtime::OrderFromJson(body);
    request.idempotency_key = runtime::IdempotencyKey(req);
    request.responder = responder;
    // If the order is not committed in time it is given up (a task skips it
    // if it has not taken it yet, an owner skips a forwarded request that
    // old) and 503 tells the client to retry with its key.
    auto state = request.state;
    const auto timeout = options_.accept_timeout;
    responder.OnTimeout(timeout, [this, state, timeout] {
      state->abandoned.store(true);
      std::string forwarded;
      {
        std::lock_guard lock(state->mu);
        forwarded = state->forwarded_as;
      }
      if (!forwarded.empty()) Unpend(forwarded);
      return HttpResponse::Unavailable("the order could not be recorded within " + std::to_string(timeout.count()) +
                                       " ms: Kafka is unavailable or its partition is moving; retry later (with the "
                                       "same Idempotency-Key)");
    });
    // The task that owns the routing key's partition records the order; a
    // retried key goes to the same partition, whose owner sees the first
    // attempt even before it commits. When that task runs elsewhere, the
    // request goes to it through Kafka.
    const std::string routing = RoutingKey(request);
    if (!routing.empty()) {
      if (QueueOf(TaskOfKey(routing)).TryPush(request)) {
        WakeTasks();
      } else {
        Forward(std::move(request));
      }
      return;
    }
    // Any partition will do: one of this instance's, else any through Kafka.
    const auto n = static_cast<uint64_t>(std::max(partitions(), 1));
    const uint64_t first = next_task_.fetch_add(1);
    for (uint64_t i = 0; i < n; ++i) {
      if (QueueOf(static_cast<int32_t>((first + i) % n)).TryPush(request)) {
        WakeTasks();
        return;
      }
    }
    Forward(std::move(request));
  }

  // A request whose partition is owned by another instance (or by none right
  // now): produced to orders.service.neworder keyed like the order, so the
  // partition's owner, whoever it is when the record arrives, records it
  // exactly once. The answer comes from the view: the order record caused by
  // this request, or the record that makes it a replay or a conflict.
  struct Pending {
    NewOrder request;
    std::string message_id;
  };

  void Forward(NewOrder request) {
    auto pending = std::make_shared<Pending>();
    // The instance id in the message id: the answer is matched by it, so it is unique across instances.
    pending->message_id = NewMessageId("neworder-" + options().instance_id, request.order.order_id);
    pending->request = std::move(request);
    {
      std::lock_guard lock(pending->request.state->mu);
      pending->request.state->forwarded_as = pending->message_id;
    }
    {
      std::lock_guard lock(pending_mu_);
      pending_[pending->message_id] = pending;
    }
    // Registered first, looked up second: a record the view applies in
    // between is either seen here or matched by OnViewApplied.
    if (auto answer = AnswerFromView(*pending)) {
      Finish(pending->message_id, *answer);
      return;
    }
    metrics().Add("orders_forwarded_total");
    std::lock_guard lock(outbox_mu_);
    outbox_.push_back(pending);
    outbox_cv_.notify_all();
  }

  // What the view already says about a pending request: its key or its order
  // id used before.
  std::optional<Accepted> AnswerFromView(const Pending& p) {
    const auto& request = p.request;
    if (!request.idempotency_key.empty()) {
      if (auto id_text = store().Get(kViewIdem + request.idempotency_key)) {
        const core::OrderId id = std::stoll(*id_text);
        auto first = ReadOrder(id);
        return Replayed(request.idempotency_key, request.order, id,
                        first ? std::optional<core::Order>(first->order) : std::nullopt);
      }
    }
    if (request.order.order_id != 0 && ReadOrder(request.order.order_id)) {
      return Accepted{409, request.order.order_id,
                      "order " + std::to_string(request.order.order_id) + " already exists"};
    }
    return std::nullopt;
  }

  // On the view's thread: answers the pending requests a new order record settles.
  void SettlePending(const ViewedOrder& viewed) {
    const auto& r = viewed.record;
    std::vector<std::pair<std::string, Accepted>> answers;
    {
      std::lock_guard lock(pending_mu_);
      if (pending_.empty()) return;
      for (const auto& [id, p] : pending_) {
        const auto& request = p->request;
        if (id == viewed.causation_id) {
          answers.emplace_back(id, Accepted{200, r.order.order_id, ""});
        } else if (!request.idempotency_key.empty() && request.idempotency_key == r.idempotency_key) {
          answers.emplace_back(id, Replayed(request.idempotency_key, request.order, r.order.order_id, r.order));
        } else if (request.order.order_id != 0 && request.order.order_id == r.order.order_id) {
          answers.emplace_back(id, Accepted{409, r.order.order_id,
                                            "order " + std::to_string(r.order.order_id) + " already exists"});
        }
      }
    }
    for (const auto& [id, answer] : answers) Finish(id, answer);
  }

  void Finish(const std::string& message_id, const Accepted& answer) {
    std::shared_ptr<Pending> p;
    {
      std::lock_guard lock(pending_mu_);
      auto it = pending_.find(message_id);
      if (it == pending_.end()) return;
      p = it->second;
      pending_.erase(it);
    }
    p->request.responder.Send(AcceptedResponse(answer));
  }

  void Unpend(const std::string& message_id) {
    std::lock_guard lock(pending_mu_);
    pending_.erase(message_id);
  }

  // One transactional producer of this instance sends the forwarded requests,
  // a batch per transaction.
  void ForwardLoop() {
    const std::string txn_id = options().topic_prefix + "sagaflow-order-forward-" + options().instance_id;
    // Opened ahead of the first request (initializing transactions takes a while); again after a failure.
    std::unique_ptr<kafka::TransactionalProducer> producer;
    if (auto opened = kafka::TransactionalProducer::Open(kafka_config(), txn_id, options_.accept_timeout); opened.ok()) {
      producer = std::move(opened.value());
    }
    while (true) {
      std::vector<std::shared_ptr<Pending>> batch;
      {
        std::unique_lock lock(outbox_mu_);
        outbox_cv_.wait(lock, [&] { return stop_forwarding_ || !outbox_.empty(); });
        if (stop_forwarding_) return;
        batch.assign(outbox_.begin(), outbox_.end());
        outbox_.clear();
      }
      core::Status s;
      if (!producer) {
        auto opened = kafka::TransactionalProducer::Open(kafka_config(), txn_id, options_.accept_timeout);
        if (opened.ok()) {
          producer = std::move(opened.value());
        } else {
          s = opened.error();
        }
      }
      if (s.ok()) s = producer->Begin();
      for (const auto& p : batch) {
        if (!s.ok()) break;
        const auto& request = p->request;
        core::OrderRecord asked{request.order, core::OrderStatus::kNew, "", {}, 0, 0, request.idempotency_key};
        core::Message m{p->message_id, request.order.order_id, "", core::NowMs(), 1, asked};
        const std::string routing = RoutingKey(request);
        s = producer->Produce(topics().neworder, routing.empty() ? p->message_id : routing, core::Encode(m));
      }
      if (s.ok()) {
        auto committed = producer->Commit();
        if (committed.ok()) continue;
        s = committed.error();
      }
      log().warn("forwarding {} new order(s) failed: {}", batch.size(), s.error().message);
      if (producer && producer->InTransaction()) (void)producer->Abort();
      producer.reset();  // a fresh one next time, whatever went wrong
      for (const auto& p : batch) {
        Unpend(p->message_id);
        p->request.responder.Send(HttpResponse::Unavailable(
            "the order could not be handed to the instance owning its partition: " + s.error().message +
            "; retry later (with the same Idempotency-Key)"));
      }
    }
  }

 public:
  // An accepted order is answered once this instance's view holds it. The
  // view reads committed records only, so by then the order is below its
  // partition's last stable offset, and a read on any instance, which catches
  // up to that offset on a miss, finds it. Answering as soon as the commit
  // returns would not do: the broker writes a transaction's commit markers
  // after commit_transaction has returned, and until then a reader's catch-up
  // stops short of the order (read-your-writes broken for a moment). If the
  // view does not get there within kReadCatchUp the answer goes anyway.
  void AnswerWhenViewed(core::OrderId id, const runtime::HttpResponder& responder, const Accepted& answer) {
    uint64_t ticket = 0;
    {
      std::lock_guard lock(unviewed_mu_);
      ticket = ++next_unviewed_ticket_;
      unviewed_[id].push_back({ticket, responder, answer});
    }
    // Registered first, looked up second: a record the view stores in between
    // is either seen here or settled by OnViewApplied.
    if (ReadOrder(id)) {
      SettleViewed(id);
      return;
    }
    responder.OnTimeout(kReadCatchUp, [this, id, ticket, answer] {
      std::lock_guard lock(unviewed_mu_);
      if (auto it = unviewed_.find(id); it != unviewed_.end()) {
        std::erase_if(it->second, [ticket](const Unviewed& u) { return u.ticket == ticket; });
        if (it->second.empty()) unviewed_.erase(it);
      }
      return AcceptedResponse(answer);
    });
  }

 private:
  // Sends the answers that waited for order `id` to reach the view.
  void SettleViewed(core::OrderId id) {
    std::vector<Unviewed> ready;
    {
      std::lock_guard lock(unviewed_mu_);
      auto it = unviewed_.find(id);
      if (it == unviewed_.end()) return;
      ready = std::move(it->second);
      unviewed_.erase(it);
    }
    for (const auto& u : ready) u.responder.Send(AcceptedResponse(u.answer));
  }

  // ----------------------------------------------------------------- reads

  // The order as the view holds it.
  std::optional<core::OrderRecord> ReadViewed(core::OrderId id) const {
    auto bytes = view_->Get(core::SagaKey(id));
    if (!bytes) return std::nullopt;
    auto viewed = DecodeViewed(*bytes);
    if (!viewed) return std::nullopt;
    return std::move(viewed->record);
  }

  // The order as clients read it: with its end, once announced.
  std::optional<core::OrderRecord> ReadOrder(core::OrderId id) const {
    auto r = ReadViewed(id);
    if (!r) return r;
    return early_.Overlay(std::move(*r));
  }

  // An order the view does not hold yet may have been committed a moment ago
  // (acknowledged by another instance, or by this one before the view read
  // it): wait until the view holds everything its partition had committed
  // before answering that it does not exist.
  std::optional<core::OrderRecord> ReadOrderCaughtUp(core::OrderId id) const {
    if (auto r = ReadOrder(id)) return r;
    auto s = view_->CatchUp(kReadCatchUp, TaskOfKey(core::SagaKey(id)));
    if (!s.ok()) throw HttpError{503, "cannot tell yet whether order " + std::to_string(id) + " exists: " +
                                          s.error().message + "; retry later"};
    return ReadOrder(id);
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
    auto current = ReadOrderCaughtUp(id);
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
    // Registered first, read again second: a final status the view applies
    // in between is either seen here or announced to the waiter.
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

  // On the view's thread, after it stored a batch: settles forwarded
  // requests, answers the long polls of orders that became final and tells
  // the event streams. Every instance does this for every order.
  void OnViewApplied(const std::vector<kafka::Record>& records) {
    std::vector<core::OrderRecord> finished;
    for (const auto& record : records) {
      auto viewed = DecodeViewed(record.value);
      if (!viewed) continue;
      SettlePending(*viewed);
      SettleViewed(viewed->record.order.order_id);
      if (early_.OnViewed(viewed->record)) finished.push_back(std::move(viewed->record));
    }
    if (!finished.empty()) Announce(finished);
  }

  // On its own thread: the orchestrator's final statuses as soon as they are
  // committed. An order the view holds, not final yet, is announced from its
  // status; the order task records the same end in the order a transaction
  // later (EarlyFinals).
  void FollowStatuses() {
    constexpr size_t kBatch = 512;
    constexpr auto kPollTimeout = std::chrono::milliseconds(100);
    while (!stop_statuses_.load()) {
      kafka::OffsetMap reached;
      auto records = statuses_->Poll(kBatch, kPollTimeout, reached);
      std::vector<core::OrderRecord> finished;
      for (const auto& record : records) {
        auto message = core::Decode(record.value);
        if (!message.ok()) continue;  // the order task dead-letters it
        const auto* status = std::get_if<core::FinalStatus>(&message->payload);
        if (status == nullptr) continue;
        const core::OrderId id = message->saga_id;
        auto early = early_.OnStatus(id, *status, message->produced_at_ms, [&] { return ReadViewed(id); });
        if (early) finished.push_back(std::move(*early));
      }
      if (finished.empty()) continue;
      metrics().Add("orders_finished_early_total", static_cast<double>(finished.size()));
      Announce(finished);
    }
  }

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
    // Every order committed before the request is listed, whichever instance took it.
    if (auto s = view_->CatchUp(kReadCatchUp); !s.ok()) {
      throw HttpError{503, "the list of orders is not complete yet: " + s.error().message + "; retry later"};
    }
    json orders = json::array();
    view_->Scan("", [&](std::string_view, std::string_view value) {
      auto viewed = DecodeViewed(value);
      if (!viewed) return true;
      const auto r = early_.Overlay(std::move(viewed->record));
      if (!status || static_cast<int>(r.status) == *status) orders.push_back(runtime::OrderRecordToJson(r));
      return static_cast<int64_t>(orders.size()) < limit;
    });
    return HttpResponse::Json({{"orders", orders}, {"count", orders.size()}});
  }

  const OrderOptions options_;
  const runtime::Changelog orders_;
  std::mutex queues_mu_;
  std::map<int32_t, std::unique_ptr<Queue>> queues_;
  std::atomic<uint64_t> next_task_{0};
  std::unique_ptr<runtime::GlobalView> view_;

  std::mutex pending_mu_;
  std::map<std::string, std::shared_ptr<Pending>> pending_;  // by request message id
  // Answers of committed orders waiting for the view (AnswerWhenViewed), by order id.
  struct Unviewed {
    uint64_t ticket;
    runtime::HttpResponder responder;
    Accepted answer;
  };
  std::mutex unviewed_mu_;
  std::unordered_map<core::OrderId, std::vector<Unviewed>> unviewed_;
  uint64_t next_unviewed_ticket_ = 0;
  std::mutex outbox_mu_;
  std::condition_variable outbox_cv_;
  std::deque<std::shared_ptr<Pending>> outbox_;
  bool stop_forwarding_ = false;
  std::thread forwarder_;

  struct Waiter {
    uint64_t ticket;
    runtime::HttpResponder responder;
  };
  std::mutex waiters_mu_;
  std::unordered_map<core::OrderId, std::vector<Waiter>> waiters_;
  size_t waiter_count_ = 0;
  uint64_t next_ticket_ = 0;
  std::vector<runtime::HttpEventStream> streams_;

  EarlyFinals early_{kMaxEarlyFinals};
  std::unique_ptr<kafka::TopicTail> statuses_;
  std::atomic<bool> stop_statuses_{false};
  std::thread status_reader_;
};

// Records the new orders and the final statuses of one partition.
class OrderTask final : public runtime::ServiceTask {
 public:
  OrderTask(OrderService& service, int32_t task);
  ~OrderTask() override;

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
      if (record.topic == topics().neworder) {
        AcceptForwarded(tx, record, *message);
        continue;
      }
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
      if (IsFinal(r->status)) continue;  // duplicate
      // The same record as the early announcement made of it (EarlyFinals).
      RecordFinal(*r, *final_status, message->produced_at_ms);
      Put(tx, *r);
      metrics().Add("orders_finished_total", 1, "status=\"" + std::string(core::ToString(r->status)) + "\"");
      log().info("saga={} final status {}{}{}", message->saga_id, core::ToString(r->status),
                 r->detail.empty() ? "" : ": ", r->detail);
    }
  }

  void OnIdle(core::TxContext& tx) override {
    for (auto& item : service_.QueueOf(task()).Drain()) {
      if (item.request.state->abandoned.load()) continue;
      Accepted result = Accept(tx, item.request);
      in_flight_.emplace_back(std::move(item), result);
    }
  }

  void OnCommittedHook(const std::vector<kafka::Delivered>&) override {
    for (auto& [item, result] : in_flight_) {
      if (result.status == 200 && result.order_id != 0) {
        service_.AnswerWhenViewed(result.order_id, item.request.responder, result);
      } else {
        item.request.responder.Send(OrderService::AcceptedResponse(result));
      }
      item.promise->set_value(result);
    }
    in_flight_.clear();
  }

  void OnAbortedHook() override {
    std::vector<Queue::Item> again;
    for (auto& [item, result] : in_flight_) again.push_back(std::move(item));
    in_flight_.clear();
    service_.QueueOf(task()).Requeue(std::move(again));
  }

  // A final status: its clients learned it from the status reader already
  // (EarlyFinals), so its record may share the next new order's transaction.
  bool MayWait(const kafka::Record& record) const override { return record.topic == topics().status; }
  std::chrono::milliseconds IdleInterval() const override { return std::chrono::milliseconds(10); }
  size_t Waiting() const override { return service_.QueueOf(task()).size(); }

 private:
  // A POST /neworder another instance received for this partition. Its client
  // learns the outcome from the order record (whose causation is the
  // request), or from the record that makes it a replay or a conflict.
  void AcceptForwarded(core::TxContext& tx, const kafka::Record& record, const core::Message& message) {
    const auto* asked = std::get_if<core::OrderRecord>(&message.payload);
    if (asked == nullptr || asked->status != core::OrderStatus::kNew) {
      DeadLetter(tx, record, "expected a forwarded new order (OrderRecord with status NEW), got " +
                                 std::string(core::PayloadName(message.payload)));
      return;
    }
    // Its client has been told 503 already (or is about to be): recording it
    // now would make an order nobody knows of, unless it retries with its key.
    if (message.produced_at_ms + service_.accept_timeout().count() < core::NowMs()) {
      log().warn("saga={} forwarded new order {} dropped: produced {} ms ago, its client got 503", message.saga_id,
                 message.message_id, core::NowMs() - message.produced_at_ms);
      metrics().Add("order_requests_expired_total");
      return;
    }
    NewOrder request;
    request.order = asked->order;
    request.idempotency_key = asked->idempotency_key;
    request.request_id = message.message_id;
    (void)Accept(tx, request);
  }

  Accepted Accept(core::TxContext& tx, NewOrder& request) {
    if (!request.idempotency_key.empty()) {
      if (auto existing = Get("idem/" + request.idempotency_key)) {
        const core::OrderId id = std::stoll(*existing);
        // A retry must be the same order; a different body under a used key is a client bug.
        auto first = runtime::DecodeStored<core::OrderRecord>(Get(OrderKey(id)));
        return Replayed(request.idempotency_key, request.order, id,
                        first ? std::optional<core::Order>(first->order) : std::nullopt);
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
    Put(tx, r, request.request_id);
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

  void Put(core::TxContext& tx, const core::OrderRecord& r, const std::string& cause = "") {
    core::Message m{NewMessageId("order", r.order.order_id), r.order.order_id, cause, core::NowMs(), 1, r};
    EmitChangelog(tx, service_.orders(), core::SagaKey(r.order.order_id), m);
  }

  OrderService& service_;
  std::vector<std::pair<Queue::Item, Accepted>> in_flight_;
  uint64_t counter_ = 0;
  core::OrderId last_id_ = 0;
};

// The task serves its partition's queue from its creation (requests wait
// while it restores) until its partition leaves this instance; what is still
// queued then goes to the partition's next owner.
OrderTask::OrderTask(OrderService& service, int32_t task) : ServiceTask(service, task), service_(service) {
  service_.QueueOf(task).Open();
}

OrderTask::~OrderTask() { service_.ForwardAll(service_.QueueOf(task()).Close()); }

std::unique_ptr<runtime::ServiceTask> OrderService::CreateTask(int32_t task) {
  return std::make_unique<OrderTask>(*this, task);
}

}  // namespace

std::unique_ptr<runtime::Service> MakeOrder(runtime::ServiceOptions options, OrderOptions order) {
  return std::make_unique<OrderService>(std::move(options), order);
}

}  // namespace sagaflow::order
