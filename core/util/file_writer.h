// FileWriter: writes a file piece by piece and says why when the system refuses. Every failed
// open, write, fsync or close throws IoError naming the file, its role and the system's reason
// ("No space left on device", "Read-only file system", ...), so a full disk during a checkpoint or
// a weights export is reported as such. close() fsyncs, so a file that closed without an error is
// on disk before the caller renames it into place. Tested by tests/light/test_file_writer.cpp and,
// on a full disk, by tests/test_faults.cpp.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace smyrf {

class FileWriter {
 public:
  // Creates or truncates `path`; `what` names its role in messages ("checkpoint file").
  FileWriter(std::string path, std::string what);
  ~FileWriter();  // closes quietly when close() was not called (an exception is on its way)
  FileWriter(const FileWriter&) = delete;
  FileWriter& operator=(const FileWriter&) = delete;

  void write(const void* data, size_t bytes);
  void write(std::string_view bytes) { write(bytes.data(), bytes.size()); }
  void close();

 private:
  [[noreturn]] void fail(const char* action, int error) const;

  std::string path_, what_;
  int fd_ = -1;
};

// The whole of `bytes` as the file `path`, through a FileWriter.
void write_whole_file(const std::string& path, std::string_view bytes, const std::string& what);

}  // namespace smyrf
