#include "support/temp_dir.hpp"

#include <stdlib.h>  // mkdtemp

#include <cerrno>
#include <cstring>
#include <system_error>
#include <vector>

#include "sagaflow/core/result.hpp"

namespace sagaflow::testing {

TempDir::TempDir(std::string_view prefix) {
  std::string pattern = "/tmp/" + std::string(prefix) + "-XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  // mkdtemp creates the directory atomically with a unique name (mode 0700).
  const char* created = mkdtemp(buf.data());
  SAGAFLOW_CHECK(created != nullptr, "mkdtemp(" + pattern + ") failed: " + std::strerror(errno));
  path_ = created;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);  // best effort: a leftover dir in /tmp is harmless
}

}  // namespace sagaflow::testing
