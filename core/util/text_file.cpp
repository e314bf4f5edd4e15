// See text_file.h.
#include "core/util/text_file.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/util/check.h"
#include "core/util/strings.h"

namespace smyrf {

std::string read_text_file(const std::string& path, const std::string& what) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec))
    throw IoError(fmt::format("{} '{}' not found (looked for '{}'); check the path", what, path,
                              fs::absolute(path, ec).string()));
  if (fs::is_directory(path, ec))
    throw IoError(fmt::format("{} '{}' is a directory, not a file; check the path", what, path));
  // A FIFO or device would block or never end; only regular files (or links to them) are read.
  if (!fs::is_regular_file(path, ec))
    throw IoError(fmt::format("{} '{}' is not a regular file (a FIFO, socket or device?); give a file", what, path));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(fmt::format("cannot open {} '{}' for reading; check the path and permissions", what, path));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw IoError(fmt::format("error while reading {} '{}'; check the path and permissions", what, path));
  return text.str();
}

std::vector<std::string> read_text_lines(const std::string& path, const std::string& what) {
  return split_lines(read_text_file(path, what));
}

}  // namespace smyrf
