// Error handling for the whole harness.
//
// Library code throws; only main() turns exceptions into exit codes. Three kinds:
//   smyrf::Error        a generic failure (bad tensor, internal invariant)
//   smyrf::ConfigError  bad user input in a config file: the message names file, JSON path, the fix
//   smyrf::IoError      a file that is missing, unreadable, unwritable or corrupt
// SMYRF_CHECK(cond, fmt, args...) throws smyrf::Error with file:line and a fmt-formatted message.
// (Torch headers define CHECK/LOG, hence the prefix.)
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace smyrf {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class ConfigError : public Error {
 public:
  using Error::Error;
};

class IoError : public Error {
 public:
  using Error::Error;
};

}  // namespace smyrf

#define SMYRF_CHECK(cond, ...)                                                                    \
  do {                                                                                            \
    if (!(cond)) {                                                                                \
      throw ::smyrf::Error(::fmt::format("{} ({}:{})", ::fmt::format(__VA_ARGS__), __FILE__, __LINE__)); \
    }                                                                                             \
  } while (0)
