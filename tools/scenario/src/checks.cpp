#include "sagaflow/scenario/checks.hpp"

#include <algorithm>

namespace sagaflow::scenario {

namespace {

using core::OrderStatus;

/// Collects problems, keeping the first few and counting the rest.
class Problems {
 public:
  void Add(std::string p) {
    ++count_;
    if (list_.size() < CheckResult::kMaxProblems) list_.push_back(std::move(p));
  }
  size_t count() const { return count_; }
  std::vector<std::string> Take() {
    if (count_ > list_.size()) list_.push_back("... and " + std::to_string(count_ - list_.size()) + " more");
    return std::move(list_);
  }

 private:
  size_t count_ = 0;
  std::vector<std::string> list_;
};

CheckResult Finish(std::string name, std::string numbers, Problems& problems, const Observation& o) {
  for (const auto& u : o.unreadable) problems.Add("unreadable: " + u);
  CheckResult r;
  r.name = std::move(name);
  r.passed = problems.count() == 0;
  r.numbers = std::move(numbers);
  r.problems = problems.Take();
  return r;
}

std::string Id(core::OrderId id) { return std::to_string(id); }

}  // namespace

std::map<core::OrderId, core::OrderRecord> LatestOrders(const std::vector<core::OrderRecord>& records) {
  std::map<core::OrderId, core::OrderRecord> latest;
  for (const auto& r : records) {
    auto [it, fresh] = latest.emplace(r.order.order_id, r);
    // A record never goes back from a final status (a late duplicate of the
    // accepted record must not hide the end).
    if (!fresh && !(core::IsFinal(it->second.status) && !core::IsFinal(r.status))) it->second = r;
  }
  return latest;
}

CheckResult CheckAllTerminal(const Observation& o) {
  Problems problems;
  const auto latest = LatestOrders(o.order_records);
  int64_t ok = 0, not_ok = 0, open = 0, lost = 0;
  for (const auto& [id, r] : latest) {
    if (r.status == OrderStatus::kOk) {
      ++ok;
    } else if (r.status == OrderStatus::kNotOk) {
      ++not_ok;
    } else {
      ++open;
      problems.Add("order " + Id(id) + " is " + std::string(core::ToString(r.status)));
    }
  }
  for (const auto id : o.acknowledged) {
    if (!latest.contains(id)) {
      ++lost;
      problems.Add("order " + Id(id) + " was acknowledged to its client but is not in the order changelog");
    }
  }
  if (o.never_acknowledged > 0) {
    problems.Add(std::to_string(o.never_acknowledged) +
                 " order(s) never acknowledged: POST /neworder failed until the client's order timeout");
  }
  const std::string numbers = std::to_string(latest.size()) + " orders: " + std::to_string(ok) + " OK, " +
                              std::to_string(not_ok) + " NOT OK, " + std::to_string(open) + " not terminal; " +
                              std::to_string(o.acknowledged.size()) + " acknowledged, " + std::to_string(lost) +
                              " lost, " + std::to_string(o.never_acknowledged) + " never acknowledged";
  return Finish("all_terminal", numbers, problems, o);
}

CheckResult CheckStockConserved(const Observation& o) {
  Problems problems;
  std::map<core::ItemId, int64_t> ok_quantity;
  for (const auto& [id, r] : LatestOrders(o.order_records)) {
    if (r.status != OrderStatus::kOk) continue;
    for (const auto& item : r.order.items) ok_quantity[item.item_id] += item.quantity;
  }
  std::set<core::ItemId> items;
  for (const auto& [item, level] : o.stock_after) items.insert(item);
  for (const auto& [item, q] : ok_quantity) items.insert(item);
  int64_t total_reserved = 0, total_ok = 0;
  for (const auto item : items) {
    const auto before_it = o.stock_before.find(item);
    const ItemStock before = before_it != o.stock_before.end() ? before_it->second : ItemStock{o.default_stock, 0};
    const auto after_it = o.stock_after.find(item);
    const ItemStock after = after_it != o.stock_after.end() ? after_it->second : before;
    const int64_t grew = after.reserved - before.reserved;
    total_reserved += grew;
    total_ok += ok_quantity[item];
    if (after.available + after.reserved != before.available + before.reserved) {
      problems.Add("item " + std::to_string(item) + ": available + reserved went from " +
                   std::to_string(before.available + before.reserved) + " to " +
                   std::to_string(after.available + after.reserved));
    }
    if (grew != ok_quantity[item]) {
      problems.Add("item " + std::to_string(item) + ": reserved grew by " + std::to_string(grew) +
                   " but the OK orders hold " + std::to_string(ok_quantity[item]));
    }
    if (after.available < 0 || after.reserved < 0) {
      problems.Add("item " + std::to_string(item) + ": negative stock (available " + std::to_string(after.available) +
                   ", reserved " + std::to_string(after.reserved) + ")");
    }
  }
  const std::string numbers = std::to_string(items.size()) + " items: reserved grew by " +
                              std::to_string(total_reserved) + ", OK orders hold " + std::to_string(total_ok) +
                              " units";
  return Finish("stock_conserved", numbers, problems, o);
}

CheckResult CheckOneChargePerOk(const Observation& o) {
  Problems problems;
  std::map<core::OrderId, std::vector<const core::Payment*>> charges;  // successful only
  int64_t declined = 0;
  for (const auto& p : o.payments) {
    if (p.ok) {
      charges[p.order_id].push_back(&p);
    } else {
      ++declined;
    }
  }
  int64_t ok_orders = 0, not_ok_orders = 0, charged_right = 0;
  for (const auto& [id, r] : LatestOrders(o.order_records)) {
    const auto it = charges.find(id);
    const size_t n = it == charges.end() ? 0 : it->second.size();
    if (r.status == OrderStatus::kOk) {
      ++ok_orders;
      if (n != 1) {
        problems.Add("OK order " + Id(id) + " has " + std::to_string(n) + " successful charges");
      } else if (it->second.front()->amount != r.order.sum) {
        problems.Add("OK order " + Id(id) + " was charged " + std::to_string(it->second.front()->amount) +
                     ", its sum is " + std::to_string(r.order.sum));
      } else {
        ++charged_right;
      }
    } else if (r.status == OrderStatus::kNotOk) {
      ++not_ok_orders;
      if (n != 0) problems.Add("NOT OK order " + Id(id) + " has " + std::to_string(n) + " successful charge(s)");
    }
  }
  const std::string numbers = std::to_string(charged_right) + " of " + std::to_string(ok_orders) +
                              " OK orders charged once with their sum; " + std::to_string(not_ok_orders) +
                              " NOT OK orders; " + std::to_string(declined) + " declined payments";
  return Finish("one_charge_per_ok", numbers, problems, o);
}

CheckResult CheckNoDuplicates(const Observation& o) {
  Problems problems;
  const auto latest = LatestOrders(o.order_records);
  std::map<std::string, std::set<core::OrderId>> ids_of_key;
  for (const auto& r : o.order_records) {
    if (!r.idempotency_key.empty()) ids_of_key[r.idempotency_key].insert(r.order.order_id);
  }
  int64_t duplicated_orders = 0;
  for (const auto& [key, ids] : ids_of_key) {
    if (ids.size() > 1) {
      ++duplicated_orders;
      problems.Add("Idempotency-Key '" + key + "' has " + std::to_string(ids.size()) + " orders");
    }
  }
  auto effects = [&](const char* what, const std::map<core::OrderId, int>& per_order) {
    int64_t doubled = 0;
    for (const auto& [id, n] : per_order) {
      if (n > 1) {
        ++doubled;
        problems.Add(std::string(what) + ": " + std::to_string(n) + " records for order " + Id(id));
      }
      if (!latest.contains(id)) problems.Add(std::string(what) + " for order " + Id(id) + ", which nobody placed");
    }
    return doubled;
  };
  std::map<core::OrderId, int> payments_of, notifications_of;
  for (const auto& p : o.payments) ++payments_of[p.order_id];
  for (const auto& n : o.notifications) ++notifications_of[n.order_id];
  const auto doubled_payments = effects("payment", payments_of);
  const auto doubled_notifications = effects("notification", notifications_of);
  for (const auto& [id, n] : notifications_of) {
    const auto it = latest.find(id);
    if (it != latest.end() && it->second.status == OrderStatus::kNotOk) {
      problems.Add("notification for order " + Id(id) + ", which is NOT OK");
    }
  }
  const std::string numbers = std::to_string(ids_of_key.size()) + " keys, " + std::to_string(duplicated_orders) +
                              " with >1 order; " + std::to_string(o.payments.size()) + " payment records (" +
                              std::to_string(doubled_payments) + " orders doubled); " +
                              std::to_string(o.notifications.size()) + " notification records (" +
                              std::to_string(doubled_notifications) + " doubled)";
  return Finish("no_duplicates", numbers, problems, o);
}

CheckResult CheckDlqExact(const Observation& o) {
  Problems problems;
  std::multiset<std::pair<std::string, std::string>> expected(o.injected.begin(), o.injected.end());
  std::multiset<std::pair<std::string, std::string>> unmatched = expected;
  for (const auto& d : o.dead_letters) {
    const auto it = unmatched.find({d.source_topic, d.original});
    if (it != unmatched.end()) {
      unmatched.erase(it);
      continue;
    }
    const bool repeat = expected.contains({d.source_topic, d.original});
    problems.Add(std::string(repeat ? "an injected record dead-lettered twice: " : "unexpected dead letter: ") +
                 "from " + d.service + ", " + d.source_topic + "[" + std::to_string(d.source_partition) + "]@" +
                 std::to_string(d.source_offset) + ": " + d.reason);
  }
  for (const auto& [topic, value] : unmatched) {
    problems.Add("an injected record on " + topic + " is not in the dead-letter topic (" + std::to_string(value.size()) +
                 " bytes)");
  }
  const std::string numbers = std::to_string(o.dead_letters.size()) + " dead letters, " +
                              std::to_string(o.injected.size()) + " injected, " + std::to_string(unmatched.size()) +
                              " missing";
  return Finish("dlq_exact", numbers, problems, o);
}

}  // namespace sagaflow::scenario
