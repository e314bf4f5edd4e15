// Assertions shared by the light (torch-free) tests: substring checks that print both strings, and
// the message of an expected exception of a given type.
#pragma once

#include <gtest/gtest.h>

#include <exception>
#include <string>

namespace smyrf::test {

inline testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return testing::AssertionSuccess();
  return testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

template <class E, class F>
inline std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected an exception";
  return "";
}

}  // namespace smyrf::test
