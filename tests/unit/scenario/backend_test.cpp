// What the compose and attached backends refuse before they touch anything
// (no Docker, no running system needed), and where the jobs of a run with
// several scenarios at once put their brokers, services and data.

#include <gtest/gtest.h>

#include <set>
#include <sstream>

#include "sagaflow/scenario/backend.hpp"
#include "sagaflow/scenario/runner.hpp"

namespace sagaflow::scenario {
namespace {

Scenario Parse(const std::string& text) {
  auto s = ParseScenario(text, "f.yaml");
  EXPECT_TRUE(s.ok()) << s.error().message;
  return s.ok() ? s.value() : Scenario{};
}

TEST(ScenarioBackends, AttachedRefusesAStepThatNeedsProcessControlWithItsLine) {
  const auto s = Parse("name: x\ndescription: y\nsteps:\n  - load: {orders: 5}\n  - kill: payment\nchecks: [all_terminal]\n");
  ComposeOptions o;
  o.http_port_base = 1;  // nothing is contacted: the scenario is refused first
  auto backend = MakeAttachedBackend(o);
  EXPECT_EQ(backend->Name(), "attached");
  ASSERT_TRUE(backend->Prepare().ok());
  const auto st = backend->StartSystem(s, "p.");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message.rfind("f.yaml:5: kill payment: the attached backend", 0), 0u) << st.error().message;
  EXPECT_FALSE(backend->Kill("payment", 1).ok());
  EXPECT_FALSE(backend->Restart("broker", 0, std::chrono::milliseconds(10)).ok());
}

TEST(ScenarioBackends, ComposeRefusesSeveralBrokersOrInstances) {
  ComposeOptions o;
  o.script = "/nonexistent/compose";  // never run: the scenario is refused first
  auto backend = MakeComposeBackend(o);
  auto st = backend->StartSystem(
      Parse("name: x\ndescription: y\nsystem: {brokers: 3}\nsteps: []\nchecks: [all_terminal]\n"), "p.");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("system.brokers: 3: the compose stack runs one broker"), std::string::npos)
      << st.error().message;
  st = backend->StartSystem(
      Parse("name: x\ndescription: y\nsystem: {instances: {payment: 2}}\nsteps: []\nchecks: [all_terminal]\n"), "p.");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("system.instances.payment: 2: the compose stack runs one instance"),
            std::string::npos)
      << st.error().message;
}

TEST(ScenarioJobs, EachJobHasPortsAndADirectoryOfItsOwn) {
  LocalOptions base;
  base.var_dir = "/v/scenarios";
  const LocalOptions first = LocalOptionsForJob(base, 1);
  EXPECT_EQ(first.kafka_port, base.kafka_port);
  EXPECT_EQ(first.kafka_controller_port, base.kafka_controller_port);
  EXPECT_EQ(first.http_port_base, base.http_port_base);
  EXPECT_EQ(first.var_dir, base.var_dir);

  const LocalOptions third = LocalOptionsForJob(base, 3);
  EXPECT_EQ(third.kafka_port, base.kafka_port + 20);
  EXPECT_EQ(third.kafka_controller_port, base.kafka_controller_port + 20);
  EXPECT_EQ(third.http_port_base, base.http_port_base + 400);
  EXPECT_EQ(third.var_dir, "/v/scenarios/job-3");

  // With the default ports no two jobs share one: a three-node cluster takes
  // the broker and controller ports + 0, 2, 4 (LocalBackend::NodeAddress), 16
  // instances of the five services BASE + 1 .. BASE + 5 + 150.
  std::set<int> used;
  for (int job = 1; job <= kMaxJobs; ++job) {
    const LocalOptions o = LocalOptionsForJob(base, job);
    for (int node = 0; node < 3; ++node) {
      EXPECT_TRUE(used.insert(o.kafka_port + 2 * node).second) << "job " << job;
      EXPECT_TRUE(used.insert(o.kafka_controller_port + 2 * node).second) << "job " << job;
    }
    for (int instance = 0; instance < 16; ++instance) {
      for (int service = 1; service <= 5; ++service) {
        EXPECT_TRUE(used.insert(o.http_port_base + service + 10 * instance).second) << "job " << job;
      }
    }
  }
}

TEST(ScenarioJobs, SeveralAtOnceAreRefusedOutsideTheLocalBackendAndOutOfRange) {
  RunOptions o;
  o.files = {std::string(SAGAFLOW_SCENARIO_DIR) + "/reference-all-ok.yaml"};
  o.backend = "compose";
  o.compose.script = "/nonexistent/compose";  // never run: refused first
  o.jobs = 2;
  std::ostringstream out, err;
  EXPECT_EQ(RunScenarios(o, out, err), kExitBadInput);
  EXPECT_NE(err.str().find("--jobs 2 needs the local backend"), std::string::npos) << err.str();

  o.backend = "local";
  for (int jobs : {0, kMaxJobs + 1}) {
    o.jobs = jobs;
    std::ostringstream out2, err2;
    EXPECT_EQ(RunScenarios(o, out2, err2), kExitBadInput);
    EXPECT_NE(err2.str().find("--jobs must be 1.." + std::to_string(kMaxJobs)), std::string::npos) << err2.str();
  }
}

}  // namespace
}  // namespace sagaflow::scenario
