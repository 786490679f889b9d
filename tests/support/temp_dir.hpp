#pragma once
/// A unique, empty directory under /tmp for one test; removed with its
/// contents when the TempDir is destroyed.
///
/// Not copyable or movable: the directory lives exactly as long as the object.

#include <filesystem>
#include <string>
#include <string_view>

namespace sagaflow::testing {

class TempDir {
 public:
  /// Creates /tmp/<prefix>-XXXXXX. Aborts the test binary if /tmp is unusable.
  explicit TempDir(std::string_view prefix = "sagaflow-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  /// path() / name, for a subdirectory or file inside the temp dir (not created).
  std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

}  // namespace sagaflow::testing
