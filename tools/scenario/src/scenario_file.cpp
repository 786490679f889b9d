#include "sagaflow/scenario/scenario_file.hpp"

#include "sagaflow/core/topics.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

namespace sagaflow::scenario {

const char* ToString(StepKind kind) {
  switch (kind) {
    case StepKind::kLoad: return "load";
    case StepKind::kSet: return "set";
    case StepKind::kKill: return "kill";
    case StepKind::kPause: return "pause";
    case StepKind::kResume: return "resume";
    case StepKind::kRestart: return "restart";
    case StepKind::kWipe: return "wipe";
    case StepKind::kInject: return "inject";
    case StepKind::kWait: return "wait";
  }
  return "?";
}

const char* ToString(WaitCondition condition) {
  switch (condition) {
    case WaitCondition::kNone: return "none";
    case WaitCondition::kLoadDone: return "load_done";
    case WaitCondition::kAllTerminal: return "all_terminal";
    case WaitCondition::kHealthy: return "healthy";
  }
  return "?";
}

const char* ToString(CheckKind kind) {
  switch (kind) {
    case CheckKind::kAllTerminal: return "all_terminal";
    case CheckKind::kStockConserved: return "stock_conserved";
    case CheckKind::kOneChargePerOk: return "one_charge_per_ok";
    case CheckKind::kNoDuplicates: return "no_duplicates";
    case CheckKind::kDlqExact: return "dlq_exact";
    case CheckKind::kReplayVerify: return "replay_verify";
  }
  return "?";
}

std::optional<std::chrono::milliseconds> ParseDurationText(const std::string& text) {
  if (text.empty()) return std::nullopt;
  size_t pos = 0;
  double value = 0;
  try {
    value = std::stod(text, &pos);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  const std::string unit = text.substr(pos);
  double ms = 0;
  if (unit.empty() || unit == "s") {
    ms = value * 1000;
  } else if (unit == "ms") {
    ms = value;
  } else if (unit == "m" || unit == "min") {
    ms = value * 60'000;
  } else {
    return std::nullopt;
  }
  if (!std::isfinite(ms) || ms < 0 || ms > 7 * 24 * 3600 * 1000.0) return std::nullopt;
  return std::chrono::milliseconds(static_cast<int64_t>(std::llround(ms)));
}

std::string TargetName(const std::string& target, int instance) {
  return instance == 0 || (instance == 1 && target != kBroker) ? target : target + "@" + std::to_string(instance);
}

std::string FormatDuration(std::chrono::milliseconds d) {
  const auto ms = d.count();
  char buf[64];
  if (ms < 1000) {
    std::snprintf(buf, sizeof(buf), "%lld ms", static_cast<long long>(ms));
  } else if (ms % 1000 == 0) {
    std::snprintf(buf, sizeof(buf), "%lld s", static_cast<long long>(ms / 1000));
  } else {
    std::snprintf(buf, sizeof(buf), "%.1f s", static_cast<double>(ms) / 1000);
  }
  return buf;
}

namespace {

struct ParseError {
  int line;
  std::string message;
};

class Parser {
 public:
  explicit Parser(std::string file) : file_(std::move(file)) {}

  Scenario Parse(const YAML::Node& root) {
    Scenario s;
    s.file = file_;
    if (!root.IsDefined() || root.IsNull()) throw ParseError{1, "the file is empty: a scenario needs name, description, steps and checks"};
    if (!root.IsMap()) throw Error(root, "a scenario is a mapping with the keys name, description, system, steps, checks");
    Keys(root, "scenario", {"name", "description", "system", "steps", "checks"});
    s.name = String(Required(root, "name", "scenario"), "name");
    if (s.name.empty() || !std::all_of(s.name.begin(), s.name.end(), [](char c) {
          return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
        })) {
      throw Error(root["name"], "name '" + s.name + "' must be non-empty lowercase letters, digits, '-' or '_'");
    }
    s.description = String(Required(root, "description", "scenario"), "description");
    if (root["system"]) s.system = System(root["system"]);
    const auto steps = Required(root, "steps", "scenario");
    if (!steps.IsSequence()) throw Error(steps, "steps must be a list");
    for (const auto& step : steps) s.steps.push_back(ParseStep(step, s.system));
    const auto checks = Required(root, "checks", "scenario");
    if (!checks.IsSequence() || checks.size() == 0) throw Error(checks, "checks must be a non-empty list");
    std::set<CheckKind> seen;
    for (const auto& check : checks) {
      auto c = ParseCheck(check);
      if (!seen.insert(c.kind).second) throw Error(check, std::string("check ") + ToString(c.kind) + " is listed twice");
      s.checks.push_back(c);
    }
    return s;
  }

 private:
  static int Line(const YAML::Node& node) { return node.Mark().line >= 0 ? node.Mark().line + 1 : 0; }
  ParseError Error(const YAML::Node& node, const std::string& message) const { return {Line(node), message}; }

  YAML::Node Required(const YAML::Node& map, const std::string& key, const std::string& what) const {
    const auto node = map[key];
    if (!node) throw Error(map, what + " needs the key '" + key + "'");
    return node;
  }

  void Keys(const YAML::Node& map, const std::string& what, const std::set<std::string>& allowed) const {
    for (const auto& kv : map) {
      const auto key = kv.first.as<std::string>();
      if (!allowed.contains(key)) {
        std::string list;
        for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
        throw Error(kv.first, "unknown key '" + key + "' in " + what + " (known: " + list + ")");
      }
    }
  }

  std::string String(const YAML::Node& node, const std::string& what) const {
    if (!node.IsScalar()) throw Error(node, what + " must be a string");
    return node.as<std::string>();
  }

  int64_t Int(const YAML::Node& node, const std::string& what, int64_t lo, int64_t hi) const {
    int64_t v = 0;
    if (!node.IsScalar() || !YAML::convert<int64_t>::decode(node, v)) {
      throw Error(node, what + " must be a whole number");
    }
    if (v < lo || v > hi) {
      throw Error(node, what + " must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", not " +
                            std::to_string(v));
    }
    return v;
  }

  double Number(const YAML::Node& node, const std::string& what, double lo, double hi) const {
    double v = 0;
    if (!node.IsScalar() || !YAML::convert<double>::decode(node, v) || !std::isfinite(v)) {
      throw Error(node, what + " must be a number");
    }
    if (v < lo || v > hi) throw Error(node, what + " is out of range (" + node.as<std::string>() + ")");
    return v;
  }

  std::chrono::milliseconds Duration(const YAML::Node& node, const std::string& what) const {
    if (!node.IsScalar()) throw Error(node, what + " must be a duration such as 30s, 1500ms or 2m");
    auto d = ParseDurationText(node.as<std::string>());
    if (!d) throw Error(node, what + " '" + node.as<std::string>() + "' is not a duration such as 30s, 1500ms or 2m");
    return *d;
  }

  std::string Target(const YAML::Node& node, const std::string& what, bool broker_allowed) const {
    const auto name = String(node, what);
    if (std::find(kServices.begin(), kServices.end(), name) != kServices.end()) return name;
    if (broker_allowed && name == kBroker) return name;
    throw Error(node, what + ": unknown service '" + name + "' (known: order, orchestrator, warehouse, payment, notification" +
                          (broker_allowed ? ", broker)" : ")"));
  }

  /// A step's target: SERVICE or SERVICE@N (an instance the system has; a bare
  /// name is instance 1), broker or broker@N (a node the system has; a bare
  /// "broker" is the whole broker, instance 0).
  void InstanceTarget(const YAML::Node& node, const std::string& what, bool broker_allowed, const SystemSpec& system,
                      Step& step) const {
    const auto text = String(node, what);
    const auto at = text.find('@');
    const std::string name = text.substr(0, at);
    const bool service = std::find(kServices.begin(), kServices.end(), name) != kServices.end();
    if (!service && !(broker_allowed && name == kBroker)) {
      throw Error(node, what + ": unknown service '" + name +
                            "' (known: order, orchestrator, warehouse, payment, notification" +
                            (broker_allowed ? ", broker; SERVICE@N or broker@N for one instance or node)" : ")"));
    }
    step.target = name;
    step.instance = service ? 1 : 0;
    if (at == std::string::npos) return;
    const std::string number = text.substr(at + 1);
    const int have = service ? system.InstancesOf(name) : system.brokers;
    if (number.empty() || number.size() > 3 || !std::all_of(number.begin(), number.end(), [](char c) {
          return c >= '0' && c <= '9';
        })) {
      throw Error(node, what + ": '" + text + "' must be " + name + "@N with N a number from 1 to " + std::to_string(have));
    }
    step.instance = std::stoi(number);
    if (step.instance < 1 || step.instance > have) {
      throw Error(node, what + ": '" + text + "': the system has " +
                            (service ? std::to_string(have) + " instance(s) of " + name + " (system.instances)"
                                     : std::to_string(have) + " broker(s) (system.brokers)"));
    }
  }

  std::string Participant(const YAML::Node& node, const std::string& what) const {
    const auto name = String(node, what);
    if (std::find(kParticipants.begin(), kParticipants.end(), name) == kParticipants.end()) {
      throw Error(node, what + ": '" + name + "' is not a participant (warehouse, payment, notification)");
    }
    return name;
  }

  DelayMs Delay(const YAML::Node& node, const std::string& what) const {
    if (!node.IsSequence() || node.size() < 1 || node.size() > 2) {
      throw Error(node, what + " must be [MIN_MS, MAX_MS] (or [MS])");
    }
    DelayMs d;
    d.min = Int(node[0], what + " minimum", 0, 600'000);
    d.max = node.size() == 2 ? Int(node[1], what + " maximum", 0, 600'000) : d.min;
    if (d.max < d.min) throw Error(node, what + ": the maximum is below the minimum");
    return d;
  }

  SystemSpec System(const YAML::Node& node) const {
    SystemSpec s;
    if (!node.IsMap()) throw Error(node, "system must be a mapping");
    Keys(node, "system",
         {"brokers", "instances", "partitions", "mistakes", "delays", "default_stock", "step_timeout",
          "max_step_timeout", "max_attempts"});
    if (node["brokers"]) {
      s.brokers = static_cast<int>(Int(node["brokers"], "system.brokers", 1, 3));
      if (s.brokers == 2) throw Error(node["brokers"], "system.brokers must be 1 or 3 (a three-node cluster), not 2");
    }
    if (node["partitions"]) s.partitions = static_cast<int>(Int(node["partitions"], "system.partitions", 1, 64));
    if (node["instances"]) {
      if (!node["instances"].IsMap()) throw Error(node["instances"], "system.instances must map services to counts");
      for (const auto& kv : node["instances"]) {
        const auto name = Target(kv.first, "system.instances", false);
        s.instances[name] = static_cast<int>(Int(kv.second, "system.instances." + name, 1, 16));
      }
    }
    if (node["mistakes"]) {
      if (!node["mistakes"].IsMap()) throw Error(node["mistakes"], "system.mistakes must map participants to percentages");
      for (const auto& kv : node["mistakes"]) {
        const auto name = Participant(kv.first, "system.mistakes");
        s.mistakes[name] = static_cast<int>(Int(kv.second, "system.mistakes." + name, 0, 100));
      }
    }
    if (node["delays"]) {
      if (!node["delays"].IsMap()) throw Error(node["delays"], "system.delays must map participants to [MIN_MS, MAX_MS]");
      for (const auto& kv : node["delays"]) {
        const auto name = Participant(kv.first, "system.delays");
        s.delays[name] = Delay(kv.second, "system.delays." + name);
      }
    }
    if (node["default_stock"]) s.default_stock = Int(node["default_stock"], "system.default_stock", 0, int64_t{1} << 50);
    if (node["step_timeout"]) s.step_timeout = Duration(node["step_timeout"], "system.step_timeout");
    if (node["max_step_timeout"]) s.max_step_timeout = Duration(node["max_step_timeout"], "system.max_step_timeout");
    if (s.max_step_timeout < s.step_timeout) s.max_step_timeout = s.step_timeout;
    if (node["max_attempts"]) s.max_attempts = static_cast<int>(Int(node["max_attempts"], "system.max_attempts", 1, 100));
    if (s.step_timeout.count() < 100) throw Error(node["step_timeout"], "system.step_timeout must be at least 100ms");
    return s;
  }

  Step ParseStep(const YAML::Node& node, const SystemSpec& system) const {
    static const std::map<std::string, StepKind> kKinds = {
        {"load", StepKind::kLoad},       {"set", StepKind::kSet},       {"kill", StepKind::kKill},
        {"pause", StepKind::kPause},     {"resume", StepKind::kResume}, {"restart", StepKind::kRestart},
        {"wipe", StepKind::kWipe},       {"inject", StepKind::kInject}, {"wait", StepKind::kWait}};
    Step step;
    step.line = Line(node);
    if (!node.IsMap()) {
      throw Error(node, "a step is a mapping with one of: load, set, kill, pause, resume, restart, wipe, inject, wait "
                        "(and optionally 'at')");
    }
    std::optional<std::string> action;
    YAML::Node body;
    for (const auto& kv : node) {
      const auto key = kv.first.as<std::string>();
      if (key == "at") {
        step.at = Duration(kv.second, "at");
        continue;
      }
      if (!kKinds.contains(key)) {
        throw Error(kv.first, "unknown step '" + key +
                                  "' (known: load, set, kill, pause, resume, restart, wipe, inject, wait; and 'at')");
      }
      if (action) throw Error(kv.first, "one step per list entry: '" + *action + "' and '" + key + "' are both here");
      action = key;
      body = kv.second;
    }
    if (!action) throw Error(node, "the step has only 'at': say what to do (load, kill, wait, ...)");
    step.kind = kKinds.at(*action);
    switch (step.kind) {
      case StepKind::kKill:
      case StepKind::kPause:
      case StepKind::kResume:
      case StepKind::kRestart:
        InstanceTarget(body, *action, true, system, step);
        break;
      case StepKind::kWipe:
        InstanceTarget(body, *action, false, system, step);
        break;
      case StepKind::kLoad: ParseLoad(body, step); break;
      case StepKind::kSet: ParseSet(body, step); break;
      case StepKind::kInject: ParseInject(body, step); break;
      case StepKind::kWait: ParseWait(body, system, step); break;
    }
    return step;
  }

  void ParseLoad(const YAML::Node& node, Step& step) const {
    if (!node.IsMap()) throw Error(node, "load must be a mapping (orders, duration, concurrency or rate, ...)");
    Keys(node, "load", {"orders", "duration", "concurrency", "rate", "items", "first_item", "max_quantity",
                        "order_timeout", "seed"});
    auto& l = step.load;
    if (node["orders"]) l.orders = Int(node["orders"], "load.orders", 1, 10'000'000);
    if (node["duration"]) l.duration = Duration(node["duration"], "load.duration");
    if (l.orders == 0 && l.duration.count() == 0) throw Error(node, "load needs 'orders' or 'duration' (or both)");
    if (node["concurrency"] && node["rate"]) throw Error(node["rate"], "load takes 'concurrency' or 'rate', not both");
    if (node["concurrency"]) l.concurrency = static_cast<int>(Int(node["concurrency"], "load.concurrency", 1, 1000));
    if (node["rate"]) l.rate = Number(node["rate"], "load.rate", 0.01, 100'000);
    if (node["items"]) l.items = Int(node["items"], "load.items", 2, 1'000'000);
    if (node["first_item"]) l.first_item = Int(node["first_item"], "load.first_item", 0, int64_t{1} << 40);
    if (node["max_quantity"]) l.max_quantity = static_cast<int>(Int(node["max_quantity"], "load.max_quantity", 1, 1000));
    if (node["order_timeout"]) l.order_timeout = Duration(node["order_timeout"], "load.order_timeout");
    if (node["seed"]) l.seed = static_cast<uint64_t>(Int(node["seed"], "load.seed", 0, int64_t{1} << 62));
  }

  void ParseSet(const YAML::Node& node, Step& step) const {
    if (!node.IsMap()) throw Error(node, "set must be a mapping: {service: payment, mistakes: 50, delay: [0, 100]}");
    Keys(node, "set", {"service", "mistakes", "delay"});
    step.target = Participant(Required(node, "service", "set"), "set.service");
    if (node["mistakes"]) step.mistakes = static_cast<int>(Int(node["mistakes"], "set.mistakes", 0, 100));
    if (node["delay"]) step.delay = Delay(node["delay"], "set.delay");
    if (!step.mistakes && !step.delay) throw Error(node, "set needs 'mistakes' or 'delay'");
  }

  void ParseInject(const YAML::Node& node, Step& step) const {
    if (!node.IsMap()) throw Error(node, "inject must be a mapping: {topic: orders.service.order, count: 2}");
    Keys(node, "inject", {"topic", "count"});
    step.topic = String(Required(node, "topic", "inject"), "inject.topic");
    // Only topics a service consumes: a record anywhere else would reach no dead-letter topic.
    const core::TopicNames names;
    std::string known;
    bool found = false;
    for (const auto* t : {&names.order, &names.status, &names.warehouse_reserve, &names.warehouse_cancel,
                          &names.warehouse_status, &names.payment_pay, &names.payment_status, &names.notification_send,
                          &names.notification_status}) {
      found = found || *t == step.topic;
      known += (known.empty() ? "" : ", ") + *t;
    }
    if (!found) {
      throw Error(node["topic"], "inject.topic '" + step.topic + "' is not an input topic of a service (without the prefix: " +
                                     known + ")");
    }
    if (node["count"]) step.count = static_cast<int>(Int(node["count"], "inject.count", 1, 1000));
  }

  void ParseWait(const YAML::Node& node, const SystemSpec& system, Step& step) const {
    static const std::map<std::string, WaitCondition> kConditions = {{"load_done", WaitCondition::kLoadDone},
                                                                     {"all_terminal", WaitCondition::kAllTerminal},
                                                                     {"healthy", WaitCondition::kHealthy}};
    if (node.IsScalar()) {
      step.duration = Duration(node, "wait");
      return;
    }
    if (!node.IsMap()) throw Error(node, "wait takes a duration (wait: 5s) or {until: CONDITION, timeout: 60s}");
    Keys(node, "wait", {"until", "timeout", "service"});
    const auto until = String(Required(node, "until", "wait"), "wait.until");
    if (!kConditions.contains(until)) {
      throw Error(node["until"], "wait.until: unknown condition '" + until + "' (known: load_done, all_terminal, healthy)");
    }
    step.condition = kConditions.at(until);
    step.duration = node["timeout"] ? Duration(node["timeout"], "wait.timeout") : std::chrono::milliseconds(120'000);
    if (step.condition == WaitCondition::kHealthy) {
      InstanceTarget(Required(node, "service", "wait until healthy"), "wait.service", true, system, step);
    } else if (node["service"]) {
      throw Error(node["service"], "wait.service goes only with until: healthy");
    }
  }

  CheckSpec ParseCheck(const YAML::Node& node) const {
    static const std::map<std::string, CheckKind> kKinds = {
        {"all_terminal", CheckKind::kAllTerminal},   {"stock_conserved", CheckKind::kStockConserved},
        {"one_charge_per_ok", CheckKind::kOneChargePerOk}, {"no_duplicates", CheckKind::kNoDuplicates},
        {"dlq_exact", CheckKind::kDlqExact},         {"replay_verify", CheckKind::kReplayVerify}};
    const std::string known = "all_terminal, stock_conserved, one_charge_per_ok, no_duplicates, dlq_exact, replay_verify";
    CheckSpec c;
    c.line = Line(node);
    YAML::Node options;
    std::string name;
    if (node.IsScalar()) {
      name = node.as<std::string>();
    } else if (node.IsMap() && node.size() == 1) {
      name = node.begin()->first.as<std::string>();
      options = node.begin()->second;
    } else {
      throw Error(node, "a check is a name (" + known + ") or {name: {options}}");
    }
    if (!kKinds.contains(name)) throw Error(node, "unknown check '" + name + "' (known: " + known + ")");
    c.kind = kKinds.at(name);
    if (options && !options.IsNull()) {
      if (c.kind != CheckKind::kAllTerminal || !options.IsMap()) {
        throw Error(options, "check " + name + " takes no options" +
                                 (c.kind == CheckKind::kAllTerminal ? std::string(" but 'within'") : std::string()));
      }
      Keys(options, "check all_terminal", {"within"});
      if (options["within"]) c.within = Duration(options["within"], "all_terminal.within");
    }
    return c;
  }

  std::string file_;
};

}  // namespace

core::Result<Scenario> ParseScenario(const std::string& text, const std::string& file) {
  try {
    const YAML::Node root = YAML::Load(text);
    return Parser(file).Parse(root);
  } catch (const ParseError& e) {
    return core::Error{core::Errc::kInvalidArgument, file + ":" + std::to_string(e.line) + ": " + e.message, false};
  } catch (const YAML::Exception& e) {
    // yaml-cpp's marks are 0-based; its message repeats the position, so keep only the problem.
    return core::Error{core::Errc::kInvalidArgument,
                       file + ":" + std::to_string(e.mark.line + 1) + ": YAML syntax error: " + e.msg, false};
  }
}

core::Result<Scenario> LoadScenarioFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return core::Error{core::Errc::kNotFound, path + ": cannot read the scenario file", false};
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseScenario(ss.str(), path);
}

}  // namespace sagaflow::scenario
