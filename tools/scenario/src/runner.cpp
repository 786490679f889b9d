#include "sagaflow/scenario/runner.hpp"

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "sagaflow/bench/load_driver.hpp"
#include "sagaflow/core/codec.hpp"
#include "sagaflow/core/kafka/kafka_client.hpp"
#include "sagaflow/core/topics.hpp"
#include "sagaflow/replay/replay_command.hpp"
#include "sagaflow/runtime/http_client.hpp"

namespace sagaflow::scenario {

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

// Set by SIGINT/SIGTERM: every wait of the run gives up, and what was started is stopped.
std::atomic<bool> g_stop{false};
extern "C" void OnSignal(int) { g_stop.store(true); }

/// A step could not be carried out, or the run was interrupted.
struct StepFailed {
  std::string message;
};

std::string Fixed(double v, int digits = 1) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

/// Where the runs write: whole lines under one lock, each line tagged with
/// its scenario's name when several scenarios run at once.
class RunLog {
 public:
  RunLog(std::ostream& out, bool tagged) : out_(out), tagged_(tagged) {}
  void Line(const std::string& scenario, const std::string& line) {
    std::lock_guard lock(mu_);
    if (tagged_) out_ << "[" << scenario << "] ";
    out_ << line << std::endl;
  }
  void Block(const std::string& text) {
    std::lock_guard lock(mu_);
    out_ << text << std::endl;
  }

 private:
  std::ostream& out_;
  const bool tagged_;
  std::mutex mu_;
};

/// Everything one scenario's run needs.
class ScenarioRun {
 public:
  ScenarioRun(const Scenario& scenario, Backend& backend, RunLog& log)
      : s_(scenario), backend_(backend), log_(log) {
    result_.name = scenario.name;
    result_.file = scenario.file;
    result_.backend = backend.Name();
  }

  ~ScenarioRun() {
    for (auto& l : loads_) l->stop.store(true);
    JoinLoads();
  }
  ScenarioRun(const ScenarioRun&) = delete;
  ScenarioRun& operator=(const ScenarioRun&) = delete;

  ScenarioResult Run(bool keep) {
    started_ = Clock::now();
    Say("scenario " + s_.name + " (" + s_.file + ", " + backend_.Name() + " backend): " + FirstLine(s_.description));
    bool failed_to_run = false;
    try {
      Setup();
      for (const auto& step : s_.steps) RunStep(step);
      FinishLoads();
      Check();
    } catch (const StepFailed& e) {
      result_.error = e.message;
      failed_to_run = true;
      Say("FAILED: " + e.message);
    }
    result_.seconds = Seconds();
    // Loads still running (a step failed) place no more orders; the system
    // goes away first so that they stop following their orders at once.
    for (auto& l : loads_) l->stop.store(true);
    backend_.StopSystem(keep || failed_to_run || !result_.passed());
    // After a signal the load threads are left alone: they would follow their
    // orders in flight until the order timeout; RunScenarios ends the process.
    if (!g_stop.load()) JoinLoads();
    if (!result_.passed()) Say("logs kept: " + backend_.LogHint());
    return result_;
  }

 private:
  // ---- output ----
  double Seconds() const { return std::chrono::duration<double>(Clock::now() - started_).count(); }
  void Say(const std::string& line) {
    char prefix[32];
    std::snprintf(prefix, sizeof(prefix), "[%7.1f s] ", Seconds());
    log_.Line(s_.name, prefix + line);
  }
  static std::string FirstLine(const std::string& text) {
    const auto nl = text.find('\n');
    return nl == std::string::npos ? text : text.substr(0, nl);
  }

  // ---- waiting ----
  /// Sleeps until `until`, watching the processes and the stop flag.
  void SleepUntil(Clock::time_point until) {
    while (true) {
      if (g_stop.load()) {
        for (auto& l : loads_) l->stop.store(true);
        throw StepFailed{"interrupted"};
      }
      WatchProcesses();
      const auto now = Clock::now();
      if (now >= until) return;
      std::this_thread::sleep_for(std::min<Clock::duration>(until - now, 100ms));
    }
  }
  void WatchProcesses() {
    const auto exits = backend_.UnexpectedExits();
    for (size_t i = reported_exits_; i < exits.size(); ++i) Say("UNEXPECTED: " + exits[i]);
    reported_exits_ = exits.size();
  }

  // ---- HTTP ----
  json Http(const std::string& service, const std::string& method, const std::string& path,
            const std::string& body = "", int* status = nullptr, int instance = 1) {
    runtime::HttpClient client("127.0.0.1", backend_.Port(service, instance));
    std::map<std::string, std::string> headers;
    if (method == "POST" && !backend_.AdminToken().empty()) headers["Authorization"] = "Bearer " + backend_.AdminToken();
    auto res = client.Request(method, path, body, headers, 10s);
    if (status != nullptr) *status = res.ok() ? res->status : 0;
    if (!res.ok()) return nullptr;
    auto j = json::parse(res->body, nullptr, false);
    if (status != nullptr && j.is_discarded()) return json{{"body", res->body}};
    return j.is_discarded() ? json(nullptr) : j;
  }

  /// Sagas not ended yet, by the orchestrator (-1 if it does not answer).
  int64_t InFlight() {
    int status = 0;
    auto j = Http("orchestrator", "GET", "/sagas?limit=1", "", &status);
    if (status != 200 || !j.contains("counts")) return -1;
    int64_t n = 0;
    for (const auto& [phase, count] : j["counts"].items()) {
      if (phase != "ended" && count.is_number_integer()) n += count.get<int64_t>();
    }
    return n;
  }

  /// POST /set on `instance` of a participant, or on every instance (0): the
  /// mistakes and delay are a setting of each instance.
  void ApplySettings(const std::string& service, int instance = 0) {
    const auto& p = backend_.Participant(service);
    const json body = {{"mistakes", p.mistakes}, {"delay_ms", {p.delay.min, p.delay.max}}};
    const int first = instance == 0 ? 1 : instance;
    const int last = instance == 0 ? backend_.Instances(service, s_.system.InstancesOf(service)) : instance;
    for (int i = first; i <= last; ++i) {
      int status = 0;
      auto answer = Http(service, "POST", "/set", body.dump(), &status, i);
      if (status != 200) {
        throw StepFailed{"POST /set on " + TargetName(service, i) + " answered " + std::to_string(status) + ": " +
                         (answer.is_null() ? std::string("no answer") : answer.dump()) +
                         (backend_.AdminToken().empty() ? " (no admin token: see --admin-token-file)" : "")};
      }
    }
  }

  // ---- setup ----
  void Setup() {
    for (const auto& p : kParticipants) {
      ParticipantSettings settings;
      if (s_.system.mistakes.contains(p)) settings.mistakes = s_.system.mistakes.at(p);
      if (s_.system.delays.contains(p)) settings.delay = s_.system.delays.at(p);
      backend_.SetParticipant(p, settings);
    }
    const std::string prefix = "scn-" + s_.name + "-" + std::to_string(core::NowMs()) + ".";
    if (auto st = backend_.StartSystem(s_, prefix); !st.ok()) throw StepFailed{"starting the system: " + st.error().message};
    topics_ = core::TopicNames(backend_.TopicPrefix());
    config_ = kafka::KafkaConfig{backend_.Brokers(), backend_.KafkaProperties()};
    // The compose stack's services were started with their own settings: give them the scenario's.
    if (backend_.Name() != "local") {
      for (const auto& p : kParticipants) ApplySettings(p);
    }
    start_ms_ = core::NowMs();
    for (const auto* topic : {&topics_.order_orders, &topics_.payment_payments, &topics_.notification_sent, &topics_.dlq}) {
      auto end = kafka::EndOffsets(config_, *topic);
      if (!end.ok()) throw StepFailed{"reading the end of " + *topic + ": " + end.error().message};
      start_offsets_[*topic] = *end;
    }
    stock_before_ = Stock();
    Say("system ready: broker " + backend_.Brokers() + ", topic prefix '" + backend_.TopicPrefix() + "', order service on port " +
        std::to_string(backend_.Port("order")));
    steps_started_ = Clock::now();
  }

  // ---- steps ----
  void RunStep(const Step& step) {
    if (step.at) SleepUntil(steps_started_ + *step.at);
    const std::string where = "line " + std::to_string(step.line) + ": ";
    const std::string name = TargetName(step.target, step.instance);
    switch (step.kind) {
      case StepKind::kLoad: StartLoad(step); break;
      case StepKind::kSet: {
        auto settings = backend_.Participant(step.target);
        if (step.mistakes) settings.mistakes = *step.mistakes;
        if (step.delay) settings.delay = *step.delay;
        backend_.SetParticipant(step.target, settings);
        ApplySettings(step.target);
        Say("set " + step.target + ": mistakes " + std::to_string(settings.mistakes) + "%, delay " +
            std::to_string(settings.delay.min) + ".." + std::to_string(settings.delay.max) + " ms");
        ++result_.faults["set " + step.target];
        break;
      }
      case StepKind::kKill: {
        const auto in_flight = InFlight();
        Do(where, "kill -9 " + name + " (" + Sent() + ", " + InFlightText(in_flight) + ")",
           [&] { return backend_.Kill(step.target, step.instance); });
        ++result_.faults["kill " + name];
        break;
      }
      case StepKind::kPause:
        Do(where, "pause " + name + " (SIGSTOP; " + Sent() + ")",
           [&] { return backend_.Pause(step.target, step.instance); });
        ++result_.faults["pause " + name];
        break;
      case StepKind::kResume:
        Do(where, "resume " + name + " (SIGCONT)", [&] { return backend_.Resume(step.target, step.instance); });
        break;
      case StepKind::kRestart: {
        const auto t0 = Clock::now();
        Do(where, "restart " + name, [&] { return backend_.Restart(step.target, step.instance, 180s); });
        Say(name + " healthy " + Fixed(std::chrono::duration<double>(Clock::now() - t0).count()) +
            " s after the restart");
        if (std::find(kParticipants.begin(), kParticipants.end(), step.target) != kParticipants.end() &&
            backend_.Name() != "local") {
          ApplySettings(step.target, step.instance);  // a container restart forgets POST /set
        }
        ++result_.faults["restart " + name];
        break;
      }
      case StepKind::kWipe: {
        const auto t0 = Clock::now();
        Do(where, "wipe " + name + ": kill -9, delete its data, start it (" + Sent() + ")",
           [&] { return backend_.Wipe(step.target, step.instance, 300s); });
        Say(name + " rebuilt and healthy after " + Fixed(std::chrono::duration<double>(Clock::now() - t0).count()) +
            " s");
        if (std::find(kParticipants.begin(), kParticipants.end(), step.target) != kParticipants.end() &&
            backend_.Name() != "local") {
          ApplySettings(step.target, step.instance);
        }
        ++result_.faults["wipe " + name];
        break;
      }
      case StepKind::kInject: Inject(step); break;
      case StepKind::kWait: Wait(step); break;
    }
  }

  template <class F>
  void Do(const std::string& where, const std::string& what, F&& action) {
    Say(what);
    if (auto st = action(); !st.ok()) throw StepFailed{where + what + ": " + st.error().message};
  }

  std::string Sent() const {
    int64_t sent = 0;
    for (const auto& l : loads_) sent += l->sent.load();
    return std::to_string(sent) + " orders sent";
  }
  static std::string InFlightText(int64_t n) {
    return n < 0 ? "sagas in flight unknown" : std::to_string(n) + " sagas in flight";
  }

  struct Load {
    bench::LoadOptions options;
    std::atomic<int64_t> sent{0};
    std::atomic<bool> done{false};
    /// Set when the run gives up (a failed step, a signal): no more orders are placed.
    std::atomic<bool> stop{false};
    bench::LoadResult result;
    std::thread thread;
  };

  void StartLoad(const Step& step) {
    auto load = std::make_unique<Load>();
    auto& o = load->options;
    o.order_url = "http://127.0.0.1:" + std::to_string(backend_.Port("order"));
    o.orders = step.load.orders;
    o.duration = step.load.duration;
    o.concurrency = step.load.concurrency;
    o.rate = step.load.rate;
    o.first_item_id = step.load.first_item;
    o.items = step.load.items;
    o.items_per_order = static_cast<int>(std::min<int64_t>(2, step.load.items));
    o.max_quantity = step.load.max_quantity;
    o.timeout = step.load.order_timeout;
    // Different loads of one scenario place different orders (the Idempotency-Keys differ too).
    o.seed = step.load.seed + 7919 * loads_.size() + static_cast<uint64_t>(start_ms_);
    o.retry = true;
    // Often, so that the steps can say how many orders were sent; printed every 5 s.
    o.progress_interval = 1s;
    o.stop = &load->stop;
    if (auto error = bench::Validate(o)) throw StepFailed{"line " + std::to_string(step.line) + ": load: " + *error};
    Say("load: " + (o.orders > 0 ? std::to_string(o.orders) + " orders" : std::string("orders")) +
        (o.duration.count() > 0 ? " for " + FormatDuration(o.duration) : std::string()) +
        (o.rate > 0 ? " at " + Fixed(o.rate) + "/s" : " at concurrency " + std::to_string(o.concurrency)) +
        ", items " + std::to_string(o.first_item_id) + ".." + std::to_string(o.first_item_id + o.items - 1));
    Load* l = load.get();
    load->thread = std::thread([this, l] {
      l->result = bench::RunLoad(l->options, [this, l](const bench::Progress& p) {
        l->sent.store(p.sent);
        std::lock_guard lock(progress_mu_);
        progress_ = "load: " + std::to_string(p.sent) + " sent, " + std::to_string(p.done) + " done (" +
                    std::to_string(p.ok) + " OK, " + std::to_string(p.not_ok) + " NOT OK, " +
                    std::to_string(p.failed) + " failed), " + std::to_string(p.in_flight) + " in flight";
      });
      l->sent.store(l->result.sent);
      l->done.store(true);
    });
    loads_.push_back(std::move(load));
  }

  bool LoadsDone() const {
    return std::all_of(loads_.begin(), loads_.end(), [](const auto& l) { return l->done.load(); });
  }

  void PrintProgress() {
    if (Clock::now() < next_progress_) return;
    std::string p;
    {
      std::lock_guard lock(progress_mu_);
      p.swap(progress_);
    }
    if (p.empty()) return;
    Say(p);
    next_progress_ = Clock::now() + 5s;
  }

  void FinishLoads() {
    if (!loads_.empty() && !LoadsDone()) Say("waiting for the load to finish");
    while (!LoadsDone()) {
      SleepUntil(Clock::now() + 200ms);
      PrintProgress();
    }
    for (auto& l : loads_) {
      if (l->thread.joinable()) l->thread.join();
      if (!l->result.error.empty()) throw StepFailed{"load: " + l->result.error};
      result_.orders_sent += l->result.sent;
      for (const auto& o : l->result.orders) {
        if (o.order_id != 0) {
          acknowledged_.insert(o.order_id);
        } else {
          ++never_acknowledged_;
        }
      }
      Say("load finished: " + std::to_string(l->result.sent) + " sent, " + std::to_string(l->result.ok) + " OK, " +
          std::to_string(l->result.not_ok) + " NOT OK, " + std::to_string(l->result.http_errors) + " never accepted, " +
          std::to_string(l->result.timeouts) + " not finished within the order timeout, in " +
          Fixed(l->result.wall_s) + " s");
    }
    result_.orders_accepted = static_cast<int64_t>(acknowledged_.size());
  }

  void JoinLoads() {
    for (auto& l : loads_) {
      if (l->thread.joinable()) l->thread.join();
    }
  }

  void Inject(const Step& step) {
    const std::string topic = backend_.TopicPrefix() + step.topic;
    auto producer = kafka::TransactionalProducer::Open(config_, backend_.TopicPrefix() + "scenario-injector", 30s);
    if (!producer.ok()) throw StepFailed{"inject: " + producer.error().message};
    auto& p = *producer.value();
    if (auto st = p.Begin(); !st.ok()) throw StepFailed{"inject: " + st.error().message};
    for (int i = 0; i < step.count; ++i) {
      const auto n = injected_.size();
      const std::string value = "not a sagaflow record: injected on purpose by scenario " + s_.name + " (#" +
                                std::to_string(n) + ", " + std::to_string(start_ms_) + ")";
      if (auto st = p.Produce(topic, "malformed-" + std::to_string(n), value); !st.ok()) {
        throw StepFailed{"inject: " + st.error().message};
      }
      injected_.push_back({topic, value});
    }
    if (auto d = p.Commit(); !d.ok()) throw StepFailed{"inject: " + d.error().message};
    Say("inject " + std::to_string(step.count) + " malformed record(s) on " + topic);
    result_.faults["inject"] += step.count;
  }

  void Wait(const Step& step) {
    const std::string where = "line " + std::to_string(step.line) + ": ";
    const auto t0 = Clock::now();
    const auto deadline = t0 + step.duration;
    auto waited = [&] { return Fixed(std::chrono::duration<double>(Clock::now() - t0).count()) + " s"; };
    switch (step.condition) {
      case WaitCondition::kNone:
        Say("wait " + FormatDuration(step.duration));
        while (Clock::now() < deadline) {
          SleepUntil(std::min(deadline, Clock::now() + 1s));
          PrintProgress();
        }
        return;
      case WaitCondition::kLoadDone:
        Say("wait until the load is done (at most " + FormatDuration(step.duration) + ")");
        while (!LoadsDone()) {
          if (Clock::now() > deadline) throw StepFailed{where + "the load did not finish within " + FormatDuration(step.duration)};
          SleepUntil(Clock::now() + 200ms);
          PrintProgress();
        }
        Say("load done after " + waited());
        return;
      case WaitCondition::kAllTerminal: {
        Say("wait until every order is terminal (at most " + FormatDuration(step.duration) + ")");
        int64_t open = -1;
        while ((open = NotTerminal()) != 0) {
          if (Clock::now() > deadline) {
            throw StepFailed{where + std::to_string(open) + " order(s) still not terminal after " + FormatDuration(step.duration)};
          }
          SleepUntil(Clock::now() + 500ms);
        }
        Say("every order terminal after " + waited());
        return;
      }
      case WaitCondition::kHealthy: {
        const std::string name = TargetName(step.target, step.instance);
        Say("wait until " + name + " is healthy (at most " + FormatDuration(step.duration) + ")");
        while (!backend_.Healthy(step.target, step.instance)) {
          if (Clock::now() > deadline) throw StepFailed{where + name + " not healthy within " + FormatDuration(step.duration)};
          SleepUntil(Clock::now() + 200ms);
        }
        Say(name + " healthy after " + waited());
        return;
      }
    }
  }

  // ---- reading what happened ----
  template <class T>
  std::vector<T> Read(const std::string& topic, std::vector<std::string>* unreadable) {
    std::vector<T> out;
    auto end = kafka::ReadToEnd(config_, topic, start_offsets_[topic], [&](const kafka::Record& r) {
      auto m = core::Decode(r.value);
      if (!m.ok()) {
        unreadable->push_back(topic + "[" + std::to_string(r.partition) + "]@" + std::to_string(r.offset) + ": " +
                              m.error().message);
        return;
      }
      if (const auto* v = std::get_if<T>(&m->payload)) {
        out.push_back(*v);
      } else {
        unreadable->push_back(topic + "@" + std::to_string(r.offset) + ": unexpected " +
                              std::string(core::PayloadName(m->payload)));
      }
    });
    if (!end.ok()) unreadable->push_back("reading " + topic + ": " + end.error().message);
    return out;
  }

  /// Orders recorded or acknowledged that are not OK or NOT OK yet (-1 when the changelog cannot be read).
  int64_t NotTerminal() {
    std::vector<std::string> unreadable;
    const auto latest = LatestOrders(Read<core::OrderRecord>(topics_.order_orders, &unreadable));
    if (!unreadable.empty()) return -1;
    int64_t open = 0;
    for (const auto& [id, r] : latest) {
      if (!core::IsFinal(r.status)) ++open;
    }
    for (const auto id : acknowledged_) {
      if (!latest.contains(id)) ++open;
    }
    return open;
  }

  /// GET /stock on the first warehouse instance that answers (any instance reads every item).
  std::map<core::ItemId, ItemStock> Stock() {
    int status = 0;
    json j;
    for (int i = 1; i <= backend_.Instances("warehouse", s_.system.InstancesOf("warehouse")); ++i) {
      j = Http("warehouse", "GET", "/stock", "", &status, i);
      if (status == 200 && j.contains("items")) break;
    }
    if (status != 200 || !j.contains("items")) throw StepFailed{"GET /stock on the warehouse answered " + std::to_string(status)};
    std::map<core::ItemId, ItemStock> out;
    for (const auto& item : j["items"]) {
      out[item.value("item_id", core::ItemId{0})] = {item.value("available", int64_t{0}), item.value("reserved", int64_t{0})};
    }
    return out;
  }

  // ---- checks ----
  void Check() {
    const auto* terminal = FindCheck(CheckKind::kAllTerminal);
    // Every check needs the orders to have ended; all_terminal says how long to wait.
    const auto within = terminal != nullptr ? terminal->within : std::chrono::milliseconds(60'000);
    const auto t0 = Clock::now();
    int64_t open = -1;
    Say("waiting for every order to end (at most " + FormatDuration(within) + ")");
    while ((open = NotTerminal()) != 0 && Clock::now() < t0 + within) SleepUntil(Clock::now() + 500ms);
    const double settle = std::chrono::duration<double>(Clock::now() - t0).count();
    Say(open == 0 ? "every order terminal after " + Fixed(settle) + " s"
                  : std::to_string(open) + " order(s) not terminal after " + Fixed(settle) + " s");
    WatchProcesses();

    Observation o;
    o.order_records = Read<core::OrderRecord>(topics_.order_orders, &o.unreadable);
    o.payments = Read<core::Payment>(topics_.payment_payments, &o.unreadable);
    o.notifications = Read<core::Notification>(topics_.notification_sent, &o.unreadable);
    o.dead_letters = Read<core::DeadLetter>(topics_.dlq, &o.unreadable);
    o.injected = injected_;
    o.acknowledged = acknowledged_;
    o.never_acknowledged = never_acknowledged_;
    o.stock_before = stock_before_;
    o.stock_after = Stock();
    o.default_stock = s_.system.default_stock;

    const auto latest = LatestOrders(o.order_records);
    for (const auto& [id, r] : latest) {
      if (r.status == core::OrderStatus::kOk) {
        ++result_.orders_ok;
      } else if (r.status == core::OrderStatus::kNotOk) {
        ++result_.orders_not_ok;
      } else {
        ++result_.orders_not_terminal;
      }
    }

    for (const auto& spec : s_.checks) {
      CheckResult r;
      switch (spec.kind) {
        case CheckKind::kAllTerminal:
          r = CheckAllTerminal(o);
          r.name = "all_terminal within " + FormatDuration(spec.within);
          r.numbers += "; waited " + Fixed(settle) + " s";
          break;
        case CheckKind::kStockConserved: r = CheckStockConserved(o); break;
        case CheckKind::kOneChargePerOk: r = CheckOneChargePerOk(o); break;
        case CheckKind::kNoDuplicates: r = CheckNoDuplicates(o); break;
        case CheckKind::kDlqExact: r = CheckDlqExact(o); break;
        case CheckKind::kReplayVerify: r = ReplayVerify(); break;
      }
      result_.checks.push_back(std::move(r));
    }
    // Always: no process may die unless a step killed it.
    CheckResult exits;
    exits.name = "no_unexpected_exits";
    exits.problems = backend_.UnexpectedExits();
    exits.passed = exits.problems.empty();
    exits.numbers = std::to_string(exits.problems.size()) + " unexpected exits";
    result_.checks.push_back(std::move(exits));
  }

  const CheckSpec* FindCheck(CheckKind kind) const {
    for (const auto& c : s_.checks) {
      if (c.kind == kind) return &c;
    }
    return nullptr;
  }

  CheckResult ReplayVerify() {
    replay::ReplayOptions o;
    o.source.brokers = backend_.Brokers();
    o.source.topic_prefix = backend_.TopicPrefix();
    o.source.kafka_properties = backend_.KafkaProperties();
    // A shared stack (compose) holds earlier sagas too: verify only this scenario's.
    if (backend_.Name() != "local") o.source.since_ms = start_ms_;
    o.verify = true;
    o.participants = true;
    o.timings.deadline_ms = s_.system.step_timeout.count();
    o.timings.max_deadline_ms = s_.system.max_step_timeout.count();
    o.timings.max_attempts = s_.system.max_attempts;
    std::ostringstream out, err;
    const int rc = replay::RunReplay(o, out, err);
    CheckResult r;
    r.name = "replay_verify";
    r.passed = rc == replay::kExitOk;
    // The last line is the verdict ("verified N saga(s) ... -- OK"); the lines before name the findings.
    std::vector<std::string> lines;
    std::istringstream in(out.str() + err.str());
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) lines.push_back(line);
    }
    r.numbers = lines.empty() ? "exit " + std::to_string(rc) : lines.back();
    if (!r.passed) {
      for (size_t i = 0; i + 1 < lines.size() && r.problems.size() < CheckResult::kMaxProblems; ++i) {
        r.problems.push_back(lines[i]);
      }
      if (r.problems.empty()) r.problems.push_back("sagaflow replay --verify --participants exited " + std::to_string(rc));
    }
    return r;
  }

  const Scenario& s_;
  Backend& backend_;
  RunLog& log_;
  ScenarioResult result_;
  Clock::time_point started_;
  Clock::time_point steps_started_;
  core::TopicNames topics_;
  kafka::KafkaConfig config_;
  core::TimeMs start_ms_ = 0;
  std::map<std::string, kafka::OffsetMap> start_offsets_;
  std::map<core::ItemId, ItemStock> stock_before_;
  std::vector<std::unique_ptr<Load>> loads_;
  std::mutex progress_mu_;
  std::string progress_;
  Clock::time_point next_progress_;
  std::set<core::OrderId> acknowledged_;
  int64_t never_acknowledged_ = 0;
  std::vector<std::pair<std::string, std::string>> injected_;
  size_t reported_exits_ = 0;
};

}  // namespace

bool ScenarioResult::passed() const {
  return error.empty() && !checks.empty() &&
         std::all_of(checks.begin(), checks.end(), [](const CheckResult& c) { return c.passed; });
}

std::string FormatResult(const ScenarioResult& r) {
  std::ostringstream out;
  out << "\n== scenario " << r.name << " (" << r.backend << "): " << (r.passed() ? "PASSED" : "FAILED") << " in "
      << Fixed(r.seconds) << " s\n";
  if (!r.error.empty()) out << "   error: " << r.error << "\n";
  out << "   orders   " << r.orders_sent << " sent, " << r.orders_accepted << " accepted; " << r.orders_ok << " OK, "
      << r.orders_not_ok << " NOT OK, " << r.orders_not_terminal << " not terminal\n";
  std::string faults;
  for (const auto& [what, n] : r.faults) faults += (faults.empty() ? "" : ", ") + what + (n > 1 ? " x" + std::to_string(n) : "");
  out << "   faults   " << (faults.empty() ? "none" : faults) << "\n";
  if (r.checks.empty()) return out.str();
  size_t width = 5;
  for (const auto& c : r.checks) width = std::max(width, c.name.size());
  out << "   " << std::string("check") << std::string(width - 5 + 2, ' ') << "result  numbers\n";
  for (const auto& c : r.checks) {
    out << "   " << c.name << std::string(width - c.name.size() + 2, ' ') << (c.passed ? "pass  " : "FAIL  ") << "  "
        << c.numbers << "\n";
    for (const auto& p : c.problems) out << "   " << std::string(width + 2, ' ') << "        - " << p << "\n";
  }
  return out.str();
}

std::string ResultsToJson(const std::vector<ScenarioResult>& results) {
  json all = json::array();
  for (const auto& r : results) {
    json checks = json::array();
    for (const auto& c : r.checks) {
      checks.push_back({{"name", c.name}, {"passed", c.passed}, {"numbers", c.numbers}, {"problems", c.problems}});
    }
    all.push_back({{"name", r.name},
                   {"file", r.file},
                   {"backend", r.backend},
                   {"passed", r.passed()},
                   {"error", r.error},
                   {"seconds", r.seconds},
                   {"orders", {{"sent", r.orders_sent},
                               {"accepted", r.orders_accepted},
                               {"ok", r.orders_ok},
                               {"not_ok", r.orders_not_ok},
                               {"not_terminal", r.orders_not_terminal}}},
                   {"faults", r.faults},
                   {"checks", checks}});
  }
  return all.dump(2);
}

int RunScenarios(const RunOptions& options, std::ostream& out, std::ostream& err) {
  std::vector<Scenario> scenarios;
  bool bad = false;
  for (const auto& file : options.files) {
    auto s = LoadScenarioFile(file);
    if (!s.ok()) {
      err << s.error().message << "\n";
      bad = true;
      continue;
    }
    scenarios.push_back(std::move(s.value()));
  }
  if (bad) return kExitBadInput;
  if (scenarios.empty()) {
    err << "sagaflow scenario run: no scenario files given\n";
    return kExitBadInput;
  }

  if (options.jobs < 1 || options.jobs > kMaxJobs) {
    err << "sagaflow scenario run: --jobs must be 1.." << kMaxJobs << ", not " << options.jobs << "\n";
    return kExitBadInput;
  }
  if (options.jobs > 1 && options.backend != "local") {
    err << "sagaflow scenario run: --jobs " << options.jobs << " needs the local backend: the " << options.backend
        << " backend has one system, so its scenarios run one after another\n";
    return kExitBadInput;
  }
  // One backend per job, never more jobs than scenarios.
  const int jobs = std::min<int>(options.jobs, static_cast<int>(scenarios.size()));
  std::vector<std::unique_ptr<Backend>> backends;
  for (int job = 1; job <= jobs; ++job) {
    if (options.backend == "local") {
      backends.push_back(MakeLocalBackend(LocalOptionsForJob(options.local, job)));
    } else if (options.backend == "compose") {
      backends.push_back(MakeComposeBackend(options.compose));
    } else if (options.backend == "attached") {
      backends.push_back(MakeAttachedBackend(options.compose));
    } else {
      err << "sagaflow scenario run: unknown backend '" << options.backend << "' (local, compose or attached)\n";
      return kExitBadInput;
    }
  }

  g_stop.store(false);
  struct sigaction action {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  struct sigaction old_int {}, old_term {};
  sigaction(SIGINT, &action, &old_int);
  sigaction(SIGTERM, &action, &old_term);

  RunLog log(options.json ? err : out, jobs > 1);
  std::vector<ScenarioResult> results(scenarios.size());
  std::vector<char> ran(scenarios.size(), 0);
  std::mutex results_mu;
  std::atomic<size_t> next{0};
  // Set when a run was interrupted: its load threads are left running, so the process must end with _Exit.
  std::atomic<bool> abandoned{false};
  int rc = kExitPassed;
  const auto t0 = Clock::now();

  // A job runs the next scenario nobody has taken until none is left, on its
  // own backend. It spawns (and so must outlive) that backend's processes:
  // they get SIGKILL when the thread that started them ends.
  auto job = [&](Backend& backend) {
    while (!g_stop.load()) {
      const size_t i = next.fetch_add(1);
      if (i >= scenarios.size()) break;
      auto run = std::make_unique<ScenarioRun>(scenarios[i], backend, log);
      ScenarioResult result = run->Run(options.keep);
      log.Block(FormatResult(result));
      {
        std::lock_guard lock(results_mu);
        results[i] = std::move(result);
        ran[i] = 1;
      }
      if (g_stop.load()) {
        // Interrupted: the services are stopped; stop the broker and let the
        // process end without waiting for the load threads to give up on
        // their orders (the run is left to _Exit).
        backend.Shutdown();
        run.release();
        abandoned.store(true);
        return;
      }
    }
    backend.Shutdown();
  };

  bool prepared = true;
  for (auto& backend : backends) {
    if (auto st = backend->Prepare(); !st.ok()) {
      err << "sagaflow scenario run: preparing the " << backend->Name() << " backend: " << st.error().message << "\n";
      rc = kExitBadInput;
      prepared = false;
      break;
    }
  }
  if (prepared && jobs == 1) {
    job(*backends.front());
  } else if (prepared) {
    // Where each job runs, as LocalOptionsForJob places it.
    std::string where;
    for (int j = 1; j <= jobs; ++j) {
      const LocalOptions o = LocalOptionsForJob(options.local, j);
      where += "; job " + std::to_string(j) + ": broker port " + std::to_string(o.kafka_port) + ", services " +
               std::to_string(o.http_port_base) + " + 1..5, data " + o.var_dir;
    }
    log.Line("run", std::to_string(jobs) + " scenarios at once" + where);
    std::vector<std::thread> threads;
    for (auto& backend : backends) threads.emplace_back(job, std::ref(*backend));
    for (auto& t : threads) t.join();
  }
  for (auto& backend : backends) backend->Shutdown();
  if (abandoned.load()) {
    err << "sagaflow scenario run: interrupted; everything it started is stopped" << std::endl;
    std::_Exit(kExitBadInput);
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);

  // What ran, in file order.
  std::vector<ScenarioResult> done;
  for (size_t i = 0; i < scenarios.size(); ++i) {
    if (!ran[i]) continue;
    if (!results[i].error.empty()) {
      rc = kExitBadInput;
    } else if (!results[i].passed() && rc == kExitPassed) {
      rc = kExitCheckFailed;
    }
    done.push_back(std::move(results[i]));
  }
  results = std::move(done);
  if (g_stop.load()) {
    err << "sagaflow scenario run: interrupted; everything it started is stopped\n";
    rc = kExitBadInput;
  }
  int passed = 0;
  for (const auto& r : results) passed += r.passed() ? 1 : 0;
  std::ostringstream summary;
  summary << "== " << passed << " of " << scenarios.size() << " scenario(s) passed in "
          << Fixed(std::chrono::duration<double>(Clock::now() - t0).count()) << " s"
          << (jobs > 1 ? ", " + std::to_string(jobs) + " at once" : "");
  for (const auto& r : results) {
    summary << "\n   " << (r.passed() ? "pass  " : "FAIL  ") << r.name << " (" << Fixed(r.seconds) << " s)";
  }
  log.Block(summary.str());
  if (options.json) out << ResultsToJson(results) << "\n";
  return rc;
}

}  // namespace sagaflow::scenario
