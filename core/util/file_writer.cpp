// See file_writer.h.
#include "core/util/file_writer.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/util/check.h"

namespace smyrf {

FileWriter::FileWriter(std::string path, std::string what) : path_(std::move(path)), what_(std::move(what)) {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("create", errno);
}

FileWriter::~FileWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void FileWriter::fail(const char* action, int error) const {
  throw IoError(fmt::format("cannot {} {} '{}': {}; free space on that disk or check its permissions, then re-run",
                            action, what_, path_, std::strerror(error)));
}

void FileWriter::write(const void* data, size_t bytes) {
  SMYRF_CHECK(fd_ >= 0, "FileWriter: write to '{}' after close", path_);
  const char* at = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::write(fd_, at, bytes);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("write", n < 0 ? errno : ENOSPC);  // a write of 0 bytes means no room
    at += n;
    bytes -= static_cast<size_t>(n);
  }
}

void FileWriter::close() {
  if (fd_ < 0) return;
  const int fd = fd_;
  fd_ = -1;
  // tmpfs and some network file systems report a full disk only here
  if (::fsync(fd) != 0 && errno != EINVAL && errno != EROFS) {
    const int error = errno;
    ::close(fd);
    fail("write", error);
  }
  if (::close(fd) != 0) fail("close", errno);
}

void write_whole_file(const std::string& path, std::string_view bytes, const std::string& what) {
  FileWriter out(path, what);
  out.write(bytes);
  out.close();
}

}  // namespace smyrf
