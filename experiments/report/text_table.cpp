// See text_table.h.
#include "experiments/report/text_table.h"

#include <algorithm>

namespace smyrf {
namespace {

size_t display_width(const std::string& s) {
  size_t chars = 0;
  for (unsigned char c : s) chars += (c & 0xC0) != 0x80;
  return chars;
}

std::string pad(const std::string& s, size_t width, bool right) {
  const size_t w = display_width(s);
  const std::string fill(width > w ? width - w : 0, ' ');
  return right ? fill + s : s + fill;
}

size_t row_count(const std::vector<TextTableColumn>& columns) { return columns.empty() ? 0 : columns.front().cells.size(); }

}  // namespace

std::string render_text_table(const std::vector<TextTableColumn>& columns, const std::string& indent) {
  std::vector<size_t> widths;
  for (const auto& c : columns) {
    size_t w = display_width(c.header);
    for (const auto& cell : c.cells) w = std::max(w, display_width(cell));
    widths.push_back(w);
  }
  std::string out;
  auto line = [&](auto&& cell_of) {
    std::string row = indent;
    for (size_t c = 0; c < columns.size(); ++c) {
      if (c > 0) row += "  ";
      row += pad(cell_of(c), widths[c], columns[c].numeric);
    }
    while (!row.empty() && row.back() == ' ') row.pop_back();
    out += row + "\n";
  };
  line([&](size_t c) { return columns[c].header; });
  line([&](size_t c) { return std::string(widths[c], '-'); });
  for (size_t r = 0; r < row_count(columns); ++r) line([&](size_t c) { return columns[c].cells[r]; });
  return out;
}

std::string markdown_escape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (ch == '|') {
      out += "\\|";
    } else if (ch == '\n') {
      out += ' ';
    } else {
      out += ch;
    }
  }
  return out;
}

std::string render_markdown_table(const std::vector<TextTableColumn>& columns) {
  std::string out = "|";
  for (const auto& c : columns) out += " " + markdown_escape(c.header) + " |";
  out += "\n|";
  for (const auto& c : columns) out += c.numeric ? " ---: |" : " :--- |";
  out += "\n";
  for (size_t r = 0; r < row_count(columns); ++r) {
    out += "|";
    for (const auto& c : columns) out += " " + markdown_escape(c.cells[r]) + " |";
    out += "\n";
  }
  return out;
}

}  // namespace smyrf
