// FileWriter (core/util/file_writer.h): what it writes reads back; a full disk (/dev/full, where
// every write fails with ENOSPC) and a missing folder are reported with the file, its role and the
// system's reason (a read-only folder: tests/test_faults.cpp).
// Run: smyrf_tests_light --gtest_filter='FileWriter*'
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "core/util/check.h"
#include "core/util/file_writer.h"
#include "core/util/text_file.h"
#include "tests/support/light_test_support.h"

namespace smyrf {
namespace {

using test::contains;
using test::error_of;

class FileWriterTest : public test::TempDirTest {};

TEST_F(FileWriterTest, WritesWhatItIsGiven) {
  const std::string path = file("out.bin");
  {
    FileWriter out(path, "test file");
    out.write("abc", 3);
    out.write(std::string(100000, 'x'));
    out.close();
    out.close();  // idempotent
  }
  const std::string back = read_text_file(path, "test file");
  EXPECT_EQ(back.size(), 100003u);
  EXPECT_EQ(back.substr(0, 4), "abcx");
  write_whole_file(path, "short", "test file");  // truncates
  EXPECT_EQ(read_text_file(path, "test file"), "short");
}

TEST_F(FileWriterTest, AFullDiskIsReportedAsSuch) {
  if (!std::filesystem::exists("/dev/full")) GTEST_SKIP() << "this machine has no /dev/full";
  const std::string message =
      error_of<IoError>([&] { write_whole_file("/dev/full", std::string(8192, 'x'), "checkpoint file"); });
  EXPECT_TRUE(contains(message, "cannot write checkpoint file '/dev/full': No space left on device")) << message;
}

TEST_F(FileWriterTest, AMissingFolderIsReported) {
  const std::string missing = file("no/such/folder/x");
  EXPECT_TRUE(contains(error_of<IoError>([&] { FileWriter(missing, "weights file"); }),
                       "cannot create weights file '" + missing + "': No such file or directory"));
}

}  // namespace
}  // namespace smyrf
