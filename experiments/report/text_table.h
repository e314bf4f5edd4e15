// Aligned terminal tables and GitHub markdown tables of string cells, shared by `smyrf report`
// (report.cpp) and `smyrf report --paper` (paper_report.cpp). Torch-free. Tested through their tests
// (tests/light/test_results_store.cpp, tests/light/test_paper_report.cpp).
#pragma once

#include <string>
#include <vector>

namespace smyrf {

struct TextTableColumn {
  std::string header;
  bool numeric = false;  // right-aligned
  std::vector<std::string> cells;  // one per row; every column has as many
};

// Columns two spaces apart, widths in code points (UTF-8 text such as "…" keeps the alignment),
// header, a dashed rule, then the rows; every line starts with `indent`, trailing spaces dropped.
std::string render_text_table(const std::vector<TextTableColumn>& columns, const std::string& indent = "");
// | header | ... | with ---: for numeric columns; cells escaped with markdown_escape.
std::string render_markdown_table(const std::vector<TextTableColumn>& columns);
// '|' -> "\|", newlines -> spaces.
std::string markdown_escape(const std::string& s);

}  // namespace smyrf
