// CudaExecutor build stage: concurrent branches on a side stream, and the activation arena.
#include <algorithm>

#include "backends/cuda/executor_impl.h"

namespace qyolo {

using cuda::Layout;
using cuda::TensorInfo;
using namespace cuda_exec;

// Concurrent branches. A step whose last producer ran well before it needs nothing from the
// steps in between (a C3's cv2 reads the block input, a detect-head conv reads a neck output the
// rest of the neck goes on from): it runs on the side stream from just after that producer
// (fork event) until just before its first reader (join event), overlapping them. Fills
// `window`: the step indices during which each step may run, for the memory plan.
Status CudaExecutor::Impl::assign_streams() {
  const size_t n = ex.steps_.size();
  window.assign(n, {0, 0});
  for (size_t s = 0; s < n; ++s) window[s] = {static_cast<int>(s), static_cast<int>(s)};
  if (!ex.options_.concurrent_branches) return Status::ok();
  const size_t nv = ex.values_.size();
  // dep[s]: the last launched step writing a buffer s reads (-1: only inputs and constants).
  std::vector<int> last_writer(nv, -1), dep(n, -1);
  for (size_t s = 0; s < n; ++s) {
    const Step& st = ex.steps_[s];
    if (st.alias) continue;
    for (int v : st.inputs)
      if (v >= 0) dep[s] = std::max(dep[s], last_writer[static_cast<size_t>(root_of(v))]);
    for (int v : st.outputs) last_writer[static_cast<size_t>(root_of(v))] = static_cast<int>(s);
  }
  // First launched step after s reading a buffer s writes (n: none).
  auto first_reader = [&](size_t s) {
    std::set<int> written;
    for (int v : ex.steps_[s].outputs) written.insert(root_of(v));
    for (size_t t = s + 1; t < n; ++t) {
      if (ex.steps_[t].alias) continue;
      for (int v : ex.steps_[t].inputs)
        if (v >= 0 && written.count(root_of(v))) return static_cast<int>(t);
    }
    return static_cast<int>(n);
  };
  std::map<int, int> fork_of;  // producer step (-1: start) -> fork event
  size_t side_ws = 0;
  for (size_t s = 1; s < n; ++s) {
    Step& st = ex.steps_[s];
    const int d = dep[s];
    if (st.alias || d >= static_cast<int>(s) - 1 || (d >= 0 && ex.steps_[static_cast<size_t>(d)].side))
      continue;
    const int j = first_reader(s);
    int fork;
    if (auto it = fork_of.find(d); it != fork_of.end()) {
      fork = it->second;
    } else {
      fork = static_cast<int>(ex.fork_events_.size());
      QYOLO_ASSIGN_OR_RETURN(auto e, cuda::make_event(false));
      ex.fork_events_.push_back(std::move(e));
      fork_of[d] = fork;
      if (d < 0)
        ex.start_forks_.push_back(fork);
      else
        ex.steps_[static_cast<size_t>(d)].record_fork = fork;
    }
    const int join = static_cast<int>(ex.join_events_.size());
    QYOLO_ASSIGN_OR_RETURN(auto e, cuda::make_event(false));
    ex.join_events_.push_back(std::move(e));
    st.side = true;
    st.wait_fork = fork;
    st.record_join = join;
    st.label += " [side stream]";
    if (j < static_cast<int>(n))
      ex.steps_[static_cast<size_t>(j)].wait_joins.push_back(join);
    else
      ex.end_joins_.push_back(join);
    window[s] = {d + 1, std::min(j, static_cast<int>(n)) - 1};
    side_ws = std::max(side_ws, st.kernel->workspace_bytes());
  }
  if (ex.join_events_.empty()) return Status::ok();
  QYOLO_ASSIGN_OR_RETURN(ex.side_stream_, cuda::make_stream());
  QYOLO_ASSIGN_OR_RETURN(ex.side_workspace_, cuda::DeviceBuffer::allocate(side_ws));
  return Status::ok();
}

// Liveness-based offsets into one arena (greedy, largest first).
void CudaExecutor::Impl::plan_memory() {
  const size_t nv = ex.values_.size();
  std::vector<int> root(nv);
  for (size_t v = 0; v < nv; ++v) root[v] = root_of(static_cast<int>(v));
  // A value lives from the earliest step that may write it to the latest that may read it; a
  // side-stream step may run anywhere in its window (assign_streams).
  const int end = static_cast<int>(ex.steps_.size());
  std::vector<int> first(nv, end + 1), last(nv, -1);
  for (int s = 0; s < end; ++s) {
    const auto [lo, hi] = window[static_cast<size_t>(s)];
    for (int v : ex.steps_[static_cast<size_t>(s)].outputs) {
      int r = root[static_cast<size_t>(v)];
      first[static_cast<size_t>(r)] = std::min(first[static_cast<size_t>(r)], lo);
      last[static_cast<size_t>(r)] = std::max(last[static_cast<size_t>(r)], hi);
    }
    for (int v : ex.steps_[static_cast<size_t>(s)].inputs) {
      if (v < 0) continue;
      int r = root[static_cast<size_t>(v)];
      last[static_cast<size_t>(r)] = std::max(last[static_cast<size_t>(r)], hi);
    }
  }
  struct Buf {
    int v;
    size_t size;
    int first, last;
    size_t offset;
  };
  std::vector<Buf> bufs;
  for (size_t v = 0; v < nv; ++v) {
    if (ex.values_[v].storage != Storage::kArena) continue;
    if (last[v] < 0) last[v] = first[v];
    bufs.push_back({static_cast<int>(v), align_up(std::max<size_t>(ex.values_[v].info.nbytes(), 1)), first[v],
                    last[v], 0});
  }
  std::sort(bufs.begin(), bufs.end(), [](const Buf& a, const Buf& b) {
    return a.size != b.size ? a.size > b.size : a.first < b.first;
  });
  std::vector<const Buf*> placed;
  size_t total = 0;
  for (auto& b : bufs) {
    std::vector<std::pair<size_t, size_t>> busy;
    for (const Buf* p : placed)
      if (!(p->last < b.first || b.last < p->first)) busy.emplace_back(p->offset, p->offset + p->size);
    std::sort(busy.begin(), busy.end());
    size_t off = 0;
    for (const auto& [s, e] : busy) {
      if (off + b.size <= s) break;
      off = std::max(off, e);
    }
    b.offset = off;
    total = std::max(total, off + b.size);
    placed.push_back(&b);
  }
  for (const auto& b : bufs) ex.values_[static_cast<size_t>(b.v)].offset = b.offset;
  arena_size = total;
}

}  // namespace qyolo
