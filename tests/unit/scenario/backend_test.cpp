// What the compose and attached backends refuse before they touch anything
// (no Docker, no running system needed).

#include <gtest/gtest.h>

#include "sagaflow/scenario/backend.hpp"

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

}  // namespace
}  // namespace sagaflow::scenario
