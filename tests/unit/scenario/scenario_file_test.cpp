#include "sagaflow/scenario/scenario_file.hpp"

#include <gtest/gtest.h>

#include <filesystem>

namespace sagaflow::scenario {
namespace {

using namespace std::chrono_literals;

const char* kMinimal = R"(name: small
description: one load, one check
steps:
  - load: {orders: 10}
checks:
  - all_terminal
)";

std::string ErrorOf(const std::string& text) {
  auto s = ParseScenario(text, "f.yaml");
  return s.ok() ? std::string("parsed") : s.error().message;
}

TEST(ScenarioFile, ParsesEveryStepAndCheck) {
  const char* text = R"(name: everything
description: >
  all the steps
system:
  brokers: 1
  partitions: 4
  instances: {orchestrator: 1}
  mistakes: {payment: 20, warehouse: 5}
  delays: {payment: [0, 300], notification: [50]}
  default_stock: 500
  step_timeout: 3s
  max_step_timeout: 10s
  max_attempts: 4
steps:
  - load: {orders: 100, concurrency: 12, items: 20, max_quantity: 3, order_timeout: 90s, seed: 7}
  - load: {duration: 30s, rate: 25.5}
  - {kill: orchestrator, at: 5s}
  - restart: orchestrator
  - pause: payment
  - resume: payment
  - wipe: warehouse
  - kill: broker
  - restart: broker
  - set: {service: payment, mistakes: 50, delay: [10, 20]}
  - inject: {topic: orders.service.payment.pay, count: 3}
  - wait: 1500ms
  - wait: {until: load_done, timeout: 2m}
  - wait: {until: healthy, service: broker}
  - wait: {until: all_terminal}
checks:
  - all_terminal: {within: 45s}
  - stock_conserved
  - one_charge_per_ok
  - no_duplicates
  - dlq_exact
  - replay_verify
)";
  auto parsed = ParseScenario(text, "everything.yaml");
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  const auto& s = parsed.value();
  EXPECT_EQ(s.name, "everything");
  EXPECT_EQ(s.description, "all the steps\n");
  EXPECT_EQ(s.system.partitions, 4);
  EXPECT_EQ(s.system.mistakes.at("payment"), 20);
  EXPECT_EQ(s.system.delays.at("payment"), (DelayMs{0, 300}));
  EXPECT_EQ(s.system.delays.at("notification"), (DelayMs{50, 50}));
  EXPECT_EQ(s.system.default_stock, 500);
  EXPECT_EQ(s.system.step_timeout, 3s);
  EXPECT_EQ(s.system.max_step_timeout, 10s);
  EXPECT_EQ(s.system.max_attempts, 4);
  ASSERT_EQ(s.steps.size(), 15u);
  EXPECT_EQ(s.steps[0].kind, StepKind::kLoad);
  EXPECT_EQ(s.steps[0].load.orders, 100);
  EXPECT_EQ(s.steps[0].load.concurrency, 12);
  EXPECT_EQ(s.steps[0].load.items, 20);
  EXPECT_EQ(s.steps[0].load.order_timeout, 90s);
  EXPECT_EQ(s.steps[0].line, 15);
  EXPECT_EQ(s.steps[1].load.duration, 30s);
  EXPECT_DOUBLE_EQ(s.steps[1].load.rate, 25.5);
  EXPECT_EQ(s.steps[2].kind, StepKind::kKill);
  EXPECT_EQ(s.steps[2].target, "orchestrator");
  ASSERT_TRUE(s.steps[2].at.has_value());
  EXPECT_EQ(*s.steps[2].at, 5s);
  EXPECT_EQ(s.steps[4].kind, StepKind::kPause);
  EXPECT_EQ(s.steps[6].kind, StepKind::kWipe);
  EXPECT_EQ(s.steps[7].target, "broker");
  EXPECT_EQ(s.steps[9].kind, StepKind::kSet);
  EXPECT_EQ(s.steps[9].mistakes, 50);
  EXPECT_EQ(s.steps[9].delay, (DelayMs{10, 20}));
  EXPECT_EQ(s.steps[10].topic, "orders.service.payment.pay");
  EXPECT_EQ(s.steps[10].count, 3);
  EXPECT_EQ(s.steps[11].condition, WaitCondition::kNone);
  EXPECT_EQ(s.steps[11].duration, 1500ms);
  EXPECT_EQ(s.steps[12].condition, WaitCondition::kLoadDone);
  EXPECT_EQ(s.steps[12].duration, 120s);
  EXPECT_EQ(s.steps[13].condition, WaitCondition::kHealthy);
  EXPECT_EQ(s.steps[13].target, "broker");
  ASSERT_EQ(s.checks.size(), 6u);
  EXPECT_EQ(s.checks[0].kind, CheckKind::kAllTerminal);
  EXPECT_EQ(s.checks[0].within, 45s);
  EXPECT_EQ(s.checks[5].kind, CheckKind::kReplayVerify);
}

TEST(ScenarioFile, MinimalFileTakesTheDefaults) {
  auto s = ParseScenario(kMinimal, "f.yaml");
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->system.brokers, 1);
  EXPECT_EQ(s->system.partitions, 3);
  EXPECT_EQ(s->system.step_timeout, 10s);
  EXPECT_EQ(s->steps[0].load.concurrency, 10);
  EXPECT_EQ(s->checks[0].within, 60s);
}

TEST(ScenarioFile, RefusesASyntaxErrorWithItsLine) {
  const auto e = ErrorOf("name: x\ndescription: y\nsteps:\n  - load: {orders: 10\nchecks: [all_terminal]\n");
  EXPECT_EQ(e.rfind("f.yaml:", 0), 0u) << e;
  EXPECT_NE(e.find("YAML syntax error"), std::string::npos) << e;
}

TEST(ScenarioFile, RefusesAnUnknownStepWithItsLine) {
  const auto e = ErrorOf("name: x\ndescription: y\nsteps:\n  - load: {orders: 10}\n  - explode: payment\nchecks: [all_terminal]\n");
  EXPECT_EQ(e.rfind("f.yaml:5: unknown step 'explode'", 0), 0u) << e;
}

TEST(ScenarioFile, RefusesUnknownKeysWhereverTheyAre) {
  EXPECT_EQ(ErrorOf("name: x\ndescription: y\nstep:\n  - wait: 1s\nchecks: [all_terminal]\n").rfind("f.yaml:3: unknown key 'step' in scenario", 0), 0u);
  EXPECT_EQ(ErrorOf("name: x\ndescription: y\nsystem:\n  mistake: {payment: 1}\nsteps: []\nchecks: [all_terminal]\n")
                .rfind("f.yaml:4: unknown key 'mistake' in system", 0),
            0u);
  EXPECT_EQ(ErrorOf("name: x\ndescription: y\nsteps:\n  - load: {orders: 10, concurency: 5}\nchecks: [all_terminal]\n")
                .rfind("f.yaml:4: unknown key 'concurency' in load", 0),
            0u);
  EXPECT_EQ(ErrorOf("name: x\ndescription: y\nsteps: []\nchecks:\n  - all_terminal: {whithin: 5s}\n")
                .rfind("f.yaml:5: unknown key 'whithin' in check all_terminal", 0),
            0u);
}

TEST(ScenarioFile, RefusesBadValuesWithTheirLine) {
  const std::string head = "name: x\ndescription: y\nsteps:\n";
  const std::string tail = "checks: [all_terminal]\n";
  EXPECT_EQ(ErrorOf(head + "  - kill: pament\n" + tail).rfind("f.yaml:4: kill: unknown service 'pament'", 0), 0u);
  EXPECT_EQ(ErrorOf(head + "  - wipe: broker\n" + tail).rfind("f.yaml:4: wipe: unknown service 'broker'", 0), 0u);
  EXPECT_EQ(ErrorOf(head + "  - wait: soon\n" + tail).rfind("f.yaml:4: wait 'soon' is not a duration", 0), 0u);
  EXPECT_EQ(ErrorOf(head + "  - set: {service: order, mistakes: 5}\n" + tail)
                .rfind("f.yaml:4: set.service: 'order' is not a participant", 0),
            0u);
  EXPECT_EQ(ErrorOf(head + "  - set: {service: payment, mistakes: 101}\n" + tail)
                .rfind("f.yaml:4: set.mistakes must be between 0 and 100, not 101", 0),
            0u);
  EXPECT_EQ(ErrorOf(head + "  - load: {concurrency: 5}\n" + tail).rfind("f.yaml:4: load needs 'orders' or 'duration'", 0),
            0u);
  EXPECT_EQ(ErrorOf(head + "  - load: {orders: 5, concurrency: 5, rate: 3}\n" + tail)
                .rfind("f.yaml:4: load takes 'concurrency' or 'rate', not both", 0),
            0u);
  EXPECT_EQ(ErrorOf(head + "  - inject: {topic: orders.saga.events}\n" + tail)
                .rfind("f.yaml:4: inject.topic 'orders.saga.events' is not an input topic", 0),
            0u);
  EXPECT_EQ(ErrorOf(head + "  - {kill: payment, pause: payment}\n" + tail)
                .rfind("f.yaml:4: one step per list entry", 0),
            0u);
  EXPECT_EQ(ErrorOf(head + "  - wait: {until: forever}\n" + tail)
                .rfind("f.yaml:4: wait.until: unknown condition 'forever'", 0),
            0u);
  EXPECT_EQ(ErrorOf(head + "  - wait: {until: healthy}\n" + tail).rfind("f.yaml:4: wait until healthy needs the key 'service'", 0),
            0u);
}

TEST(ScenarioFile, ParsesBrokerNodesAndServiceInstances) {
  const char* text = R"(name: cluster
description: three brokers, two instances
system:
  brokers: 3
  instances: {payment: 2, order: 2}
steps:
  - kill: broker@2
  - pause: broker@3
  - resume: broker@3
  - restart: broker@2
  - kill: broker
  - kill: payment@2
  - kill: payment
  - wipe: payment@2
  - wait: {until: healthy, service: payment@2}
  - wait: {until: healthy, service: broker@1}
checks: [all_terminal]
)";
  auto parsed = ParseScenario(text, "cluster.yaml");
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  const auto& s = parsed.value();
  EXPECT_EQ(s.system.brokers, 3);
  EXPECT_EQ(s.system.InstancesOf("payment"), 2);
  EXPECT_EQ(s.system.InstancesOf("warehouse"), 1);
  ASSERT_EQ(s.steps.size(), 10u);
  const std::vector<std::pair<std::string, int>> expected = {
      {"broker", 2}, {"broker", 3}, {"broker", 3}, {"broker", 2}, {"broker", 0},
      {"payment", 2}, {"payment", 1}, {"payment", 2}, {"payment", 2}, {"broker", 1}};
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(s.steps[i].target, expected[i].first) << "step " << i;
    EXPECT_EQ(s.steps[i].instance, expected[i].second) << "step " << i;
  }
  EXPECT_EQ(TargetName("payment", 1), "payment");
  EXPECT_EQ(TargetName("payment", 2), "payment@2");
  EXPECT_EQ(TargetName("broker", 0), "broker");
  EXPECT_EQ(TargetName("broker", 2), "broker@2");
}

TEST(ScenarioFile, RefusesAnInstanceOrNodeTheSystemDoesNotHave) {
  const std::string tail = "checks: [all_terminal]\n";
  const std::string one = "name: x\ndescription: y\nsteps:\n";
  EXPECT_EQ(ErrorOf(one + "  - kill: payment@2\n" + tail)
                .rfind("f.yaml:4: kill: 'payment@2': the system has 1 instance(s) of payment (system.instances)", 0),
            0u);
  EXPECT_EQ(ErrorOf(one + "  - kill: broker@2\n" + tail)
                .rfind("f.yaml:4: kill: 'broker@2': the system has 1 broker(s) (system.brokers)", 0),
            0u);
  const std::string three = "name: x\ndescription: y\nsystem:\n  brokers: 3\n  instances: {payment: 2}\nsteps:\n";
  EXPECT_EQ(ErrorOf(three + "  - restart: broker@4\n" + tail)
                .rfind("f.yaml:7: restart: 'broker@4': the system has 3 broker(s)", 0),
            0u);
  EXPECT_EQ(ErrorOf(three + "  - pause: payment@3\n" + tail)
                .rfind("f.yaml:7: pause: 'payment@3': the system has 2 instance(s) of payment", 0),
            0u);
  EXPECT_EQ(ErrorOf(three + "  - kill: warehouse@2\n" + tail)
                .rfind("f.yaml:7: kill: 'warehouse@2': the system has 1 instance(s) of warehouse", 0),
            0u);
  EXPECT_EQ(ErrorOf(three + "  - kill: payment@0\n" + tail).rfind("f.yaml:7: kill: 'payment@0': the system has 2", 0),
            0u);
  EXPECT_EQ(ErrorOf(three + "  - kill: payment@x\n" + tail)
                .rfind("f.yaml:7: kill: 'payment@x' must be payment@N with N a number from 1 to 2", 0),
            0u);
  EXPECT_EQ(ErrorOf(three + "  - kill: paymnt@2\n" + tail).rfind("f.yaml:7: kill: unknown service 'paymnt'", 0), 0u);
  EXPECT_EQ(ErrorOf(three + "  - wipe: broker@1\n" + tail).rfind("f.yaml:7: wipe: unknown service 'broker'", 0), 0u);
  EXPECT_EQ(ErrorOf(three + "  - wait: {until: healthy, service: payment@5}\n" + tail)
                .rfind("f.yaml:7: wait.service: 'payment@5': the system has 2 instance(s)", 0),
            0u);
  EXPECT_EQ(ErrorOf("name: x\ndescription: y\nsystem:\n  brokers: 2\nsteps: []\n" + tail)
                .rfind("f.yaml:4: system.brokers must be 1 or 3", 0),
            0u);
}

TEST(ScenarioFile, RefusesMissingPartsAndUnknownOrRepeatedChecks) {
  EXPECT_EQ(ErrorOf(""), "f.yaml:1: the file is empty: a scenario needs name, description, steps and checks");
  EXPECT_EQ(ErrorOf("name: x\nsteps: []\nchecks: [all_terminal]\n").rfind("f.yaml:1: scenario needs the key 'description'", 0),
            0u);
  EXPECT_EQ(ErrorOf("name: Bad Name\ndescription: y\nsteps: []\nchecks: [all_terminal]\n").rfind("f.yaml:1: name 'Bad Name'", 0),
            0u);
  EXPECT_EQ(ErrorOf("name: x\ndescription: y\nsteps: []\nchecks:\n  - everything_fine\n")
                .rfind("f.yaml:5: unknown check 'everything_fine'", 0),
            0u);
  EXPECT_EQ(ErrorOf("name: x\ndescription: y\nsteps: []\nchecks:\n  - dlq_exact\n  - dlq_exact\n")
                .rfind("f.yaml:6: check dlq_exact is listed twice", 0),
            0u);
  EXPECT_EQ(ErrorOf("name: x\ndescription: y\nsteps: []\nchecks:\n  - dlq_exact: {within: 5s}\n")
                .rfind("f.yaml:5: check dlq_exact takes no options", 0),
            0u);
}

TEST(ScenarioFile, ParsesDurations) {
  EXPECT_EQ(ParseDurationText("90s"), 90s);
  EXPECT_EQ(ParseDurationText("1500ms"), 1500ms);
  EXPECT_EQ(ParseDurationText("2m"), 120s);
  EXPECT_EQ(ParseDurationText("0.5"), 500ms);
  EXPECT_FALSE(ParseDurationText("5 parsecs"));
  EXPECT_FALSE(ParseDurationText("-1s"));
  EXPECT_FALSE(ParseDurationText(""));
  EXPECT_EQ(FormatDuration(1500ms), "1.5 s");
  EXPECT_EQ(FormatDuration(60s), "60 s");
  EXPECT_EQ(FormatDuration(250ms), "250 ms");
}

TEST(ScenarioFile, EveryCommittedScenarioParses) {
  const std::filesystem::path dir = SAGAFLOW_SCENARIO_DIR;
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".yaml") continue;
    ++files;
    auto s = LoadScenarioFile(entry.path().string());
    EXPECT_TRUE(s.ok()) << s.error().message;
    if (s.ok()) EXPECT_EQ(s->name + ".yaml", entry.path().filename().string()) << "a scenario is named after its file";
  }
  EXPECT_GE(files, 10);
}

}  // namespace
}  // namespace sagaflow::scenario
