#include "sagaflow/runtime/order_json.hpp"

#include <ctime>

#include "sagaflow/runtime/http_server.hpp"

namespace sagaflow::runtime {
namespace {

using nlohmann::json;

[[noreturn]] void Bad(const std::string& message) { throw HttpError{400, message}; }

int64_t Integer(const json& body, const char* field, bool required, int64_t min, int64_t fallback = 0) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) {
    if (required) Bad(std::string("missing field \"") + field + "\"");
    return fallback;
  }
  if (!it->is_number_integer()) {
    Bad(std::string("field \"") + field + "\" must be an integer, got " + it->type_name() + " " + it->dump());
  }
  const auto v = it->get<int64_t>();
  if (v < min) Bad(std::string("field \"") + field + "\" must be >= " + std::to_string(min) + ", got " + std::to_string(v));
  return v;
}

std::string String(const json& body, const char* field) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return "";
  if (!it->is_string()) Bad(std::string("field \"") + field + "\" must be a string, got " + it->type_name());
  auto value = it->get<std::string>();
  // Would be cut short by C-string handling downstream (logs, some tools): refuse it here.
  if (value.find('\0') != std::string::npos) Bad(std::string("field \"") + field + "\" must not contain a NUL character");
  return value;
}

}  // namespace

core::Order OrderFromJson(const json& body) {
  if (!body.is_object()) Bad("expected a JSON object");
  core::Order o;
  o.order_id = Integer(body, "order_id", false, 0);
  o.user_id = Integer(body, "user_id", false, 0);
  const auto payment = Integer(body, "payment", true, 0);
  if (payment != 1 && payment != 2) {
    Bad("unknown payment type " + std::to_string(payment) + " (1 = card, 2 = SBP)");
  }
  o.payment = static_cast<core::PaymentType>(payment);
  const auto notification = Integer(body, "notification", true, 0);
  if (notification != 1 && notification != 2) {
    Bad("unknown notification type " + std::to_string(notification) + " (1 = email, 2 = SMS)");
  }
  o.notification = static_cast<core::NotificationType>(notification);
  o.created_at = String(body, "created_at");
  o.approved_at = String(body, "approved_at");
  o.sum = Integer(body, "sum", false, 0);
  (void)Integer(body, "status", false, 0);
  (void)String(body, "detail");

  auto items = body.find("items");
  if (items == body.end() || items->is_null()) Bad("missing field \"items\"");
  if (!items->is_array()) Bad(std::string("field \"items\" must be an array, got ") + items->type_name());
  if (items->empty()) Bad("field \"items\" is empty: an order needs at least one item");
  if (items->size() > 1000) Bad("too many items (" + std::to_string(items->size()) + "; at most 1000)");
  for (size_t i = 0; i < items->size(); ++i) {
    const auto& item = (*items)[i];
    const std::string where = "items[" + std::to_string(i) + "]";
    if (!item.is_object()) Bad(where + " must be an object");
    try {
      core::Item out;
      out.item_id = Integer(item, "item_id", true, 0);
      const auto quantity = Integer(item, "quantity", true, 0);
      if (quantity < 1) Bad("quantity must be at least 1, got " + std::to_string(quantity));
      if (quantity > 1'000'000'000) Bad("quantity is too large");
      out.quantity = static_cast<int32_t>(quantity);
      out.price = Integer(item, "price", false, 0);
      o.items.push_back(out);
    } catch (const HttpError& e) {
      Bad(where + ": " + e.message);
    }
  }
  return o;
}

json OrderToJson(const core::Order& o) {
  json items = json::array();
  for (const auto& i : o.items) items.push_back({{"item_id", i.item_id}, {"quantity", i.quantity}, {"price", i.price}});
  return {{"order_id", o.order_id},
          {"user_id", o.user_id},
          {"payment", static_cast<int>(o.payment)},
          {"notification", static_cast<int>(o.notification)},
          {"created_at", o.created_at},
          {"approved_at", o.approved_at},
          {"sum", o.sum},
          {"items", items}};
}

json StepRecordToJson(const core::StepRecord& s) {
  json out = {{"step", core::ToString(s.step)},
              {"service", core::ToString(core::ServiceOf(s.step))},
              {"attempt", s.attempt},
              {"result", s.ok ? "OK" : "NOT OK"},
              {"time", FormatTime(s.at_ms)},
              {"detail", s.detail}};
  // A leg of a step fanned out per item: the item it was for.
  if (s.leg != core::kNoLeg) out["item_id"] = s.leg;
  return out;
}

json OrderRecordToJson(const core::OrderRecord& r) {
  json out = OrderToJson(r.order);
  out["status"] = static_cast<int>(r.status);
  out["status_text"] = core::ToString(r.status);
  out["detail"] = r.detail;
  json steps = json::array();
  for (const auto& s : r.steps) steps.push_back(StepRecordToJson(s));
  out["steps"] = steps;
  out["accepted_at"] = FormatTime(r.accepted_at_ms);
  out["finished_at"] = r.finished_at_ms == 0 ? json(nullptr) : json(FormatTime(r.finished_at_ms));
  return out;
}

std::string FormatTime(core::TimeMs ms) {
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  const size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  char out[64];
  std::snprintf(out, sizeof(out), "%.*s.%03dZ", static_cast<int>(n), buf, static_cast<int>(ms % 1000));
  return out;
}

}  // namespace sagaflow::runtime
