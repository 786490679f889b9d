#include "sagaflow/replay/export_file.hpp"

#include <sys/stat.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <vector>

namespace sagaflow::replay {
namespace {

using core::Errc;
using core::Error;

constexpr uint32_t kEndMarker = 0xFFFFFFFFu;
constexpr uint32_t kMaxRecord = 64u << 20;
constexpr size_t kRecordFixed = 4 + 8 + 8 + 4;  // partition, offset, timestamp, key length

std::array<uint32_t, 256> MakeCrcTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}

template <class T>
void PutLe(std::string& out, T value) {
  for (size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<char>((static_cast<uint64_t>(value) >> (8 * i)) & 0xFF));
}

template <class T>
T GetLe(const unsigned char* p) {
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return static_cast<T>(v);
}

Error Corrupt(const std::string& path, const std::string& what) {
  return Error{Errc::kCorrupt, "export file " + path + ": " + what, false};
}

}  // namespace

uint32_t Crc32(uint32_t crc, const void* data, size_t size) {
  static const std::array<uint32_t, 256> table = MakeCrcTable();
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ p[i]) & 0xFFu] ^ (crc >> 8);
  return ~crc;
}

core::Result<std::unique_ptr<ExportWriter>> ExportWriter::Open(const std::string& path, const std::string& topic) {
  std::unique_ptr<ExportWriter> w(new ExportWriter());
  w->path_ = path;
  w->file_ = std::fopen(path.c_str(), "wb");
  if (w->file_ == nullptr) {
    return Error{Errc::kIoError, "cannot create " + path + ": " + std::strerror(errno), false};
  }
  std::string header(kExportMagic, sizeof(kExportMagic));
  PutLe<uint16_t>(header, kExportVersion);
  PutLe<uint16_t>(header, 0);
  PutLe<uint32_t>(header, static_cast<uint32_t>(topic.size()));
  header += topic;
  if (auto s = w->Put(header.data(), header.size()); !s.ok()) return s.error();
  return w;
}

ExportWriter::~ExportWriter() {
  if (file_ != nullptr) std::fclose(file_);
}

core::Status ExportWriter::Put(const void* data, size_t size) {
  crc_ = Crc32(crc_, data, size);
  if (std::fwrite(data, 1, size, file_) != size) {
    return Error{Errc::kIoError, "writing " + path_ + ": " + std::strerror(errno), false};
  }
  return core::Status::Ok();
}

core::Status ExportWriter::Write(const SourceRecord& record) {
  const size_t length = kRecordFixed + record.key.size() + record.value.size();
  if (length > kMaxRecord) {
    return Error{Errc::kInvalidArgument, "record at partition " + std::to_string(record.partition) + " offset " +
                                             std::to_string(record.offset) + " is larger than 64 MiB", false};
  }
  std::string head;
  head.reserve(4 + kRecordFixed);
  PutLe<uint32_t>(head, static_cast<uint32_t>(length));
  PutLe<int32_t>(head, record.partition);
  PutLe<int64_t>(head, record.offset);
  PutLe<int64_t>(head, record.timestamp_ms);
  PutLe<uint32_t>(head, static_cast<uint32_t>(record.key.size()));
  if (auto s = Put(head.data(), head.size()); !s.ok()) return s;
  if (auto s = Put(record.key.data(), record.key.size()); !s.ok()) return s;
  if (auto s = Put(record.value.data(), record.value.size()); !s.ok()) return s;
  ++records_;
  return core::Status::Ok();
}

core::Status ExportWriter::Close() {
  std::string trailer;
  PutLe<uint32_t>(trailer, kEndMarker);
  PutLe<uint64_t>(trailer, static_cast<uint64_t>(records_));
  if (auto s = Put(trailer.data(), trailer.size()); !s.ok()) return s;
  std::string crc;
  PutLe<uint32_t>(crc, crc_);
  if (std::fwrite(crc.data(), 1, crc.size(), file_) != crc.size() || std::fflush(file_) != 0) {
    return Error{Errc::kIoError, "writing " + path_ + ": " + std::strerror(errno), false};
  }
  const int rc = std::fclose(file_);
  file_ = nullptr;
  if (rc != 0) return Error{Errc::kIoError, "closing " + path_ + ": " + std::strerror(errno), false};
  return core::Status::Ok();
}

core::Result<ExportInfo> ReadExportFile(const std::string& path, const std::function<void(const SourceRecord&)>& fn,
                                        const std::function<void(int64_t, int64_t)>& progress) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return Error{Errc::kNotFound, "cannot read export file " + path + ": " + std::strerror(errno), false};
  }
  const int64_t size = st.st_size;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) return Error{Errc::kIoError, "cannot open export file " + path + ": " + std::strerror(errno), false};
  std::setvbuf(file.get(), nullptr, _IOFBF, 1 << 20);

  uint32_t crc = 0;
  int64_t position = 0;
  std::vector<unsigned char> buffer;
  // Reads exactly n bytes into buffer (checksummed), or fails as a truncation.
  auto read = [&](size_t n, const char* what) -> core::Status {
    buffer.resize(n);
    if (n > 0 && std::fread(buffer.data(), 1, n, file.get()) != n) {
      return Corrupt(path, std::string("truncated in the ") + what + " at byte " + std::to_string(position) +
                               " (the file ends before its trailer)");
    }
    crc = Crc32(crc, buffer.data(), n);
    position += static_cast<int64_t>(n);
    return core::Status::Ok();
  };

  if (auto s = read(sizeof(kExportMagic) + 2 + 2 + 4, "header"); !s.ok()) return s.error();
  if (std::memcmp(buffer.data(), kExportMagic, sizeof(kExportMagic)) != 0) {
    return Corrupt(path, "not a sagaflow export file (wrong magic)");
  }
  const auto version = GetLe<uint16_t>(buffer.data() + 8);
  if (version != kExportVersion) {
    return Corrupt(path, "version " + std::to_string(version) + " is not supported (this build reads version " +
                             std::to_string(kExportVersion) + ")");
  }
  const auto topic_length = GetLe<uint32_t>(buffer.data() + 12);
  if (topic_length > 4096 || topic_length > size - position) return Corrupt(path, "bad topic name length");
  ExportInfo info;
  if (auto s = read(topic_length, "header"); !s.ok()) return s.error();
  info.topic.assign(buffer.begin(), buffer.end());

  int64_t last_progress = 0;
  while (true) {
    if (auto s = read(4, "record length"); !s.ok()) return s.error();
    const auto length = GetLe<uint32_t>(buffer.data());
    if (length == kEndMarker) break;
    if (length < kRecordFixed || length > kMaxRecord || length > size - position) {
      return Corrupt(path, "record " + std::to_string(info.records) + " at byte " + std::to_string(position - 4) +
                               " has an impossible length " + std::to_string(length) +
                               (length > size - position ? " (beyond the end of the file: truncated?)" : ""));
    }
    if (auto s = read(length, "record"); !s.ok()) return s.error();
    const unsigned char* p = buffer.data();
    const auto key_length = GetLe<uint32_t>(p + 20);
    if (key_length > length - kRecordFixed) {
      return Corrupt(path, "record " + std::to_string(info.records) + " has a key longer than itself");
    }
    SourceRecord record;
    record.partition = GetLe<int32_t>(p);
    record.offset = GetLe<int64_t>(p + 4);
    record.timestamp_ms = GetLe<int64_t>(p + 12);
    const char* chars = reinterpret_cast<const char*>(p);
    record.key = std::string_view(chars + kRecordFixed, key_length);
    record.value = std::string_view(chars + kRecordFixed + key_length, length - kRecordFixed - key_length);
    fn(record);
    ++info.records;
    if (progress && position - last_progress > (4 << 20)) {
      progress(position, size);
      last_progress = position;
    }
  }
  if (auto s = read(8, "trailer"); !s.ok()) return s.error();
  const auto count = GetLe<uint64_t>(buffer.data());
  const uint32_t computed = crc;
  unsigned char stored_crc[4];
  if (std::fread(stored_crc, 1, 4, file.get()) != 4) return Corrupt(path, "truncated in the trailer");
  if (count != static_cast<uint64_t>(info.records)) {
    return Corrupt(path, "the trailer counts " + std::to_string(count) + " records, the file holds " +
                             std::to_string(info.records));
  }
  if (GetLe<uint32_t>(stored_crc) != computed) return Corrupt(path, "checksum mismatch (the file is corrupt)");
  if (std::fgetc(file.get()) != EOF) return Corrupt(path, "bytes after the trailer");
  if (progress) progress(size, size);
  return info;
}

}  // namespace sagaflow::replay
