// A terminal progress bar on stderr: "label [#####.....] 120/500  34.2 it/s  ETA 11s".
// Redraws in place on a TTY; elsewhere prints a line at most every 10%.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

namespace qyolo::cli {

class ProgressBar {
 public:
  ProgressBar(std::string label, size_t total, bool enabled = true)
      : label_(std::move(label)), total_(total), enabled_(enabled), tty_(isatty(fileno(stderr))),
        start_(std::chrono::steady_clock::now()) {}
  ~ProgressBar() { finish(); }

  void update(size_t done) {
    if (!enabled_ || total_ == 0) return;
    done_ = done;
    auto now = std::chrono::steady_clock::now();
    double secs = std::chrono::duration<double>(now - start_).count();
    if (tty_) {
      if (done != total_ && std::chrono::duration<double>(now - last_draw_).count() < 0.1) return;
      last_draw_ = now;
    } else {
      size_t decile = done * 10 / total_;
      if (decile == last_decile_ && done != total_) return;
      last_decile_ = decile;
    }
    double rate = secs > 0 ? static_cast<double>(done) / secs : 0.0;
    double eta = rate > 0 ? static_cast<double>(total_ - done) / rate : 0.0;
    constexpr int kWidth = 30;
    int filled = static_cast<int>(kWidth * done / total_);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.append(static_cast<size_t>(kWidth - filled), '.');
    std::fprintf(stderr, "%s%s [%s] %zu/%zu  %.1f it/s  ETA %.0fs%s", tty_ ? "\r" : "", label_.c_str(), bar.c_str(),
                 done, total_, rate, eta, tty_ ? "" : "\n");
    std::fflush(stderr);
  }
  // Same, also setting the total (when it becomes known only once the work starts).
  void update(size_t done, size_t total) {
    if (total) total_ = total;
    update(done);
  }
  void finish() {
    if (!enabled_ || finished_) return;
    finished_ = true;
    if (tty_ && done_ > 0) std::fputc('\n', stderr);
  }

 private:
  std::string label_;
  size_t total_, done_ = 0, last_decile_ = 0;
  bool enabled_, tty_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_{};
};

}  // namespace qyolo::cli
