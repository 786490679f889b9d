#include "sagaflow/notification/notification_service.hpp"

#include "sagaflow/runtime/order_json.hpp"

namespace sagaflow::notification {
namespace {

using runtime::HttpRequest;
using runtime::HttpResponse;

// Notifies the customers of one partition's orders.
class NotificationTask final : public runtime::ParticipantTask {
 public:
  NotificationTask(runtime::Participant& service, int32_t task, const runtime::Changelog& sent)
      : ParticipantTask(service, task), sent_(sent) {}

 protected:
  std::optional<core::StepReply> Recorded(const core::StepCommand& command) override {
    auto n = runtime::DecodeStored<core::Notification>(Get("notification/" + core::SagaKey(command.order.order_id)));
    if (!n) return std::nullopt;
    return core::StepReply{command.step, command.attempt, n->ok, n->detail};
  }

  core::StepReply Execute(core::TxContext& tx, const core::StepCommand& command, bool fail_on_purpose) override {
    const auto& order = command.order;
    core::Notification n{order.order_id, order.user_id, order.notification, !fail_on_purpose, "", core::NowMs()};
    const char* channel = order.notification == core::NotificationType::kSms ? "SMS" : "email";
    n.detail = fail_on_purpose ? std::string(channel) + " not sent (failure injected: mistakes=" +
                                     std::to_string(participant().mistakes()) + "%)"
                               : std::string(channel) + " sent to user " + std::to_string(order.user_id);
    core::Message m{NewMessageId("notification", order.order_id), order.order_id, "", core::NowMs(), 1, n};
    EmitChangelog(tx, sent_, core::SagaKey(order.order_id), m);
    return {command.step, command.attempt, n.ok, n.detail};
  }

 private:
  const runtime::Changelog& sent_;
};

class NotificationService final : public runtime::Participant {
 public:
  NotificationService(runtime::ServiceOptions options, runtime::ParticipantOptions participant)
      : Participant("notification", core::Service::kNotification, std::move(options), participant),
        sent_{topics().notification_sent, "notification"} {}

  ~NotificationService() override { Stop(); }

  std::vector<std::string> InputTopics() const override { return {topics().notification_send}; }
  std::vector<runtime::Changelog> Changelogs() const override { return {sent_}; }
  bool Handles(core::Step step) const override { return step == core::Step::kNotify; }
  bool MayFail(core::Step step) const override { return step == core::Step::kNotify; }
  std::string InvalidCommand(const core::StepCommand& command) const override {
    const auto channel = command.order.notification;
    if (channel != core::NotificationType::kEmail && channel != core::NotificationType::kSms) {
      return "unknown notification type " + std::to_string(static_cast<int>(channel)) + " (1 email, 2 SMS)";
    }
    return {};
  }

 protected:
  std::unique_ptr<runtime::ServiceTask> CreateTask(int32_t task) override {
    return std::make_unique<NotificationTask>(*this, task, sent_);
  }

  void AddParticipantRoutes(runtime::HttpServer& http) override {
    http.Route("GET", R"(/notifications/(\d+))", [this](const HttpRequest& req) {
      auto n = runtime::DecodeStored<core::Notification>(store().Get("notification/" + req.captures[0]));
      if (!n) return HttpResponse::Error(404, "no notification for order " + req.captures[0]);
      return HttpResponse::Json({{"order_id", n->order_id},
                                 {"user_id", n->user_id},
                                 {"channel", static_cast<int>(n->channel)},
                                 {"ok", n->ok},
                                 {"detail", n->detail},
                                 {"time", runtime::FormatTime(n->at_ms)}});
    });
  }

 private:
  const runtime::Changelog sent_;
};

}  // namespace

std::unique_ptr<runtime::Participant> MakeNotification(runtime::ServiceOptions options,
                                                       runtime::ParticipantOptions participant) {
  return std::make_unique<NotificationService>(std::move(options), participant);
}

}  // namespace sagaflow::notification
