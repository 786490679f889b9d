#include "sagaflow/payment/payment_service.hpp"

#include "sagaflow/runtime/order_json.hpp"

namespace sagaflow::payment {
namespace {

using runtime::HttpRequest;
using runtime::HttpResponse;

// Charges the orders of one partition.
class PaymentTask final : public runtime::ParticipantTask {
 public:
  PaymentTask(runtime::Participant& service, int32_t task, const runtime::Changelog& payments)
      : ParticipantTask(service, task), payments_(payments) {}

 protected:
  std::optional<core::StepReply> Recorded(const core::StepCommand& command) override {
    auto p = runtime::DecodeStored<core::Payment>(Get("payment/" + core::SagaKey(command.order.order_id)));
    if (!p) return std::nullopt;
    return core::StepReply{command.step, command.attempt, p->ok, p->detail};
  }

  core::StepReply Execute(core::TxContext& tx, const core::StepCommand& command, bool fail_on_purpose) override {
    const auto& order = command.order;
    core::Payment p{order.order_id, order.user_id, order.sum, order.payment, !fail_on_purpose, "", core::NowMs()};
    const char* method = order.payment == core::PaymentType::kSbp ? "SBP" : "card";
    p.detail = fail_on_purpose
                   ? "payment declined (failure injected: mistakes=" + std::to_string(participant().mistakes()) + "%)"
                   : "charged " + std::to_string(order.sum) + " by " + method;
    core::Message m{NewMessageId("payment", order.order_id), order.order_id, "", core::NowMs(), 1, p};
    EmitChangelog(tx, payments_, core::SagaKey(order.order_id), m);
    return {command.step, command.attempt, p.ok, p.detail};
  }

 private:
  const runtime::Changelog& payments_;
};

class PaymentService final : public runtime::Participant {
 public:
  PaymentService(runtime::ServiceOptions options, runtime::ParticipantOptions participant)
      : Participant("payment", core::Service::kPayment, std::move(options), participant),
        payments_{topics().payment_payments, "payment"} {}

  ~PaymentService() override { Stop(); }

  std::vector<std::string> InputTopics() const override { return {topics().payment_pay}; }
  std::vector<runtime::Changelog> Changelogs() const override { return {payments_}; }
  bool Handles(core::Step step) const override { return step == core::Step::kCharge; }
  bool MayFail(core::Step step) const override { return step == core::Step::kCharge; }
  std::string InvalidCommand(const core::StepCommand& command) const override {
    const auto& order = command.order;
    if (order.sum < 0) return "the sum to charge must not be negative, got " + std::to_string(order.sum);
    if (order.payment != core::PaymentType::kCard && order.payment != core::PaymentType::kSbp) {
      return "unknown payment type " + std::to_string(static_cast<int>(order.payment)) + " (1 card, 2 SBP)";
    }
    return {};
  }

 protected:
  std::unique_ptr<runtime::ServiceTask> CreateTask(int32_t task) override {
    return std::make_unique<PaymentTask>(*this, task, payments_);
  }

  void AddParticipantRoutes(runtime::HttpServer& http) override {
    http.Route("GET", R"(/payments/(\d+))", [this](const HttpRequest& req) {
      auto p = runtime::DecodeStored<core::Payment>(store().Get("payment/" + req.captures[0]));
      if (!p) return HttpResponse::Error(404, "no payment for order " + req.captures[0]);
      return HttpResponse::Json({{"order_id", p->order_id},
                                 {"user_id", p->user_id},
                                 {"amount", p->amount},
                                 {"payment", static_cast<int>(p->payment)},
                                 {"ok", p->ok},
                                 {"detail", p->detail},
                                 {"time", runtime::FormatTime(p->at_ms)}});
    });
  }

 private:
  const runtime::Changelog payments_;
};

}  // namespace

std::unique_ptr<runtime::Participant> MakePayment(runtime::ServiceOptions options,
                                                  runtime::ParticipantOptions participant) {
  return std::make_unique<PaymentService>(std::move(options), participant);
}

}  // namespace sagaflow::payment
