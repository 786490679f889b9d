#pragma once
/// The export file of `sagaflow replay export`: a saga event log copied out
/// of Kafka, byte for byte, to be replayed without a broker.
///
/// Layout (integers little-endian):
///   header   "SGFXPORT" (8 bytes), u16 version (1), u16 flags (0),
///            u32 topic name length, topic name
///   records  u32 length L (1 .. 64 MiB), then L bytes:
///            i32 partition, i64 offset, i64 timestamp ms, u32 key length, key, value
///   trailer  u32 0xFFFFFFFF, u64 record count, u32 CRC-32 (IEEE) of every byte before it
/// A file is accepted only whole: a wrong magic or version, a record running
/// past the end, a missing trailer (truncation), a count or checksum that does
/// not match (corruption) each fail with Errc::kCorrupt naming the problem.
/// Thread safety: a writer or reader object is used by one thread at a time.

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>

#include "sagaflow/core/result.hpp"
#include "sagaflow/replay/replayer.hpp"

namespace sagaflow::replay {

inline constexpr char kExportMagic[8] = {'S', 'G', 'F', 'X', 'P', 'O', 'R', 'T'};
inline constexpr uint16_t kExportVersion = 1;

/// Writes an export file. Nothing is valid until Close() returns OK.
class ExportWriter {
 public:
  /// Creates (truncates) `path` and writes the header.
  static core::Result<std::unique_ptr<ExportWriter>> Open(const std::string& path, const std::string& topic);
  ~ExportWriter();
  core::Status Write(const SourceRecord& record);
  /// Writes the trailer, flushes and closes.
  core::Status Close();
  int64_t records() const { return records_; }

 private:
  ExportWriter() = default;
  core::Status Put(const void* data, size_t size);
  std::FILE* file_ = nullptr;
  std::string path_;
  uint32_t crc_ = 0;
  int64_t records_ = 0;
};

/// What an export file holds.
struct ExportInfo {
  std::string topic;
  int64_t records = 0;
};

/// Reads `path`, calling `fn` for each record, then checks the trailer. `fn`
/// may have been called for records of a file that turns out corrupt: act on
/// the records only once this returns OK. `progress(bytes read, file size)`
/// is called now and then.
core::Result<ExportInfo> ReadExportFile(const std::string& path, const std::function<void(const SourceRecord&)>& fn,
                                        const std::function<void(int64_t, int64_t)>& progress = {});

/// CRC-32 (IEEE 802.3) of `size` bytes, continuing from `crc` (0 to start).
uint32_t Crc32(uint32_t crc, const void* data, size_t size);

}  // namespace sagaflow::replay
