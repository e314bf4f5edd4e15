// Reading a whole text file, in one place, with errors that name what the file is and the fix:
// missing ("not found", with the absolute path looked at), a directory, or unreadable -> IoError.
// `what` names the file's role in messages ("config file", "input file"). Used by the config
// loader, the tokenizer files, `smyrf tokenize`/`score`, text windows and the paper targets.
// Tested by tests/light/test_config.cpp and tests/light/test_text.cpp.
#pragma once

#include <string>
#include <vector>

namespace smyrf {

std::string read_text_file(const std::string& path, const std::string& what);

// The file's lines as split_lines (core/util/strings.h) gives them.
std::vector<std::string> read_text_lines(const std::string& path, const std::string& what);

}  // namespace smyrf
