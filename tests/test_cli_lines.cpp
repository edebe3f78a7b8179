// Every `qyolo` command line in README.md (its ```sh blocks) and in scripts/*.sh is parsed by the
// real CLI (QYOLO_PARSE_ONLY=1: parse, then stop), so that a renamed or removed flag breaks CI
// instead of a user's first hour (issue 18: device-check.sh called `calibrate --data --out -q`).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "cli_runner.h"

namespace fs = std::filesystem;

namespace {

struct Word {
  std::string text;
  bool quoted = false;     // any part was in quotes
  bool expansion = false;  // holds a $ expansion
  bool pure = false;       // nothing but one $NAME / ${...} / $@ expansion
  bool array = false;      // $@, $*, ${x[@]}: expands to any number of words
};

// Splits one (joined) shell line into words up to the first unquoted operator or comment.
std::vector<Word> shell_words(const std::string& line) {
  std::vector<Word> words;
  Word cur;
  bool in_word = false;
  int literal_chars = 0, expansions = 0;
  auto flush = [&] {
    if (in_word) {
      cur.pure = expansions == 1 && literal_chars == 0;
      words.push_back(cur);
    }
    cur = Word{};
    in_word = false;
    literal_chars = expansions = 0;
  };
  auto expansion_at = [&](size_t& i) {  // line[i] == '$'
    size_t j = i + 1;
    std::string name;
    if (j < line.size() && line[j] == '{') {
      size_t end = line.find('}', j);
      if (end == std::string::npos) end = line.size() - 1;
      name = line.substr(j + 1, end - j - 1);
      j = end + 1;
    } else if (j < line.size() && (line[j] == '@' || line[j] == '*')) {
      name = line.substr(j, 1);
      j += 1;
    } else {
      while (j < line.size() && (std::isalnum(static_cast<unsigned char>(line[j])) || line[j] == '_')) ++j;
      name = line.substr(i + 1, j - i - 1);
    }
    cur.expansion = true;
    cur.array |= name == "@" || name == "*" || name.find("[@]") != std::string::npos;
    cur.text += "$" + name;
    ++expansions;
    in_word = true;
    i = j;
  };
  size_t i = 0;
  while (i < line.size()) {
    const char c = line[i];
    if (c == ' ' || c == '\t') {
      flush();
      ++i;
    } else if (c == '\'') {
      size_t end = line.find('\'', i + 1);
      if (end == std::string::npos) end = line.size();
      cur.text += line.substr(i + 1, end - i - 1);
      literal_chars += static_cast<int>(end - i - 1);
      cur.quoted = in_word = true;
      i = end + 1;
    } else if (c == '"') {
      cur.quoted = in_word = true;
      ++i;
      while (i < line.size() && line[i] != '"') {
        if (line[i] == '$') {
          expansion_at(i);
        } else {
          if (line[i] == '\\' && i + 1 < line.size()) ++i;
          cur.text += line[i++];
          ++literal_chars;
        }
      }
      ++i;
    } else if (c == '$') {
      expansion_at(i);
    } else if (c == '|' || c == ';' || c == '&' || c == '>' || c == '<' || c == ')' || c == '`' ||
               (c == '#' && !in_word)) {
      break;
    } else {
      if (c == '\\' && i + 1 < line.size()) ++i;
      cur.text += line[i++];
      ++literal_chars;
      in_word = true;
    }
  }
  flush();
  return words;
}

bool is_qyolo_word(const Word& w) {
  if (w.text == "$Q" || w.text == "qyolo") return true;
  return w.text.size() >= 6 && w.text.compare(w.text.size() - 6, 6, "/qyolo") == 0;
}

struct CliLine {
  std::string where;  // file:line
  std::string args;   // the arguments after `qyolo`, normalised
};

// The qyolo invocations of one joined line: arguments with placeholders for expansions
// ("1" is a valid string, number and path for parsing), README's [optional] brackets dropped.
void collect(const std::string& joined, const std::string& where, std::vector<CliLine>& out) {
  const std::vector<Word> words = shell_words(joined);
  for (size_t i = 0; i + 1 < words.size(); ++i) {
    if (!is_qyolo_word(words[i])) continue;
    const Word& sub = words[i + 1];
    if (sub.quoted || sub.expansion || !std::regex_match(sub.text, std::regex("[a-z][a-z0-9-]*"))) continue;
    std::string args = sub.text;
    for (size_t k = i + 2; k < words.size(); ++k) {
      Word w = words[k];
      if (!w.quoted) {
        std::erase(w.text, '[');
        std::erase(w.text, ']');
        if (w.text.empty()) continue;
      }
      const bool after_option = words[k - 1].text.rfind("-", 0) == 0 && !words[k - 1].expansion;
      std::string arg;
      if (w.array) continue;                          // "$@", ${extra[@]}: any number of words
      if (w.pure && !w.quoted && !after_option) continue;  // unquoted $flags: any number of words
      arg = w.expansion ? "1" : w.text;
      args += " '" + std::regex_replace(arg, std::regex("'"), "'\\''") + "'";
    }
    out.push_back({where, args});
  }
}

std::vector<CliLine> cli_lines(const fs::path& file, bool markdown) {
  std::vector<CliLine> out;
  std::ifstream in(file);
  std::string line, joined;
  bool in_block = !markdown;
  int lineno = 0, start = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (markdown && line.rfind("```", 0) == 0) {
      in_block = !in_block && (line == "```sh" || line == "```bash" || line == "```shell");
      continue;
    }
    if (!in_block) continue;
    const size_t first = line.find_first_not_of(" \t");
    if (joined.empty()) {
      if (first == std::string::npos || line[first] == '#') continue;
      start = lineno;
    }
    if (!line.empty() && line.back() == '\\') {
      joined += line.substr(0, line.size() - 1) + " ";
      continue;
    }
    joined += line;
    collect(joined, file.filename().string() + ":" + std::to_string(start), out);
    joined.clear();
  }
  return out;
}

}  // namespace

TEST(CliLines, ShellWordsFollowQuotingAndExpansions) {
  auto w = shell_words(R"(  "$build/qyolo" calibrate --model "$shared/m.onnx" $flags "${extra[@]}" -q 'a b' > log 2>&1)");
  ASSERT_EQ(w.size(), 8u);
  EXPECT_EQ(w[0].text, "$build/qyolo");
  EXPECT_TRUE(is_qyolo_word(w[0]));
  EXPECT_EQ(w[1].text, "calibrate");
  EXPECT_TRUE(w[3].expansion);
  EXPECT_FALSE(w[3].pure);
  EXPECT_TRUE(w[4].pure);
  EXPECT_FALSE(w[4].quoted);
  EXPECT_TRUE(w[5].array);
  EXPECT_EQ(w[7].text, "a b");
  std::vector<CliLine> lines;
  collect(R"($Q eval --data "$DATA" -q "$@" --limit "$n" [--conf 0.25])", "x", lines);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].args, "eval '--data' '1' '-q' '--limit' '1' '--conf' '0.25'");
}

TEST(CliLines, ParseOnlyModeStillRejectsUnknownFlags) {
  setenv("QYOLO_PARSE_ONLY", "1", 1);
  // The line device-check.sh had before issue 18: --data/--out/-q are not calibrate's flags.
  auto bad = qyolo::testing::run_cli("calibrate --model m.onnx --data d --algo mse --out c -q");
  auto good = qyolo::testing::run_cli("calibrate --model m.onnx --calib d --algo mse --cache c");
  unsetenv("QYOLO_PARSE_ONLY");
  EXPECT_NE(bad.exit_code, 0) << bad.output;
  EXPECT_EQ(good.exit_code, 0) << good.output;
  EXPECT_TRUE(good.output.empty()) << "parse-only mode must not run the command: " << good.output;
}

TEST(CliLines, EveryReadmeAndScriptLineParses) {
  const fs::path root = QYOLO_SOURCE_DIR;
  std::vector<CliLine> lines = cli_lines(root / "README.md", /*markdown=*/true);
  std::vector<fs::path> scripts;
  for (const auto& e : fs::directory_iterator(root / "scripts"))
    if (e.path().extension() == ".sh") scripts.push_back(e.path());
  std::sort(scripts.begin(), scripts.end());
  int from_scripts = 0, from_device_check = 0;
  for (const auto& s : scripts) {
    auto more = cli_lines(s, /*markdown=*/false);
    from_scripts += static_cast<int>(more.size());
    if (s.filename() == "device-check.sh") from_device_check += static_cast<int>(more.size());
    lines.insert(lines.end(), more.begin(), more.end());
  }
  // The extraction itself must work: README and the scripts hold many qyolo lines.
  EXPECT_GE(lines.size(), 20u);
  EXPECT_GE(from_scripts, 5);
  EXPECT_GE(from_device_check, 1);
  setenv("QYOLO_PARSE_ONLY", "1", 1);
  for (const auto& l : lines) {
    auto r = qyolo::testing::run_cli(l.args);
    EXPECT_EQ(r.exit_code, 0) << l.where << ": qyolo " << l.args << "\n" << r.output;
  }
  unsetenv("QYOLO_PARSE_ONLY");
}
