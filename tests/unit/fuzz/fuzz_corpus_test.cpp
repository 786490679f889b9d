// Replays every committed fuzz corpus file (seeds and regressions) through
// its target's entry function in the normal build, so an input that once
// crashed a fuzzer, or broke a property, fails the unit tests too.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "fuzz_entries.hpp"

namespace sagaflow::fuzz {
namespace {

namespace fs = std::filesystem;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Runs every file under corpus/<target>/<kind>/ through the target; returns how many ran.
int Replay(const Target& target, const std::string& kind) {
  const fs::path dir = fs::path(SAGAFLOW_FUZZ_CORPUS_DIR) / target.name / kind;
  int count = 0;
  if (!fs::is_directory(dir)) return count;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!entry.is_regular_file() || entry.path().filename().string().starts_with(".")) continue;
    ++count;
    EXPECT_EQ(target.entry(ReadFile(entry.path())), "") << "input " << entry.path();
  }
  return count;
}

TEST(FuzzCorpus, EverySeedPassesItsTarget) {
  for (const auto& target : Targets()) {
    SCOPED_TRACE(target.name);
    EXPECT_GT(Replay(target, "seeds"), 0) << "no seeds for fuzz target " << target.name;
  }
}

TEST(FuzzCorpus, EveryRegressionInputPassesItsTarget) {
  int replayed = 0;
  for (const auto& target : Targets()) {
    SCOPED_TRACE(target.name);
    replayed += Replay(target, "regressions");
  }
  // The inputs of the bugs found so far are committed: a missing corpus must not pass silently.
  EXPECT_GE(replayed, 5) << "regression inputs missing under " << SAGAFLOW_FUZZ_CORPUS_DIR;
}

TEST(FuzzCorpus, EmptyAndOneByteInputsPassEveryTarget) {
  for (const auto& target : Targets()) {
    SCOPED_TRACE(target.name);
    EXPECT_EQ(target.entry(""), "");
    for (int b = 0; b < 256; ++b) EXPECT_EQ(target.entry(std::string(1, static_cast<char>(b))), "") << "byte " << b;
  }
}

}  // namespace
}  // namespace sagaflow::fuzz
