#include "backends/cpu/cpu_executor.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>

#include "passes/passes.h"
#include "quant/int8_dataflow.h"

namespace qyolo {

namespace {
// Channels-last -> NCHW float, int8 values as scale * (q - zero_point) (what the observer of a
// channels-last value sees).
template <typename T>
Tensor channels_last_to_nchw(const Tensor& v, float scale, int64_t zero_point = 0) {
  const Shape& s = v.shape();
  Tensor out(DataType::kFloat32, s);
  const int64_t n = s[0], c = s[1], hw = s[2] * s[3];
  const T* src = v.data<T>();
  float* dst = out.data<float>();
  for (int64_t b = 0; b < n; ++b)
    for (int64_t p = 0; p < hw; ++p)
      for (int64_t ch = 0; ch < c; ++ch)
        dst[(b * c + ch) * hw + p] =
            scale * (static_cast<float>(src[(b * hw + p) * c + ch]) - static_cast<float>(zero_point));
  return out;
}

// A placed value (batch items `batch_stride` elements apart) as a dense tensor.
Tensor compact_batches(const Tensor& v, int64_t batch_stride) {
  Tensor out = Tensor::uninitialized(v.dtype(), v.shape());
  const size_t item = v.nbytes() / static_cast<size_t>(std::max<int64_t>(v.dim(0), 1));
  const size_t pitch = static_cast<size_t>(batch_stride) * dtype_size(v.dtype());
  for (int64_t b = 0; b < v.dim(0); ++b)
    std::memcpy(static_cast<std::byte*>(out.raw()) + static_cast<size_t>(b) * item,
                static_cast<const std::byte*>(v.raw()) + static_cast<size_t>(b) * pitch, item);
  return out;
}

Result<std::unique_ptr<CpuKernel>> make_kernel(const Node& node) {
  CpuKernelFactory factory = find_cpu_kernel(node.op_type);
  if (factory == nullptr) return unsupported(node.describe() + ": the CPU backend has no kernel for this op");
  return factory(node);
}
}  // namespace

Result<std::vector<Tensor>> evaluate_node_cpu(const Node& node, const std::vector<const ValueDesc*>& inputs,
                                              const std::vector<ValueDesc>& outputs) {
  QYOLO_ASSIGN_OR_RETURN(auto kernel, make_kernel(node));
  QYOLO_RETURN_IF_ERROR(kernel->prepare(node, inputs, outputs).with_context("preparing"));
  Tensor workspace = give_own_workspace(*kernel);
  std::vector<const Tensor*> in_ptrs;
  for (const auto* d : inputs) in_ptrs.push_back(d ? &*d->value : nullptr);
  std::vector<Tensor> outs;
  for (const auto& o : outputs) outs.emplace_back(o.dtype, o.shape);
  std::vector<Tensor*> out_ptrs;
  for (auto& t : outs) out_ptrs.push_back(&t);
  QYOLO_RETURN_IF_ERROR(kernel->run(in_ptrs, out_ptrs));
  return outs;
}

Result<std::unique_ptr<CpuExecutor>> CpuExecutor::build(SpecializedGraph graph) {
  auto ex = std::unique_ptr<CpuExecutor>(new CpuExecutor());
  ex->graph_ = std::move(graph);
  const Graph& g = ex->graph_.graph;
  std::unordered_map<std::string, int> ids;
  auto id_of = [&](const std::string& name) -> int {
    auto it = ids.find(name);
    if (it != ids.end()) return it->second;
    int id = static_cast<int>(ex->value_names_.size());
    ids[name] = id;
    ex->value_names_.push_back(name);
    ex->value_descs_.push_back(ex->graph_.values.at(name));
    return id;
  };
  for (const auto& in : g.inputs) ex->input_ids_.push_back(id_of(in.name));
  for (const auto& [name, t] : g.initializers) ex->constant_ids_.push_back(id_of(name));
  for (const auto& node : g.nodes) {
    Step step;
    step.node = &node;
    std::vector<const ValueDesc*> in_descs;
    for (const auto& in : node.inputs) {
      if (in.empty()) {
        step.input_ids.push_back(-1);
        in_descs.push_back(nullptr);
        continue;
      }
      if (!ex->graph_.values.count(in))
        return internal_error(node.describe() + ": unknown input '" + in + "'");
      step.input_ids.push_back(id_of(in));
      in_descs.push_back(&ex->graph_.values.at(in));
    }
    std::vector<ValueDesc> out_descs;
    for (const auto& o : node.outputs) {
      step.output_ids.push_back(id_of(o));
      out_descs.push_back(ex->graph_.values.at(o));
    }
    auto kernel = make_kernel(node);
    if (!kernel) return kernel.status().with_context(g.source_path);
    step.kernel = std::move(kernel).value();
    QYOLO_RETURN_IF_ERROR(step.kernel->prepare(node, in_descs, out_descs).with_context(g.source_path));
    ex->steps_.push_back(std::move(step));
  }
  size_t workspace = 0;
  for (const auto& s : ex->steps_) workspace = std::max(workspace, s.kernel->workspace_bytes());
  ex->workspace_ = Tensor::uninitialized(DataType::kUInt8, {static_cast<int64_t>(workspace)});
  for (auto& s : ex->steps_) s.kernel->set_workspace(static_cast<std::byte*>(ex->workspace_.raw()));
  for (const auto& o : g.outputs) ex->output_ids_.push_back(id_of(o.name));
  ex->consumers_.assign(ex->value_names_.size(), 0);
  for (const auto& s : ex->steps_)
    for (int id : s.input_ids)
      if (id >= 0) ex->consumers_[static_cast<size_t>(id)]++;
  ex->place_concats();
  ex->fuse_bands();
  ex->plan_arena();
  return ex;
}

namespace {
size_t value_bytes(const ValueDesc& d) {
  return static_cast<size_t>(shape_numel(d.shape)) * dtype_size(d.dtype);
}
}  // namespace

void CpuExecutor::place_concats() {
  const size_t n = value_names_.size();
  placed_.assign(n, Placement{});
  elided_.assign(steps_.size(), false);
  std::vector<int> producer(n, -1);
  for (size_t si = 0; si < steps_.size(); ++si)
    for (int o : steps_[si].output_ids) producer[static_cast<size_t>(o)] = static_cast<int>(si);
  std::vector<bool> is_output(n, false);
  for (int id : output_ids_) is_output[static_cast<size_t>(id)] = true;
  for (size_t ci = 0; ci < steps_.size(); ++ci) {
    const Step& cat = steps_[ci];
    if (cat.node->op_type != "Concat" || cat.output_ids.size() != 1) continue;
    const int out = cat.output_ids[0];
    const ValueDesc& od = value_descs_[static_cast<size_t>(out)];
    const int64_t rank = static_cast<int64_t>(od.shape.size());
    auto axis = cat.node->attr_int("axis");
    if (!axis || rank < 2 || (*axis != 1 && *axis != 1 - rank)) continue;
    int64_t inner = 1;
    for (int64_t d = 2; d < rank; ++d) inner *= od.shape[static_cast<size_t>(d)];
    const int64_t batch_stride = od.shape[1] * inner;
    // Each input back through reshape views to its producer's output, read only on that path.
    std::vector<std::pair<int, int64_t>> parts;  // (producer's output, element offset)
    int64_t offset = 0;
    bool ok = true;
    for (int v : cat.input_ids) {
      if (v < 0 || value_descs_[static_cast<size_t>(v)].dtype != od.dtype) {
        ok = false;
        break;
      }
      const int64_t part_offset = offset;
      offset += value_descs_[static_cast<size_t>(v)].shape[1] * inner;
      while (ok) {
        const int p = producer[static_cast<size_t>(v)];
        ok = p >= 0 && consumers_[static_cast<size_t>(v)] == 1 && !is_output[static_cast<size_t>(v)] &&
             placed_[static_cast<size_t>(v)].base < 0;
        if (!ok) break;
        const Step& ps = steps_[static_cast<size_t>(p)];
        if (ps.kernel->output_aliases_input() && !ps.input_ids.empty() && ps.input_ids[0] >= 0) {
          v = ps.input_ids[0];
          continue;
        }
        ok = ps.output_ids.size() == 1 && ps.kernel->supports_output_batch_stride() &&
             value_descs_[static_cast<size_t>(v)].shape[0] == od.shape[0];
        break;
      }
      if (!ok) break;
      for (const auto& [u, off] : parts) ok = ok && u != v;
      parts.emplace_back(v, part_offset);
    }
    if (!ok || parts.empty()) continue;
    for (const auto& [v, off] : parts) {
      steps_[static_cast<size_t>(producer[static_cast<size_t>(v)])].kernel->set_output_batch_stride(
          batch_stride);
      placed_[static_cast<size_t>(v)] = {out, static_cast<size_t>(off) * dtype_size(od.dtype), batch_stride};
    }
    elided_[ci] = true;
  }
}

void CpuExecutor::fuse_bands() {
  band_producer_.assign(steps_.size(), -1);
  banded_.assign(steps_.size(), false);
  const char* env = std::getenv("QYOLO_CPU_BANDS");
  if (env && std::string(env) == "0") return;
  std::vector<int> producer(value_names_.size(), -1);
  for (size_t si = 0; si < steps_.size(); ++si)
    for (int o : steps_[si].output_ids) producer[static_cast<size_t>(o)] = static_cast<int>(si);
  size_t band_bytes = 0;
  for (size_t sj = 0; sj < steps_.size(); ++sj) {
    const Step& reader = steps_[sj];
    if (!reader.kernel->reads_bands() || reader.input_ids.empty() || reader.input_ids[0] < 0) continue;
    const int v = reader.input_ids[0];
    const auto uv = static_cast<size_t>(v);
    const int p = producer[uv];
    if (p < 0 || elided_[static_cast<size_t>(p)] || consumers_[uv] != 1 || placed_[uv].base >= 0 ||
        std::find(output_ids_.begin(), output_ids_.end(), v) != output_ids_.end())
      continue;
    const Step& prod = steps_[static_cast<size_t>(p)];
    const int64_t rows = prod.kernel->band_rows();
    const Shape& shape = value_descs_[uv].shape;
    // Only an output much larger than the L2 would be written to memory and read back from it
    // (yolov5n: the 80x80 head's 6.5 MB per image); smaller ones lose more to the bands' calls.
    constexpr size_t kMinBytes = 4 << 20;
    if (rows <= 0 || prod.output_ids.size() != 1 || shape.size() != 4 || shape[2] % rows != 0 ||
        value_bytes(value_descs_[uv]) < kMinBytes)
      continue;
    band_producer_[sj] = p;
    banded_[static_cast<size_t>(p)] = true;
    band_bytes = std::max(band_bytes, static_cast<size_t>(rows * shape[1] * shape[3]) * sizeof(float));
  }
  if (band_bytes > 0) band_ = Tensor::uninitialized(DataType::kUInt8, {static_cast<int64_t>(band_bytes)});
}

void CpuExecutor::plan_arena() {
  const size_t n = value_names_.size();
  std::vector<int> root(n), first(n, -1), last(n, -1);
  for (size_t v = 0; v < n; ++v) root[v] = static_cast<int>(v);
  std::vector<bool> planned(n, false);
  for (size_t si = 0; si < steps_.size(); ++si) {
    const Step& s = steps_[si];
    const bool alias = s.kernel->output_aliases_input() && !s.input_ids.empty() && s.input_ids[0] >= 0;
    for (int o : s.output_ids) {
      const auto uo = static_cast<size_t>(o);
      if (alias) {
        root[uo] = root[static_cast<size_t>(s.input_ids[0])];
      } else if (placed_[uo].base >= 0) {
        // Written into its concat's output, which is in use from the first such write on.
        const auto base = static_cast<size_t>(placed_[uo].base);
        root[uo] = static_cast<int>(base);
        first[base] = first[base] < 0 ? static_cast<int>(si) : std::min(first[base], static_cast<int>(si));
      } else {
        planned[uo] = true;
        first[uo] = first[uo] < 0 ? static_cast<int>(si) : std::min(first[uo], static_cast<int>(si));
      }
    }
    // A value (through its views) is in use from its producer to its last reader, inclusive: a
    // step's outputs never share bytes with its inputs.
    for (int id : s.input_ids)
      if (id >= 0) last[static_cast<size_t>(root[static_cast<size_t>(id)])] = static_cast<int>(si);
    if (band_producer_[si] >= 0)  // the banded producer's inputs are read here
      for (int id : steps_[static_cast<size_t>(band_producer_[si])].input_ids)
        if (id >= 0) last[static_cast<size_t>(root[static_cast<size_t>(id)])] = static_cast<int>(si);
    for (int o : s.output_ids)
      last[static_cast<size_t>(root[static_cast<size_t>(o)])] =
          std::max(last[static_cast<size_t>(root[static_cast<size_t>(o)])], static_cast<int>(si));
  }
  for (int o : output_ids_)
    planned[static_cast<size_t>(root[static_cast<size_t>(o)])] = false;  // escapes the run

  std::vector<int> order;
  for (size_t v = 0; v < n; ++v)
    if (planned[v] && value_bytes(value_descs_[v]) > 0) order.push_back(static_cast<int>(v));
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return value_bytes(value_descs_[static_cast<size_t>(a)]) >
           value_bytes(value_descs_[static_cast<size_t>(b)]);
  });
  arena_offset_.assign(n, -1);
  struct Placed {
    int64_t begin, end;
    int first, last;
  };
  std::vector<Placed> placed;
  int64_t total = 0;
  for (int v : order) {
    const auto size = static_cast<int64_t>(align64(value_bytes(value_descs_[static_cast<size_t>(v)])));
    const int f = first[static_cast<size_t>(v)], l = last[static_cast<size_t>(v)];
    std::vector<std::pair<int64_t, int64_t>> busy;  // byte ranges of values alive at the same time
    for (const Placed& p : placed)
      if (p.first <= l && f <= p.last) busy.emplace_back(p.begin, p.end);
    std::sort(busy.begin(), busy.end());
    int64_t at = 0;
    for (const auto& [b, e] : busy) {
      if (at + size <= b) break;
      at = std::max(at, e);
    }
    arena_offset_[static_cast<size_t>(v)] = at;
    placed.push_back({at, at + size, f, l});
    total = std::max(total, at + size);
  }
  if (total > 0) arena_ = Tensor::uninitialized(DataType::kUInt8, {total});
}

Status CpuExecutor::run(const std::map<std::string, Tensor>& inputs, std::map<std::string, Tensor>& outputs,
                        const ValueObserver& observer, std::vector<double>* step_seconds) const {
  if (step_seconds) step_seconds->assign(steps_.size(), 0.0);
  const Graph& g = graph_.graph;
  std::vector<Tensor> slots(value_names_.size());
  std::vector<int> remaining = consumers_;
  for (int id : constant_ids_) slots[static_cast<size_t>(id)] = *value_descs_[static_cast<size_t>(id)].value;
  for (int id : input_ids_) {
    const std::string& name = value_names_[static_cast<size_t>(id)];
    auto it = inputs.find(name);
    if (it == inputs.end()) return invalid_argument("input '" + name + "' was not provided");
    const ValueDesc& d = value_descs_[static_cast<size_t>(id)];
    if (it->second.shape() != d.shape || it->second.dtype() != d.dtype)
      return invalid_argument("input '" + name + "' is " + dtype_name(it->second.dtype()) + " " +
                              shape_str(it->second.shape()) + ", the engine was specialised for " +
                              dtype_name(d.dtype) + " " + shape_str(d.shape));
    slots[static_cast<size_t>(id)] = it->second;
  }
  std::vector<bool> is_output(value_names_.size(), false);
  for (int id : output_ids_) is_output[static_cast<size_t>(id)] = true;
  // The caller's output tensors that this run may overwrite (see the header).
  std::vector<Tensor> reusable(value_names_.size());
  for (int id : output_ids_) {
    auto it = outputs.find(value_names_[static_cast<size_t>(id)]);
    const ValueDesc& d = value_descs_[static_cast<size_t>(id)];
    if (it != outputs.end() && !it->second.empty() && !it->second.storage_shared() &&
        it->second.dtype() == d.dtype && it->second.shape() == d.shape)
      reusable[static_cast<size_t>(id)] = it->second;
  }

  auto allocate = [&](int id) {
    const ValueDesc& d = value_descs_[static_cast<size_t>(id)];
    const int64_t off = arena_offset_[static_cast<size_t>(id)];
    Tensor& reuse = reusable[static_cast<size_t>(id)];
    return off >= 0 && !observer ? arena_.view(static_cast<size_t>(off), d.dtype, d.shape)
           : !reuse.empty()      ? std::move(reuse)
                                 : Tensor::uninitialized(d.dtype, d.shape);
  };

  std::vector<const Tensor*> in_ptrs, band_in_ptrs;
  std::vector<Tensor*> out_ptrs;
  auto release_inputs = [&](const Step& step) {
    for (int id : step.input_ids) {
      if (id < 0) continue;
      if (--remaining[static_cast<size_t>(id)] == 0 && !is_output[static_cast<size_t>(id)])
        slots[static_cast<size_t>(id)] = Tensor();
    }
  };
  const bool bands = !observer;  // an observer sees every value: no bands
  for (size_t si = 0; si < steps_.size(); ++si) {
    const Step& step = steps_[si];
    auto t0 = std::chrono::steady_clock::now();
    if (bands && banded_[si]) continue;  // runs band by band in its reader's step
    in_ptrs.clear();
    out_ptrs.clear();
    for (int id : step.input_ids) in_ptrs.push_back(id >= 0 ? &slots[static_cast<size_t>(id)] : nullptr);
    for (int id : step.output_ids) {
      Tensor& slot = slots[static_cast<size_t>(id)];
      const Placement& p = placed_[static_cast<size_t>(id)];
      if (p.base >= 0) {
        Tensor& base = slots[static_cast<size_t>(p.base)];
        if (base.empty()) base = allocate(p.base);
        const ValueDesc& d = value_descs_[static_cast<size_t>(id)];
        slot = base.view(p.byte_offset, d.dtype, d.shape);
      } else if (slot.empty()) {  // (an elided concat's output is there since its first part)
        slot = allocate(id);
      }
      out_ptrs.push_back(&slot);
    }
    const int bp = band_producer_[si];
    if (bands && bp >= 0) {
      const Step& prod = steps_[static_cast<size_t>(bp)];
      band_in_ptrs.clear();
      for (int id : prod.input_ids)
        band_in_ptrs.push_back(id >= 0 ? &slots[static_cast<size_t>(id)] : nullptr);
      const Shape& shape = value_descs_[static_cast<size_t>(prod.output_ids[0])].shape;
      const int64_t rows = prod.kernel->band_rows(), total = shape[0] * shape[2];
      float* band = band_.data<float>();
      for (int64_t r0 = 0; r0 < total; r0 += rows) {
        Status st = prod.kernel->run_band(band_in_ptrs, band, r0);
        if (st.is_ok()) st = step.kernel->run_band_reader(in_ptrs, band, r0, rows, out_ptrs);
        if (!st.is_ok()) return st.with_context(g.source_path + ": " + step.node->describe());
      }
      release_inputs(prod);
    } else if (!elided_[si]) {
      Status st = step.kernel->run(in_ptrs, out_ptrs);
      if (!st.is_ok()) return st.with_context(g.source_path + ": " + step.node->describe());
    }
    if (step_seconds)
      (*step_seconds)[si] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (observer)
      for (int id : step.output_ids) {
        // Channels-last values are passed NCHW (int8 ones of the int8 plan, src/quant/
        // int8_dataflow.h, dequantised), placed ones dense.
        const Tensor& v = slots[static_cast<size_t>(id)];
        const Placement& p = placed_[static_cast<size_t>(id)];
        auto s = step.node->attrs.find(kInt8OutputScaleAttr);
        const auto zp_attr = step.node->attr_int(kInt8OutputZeroPointAttr, 0);
        const int64_t zp = zp_attr ? *zp_attr : 0;
        observer(value_names_[static_cast<size_t>(id)],
                 s != step.node->attrs.end()
                     ? channels_last_to_nchw<int8_t>(v, std::get<float>(s->second), zp)
                 : step.node->has_attr(kChannelsLastOutputAttr) ? channels_last_to_nchw<float>(v, 1.f)
                 : p.base >= 0                                  ? compact_batches(v, p.batch_stride)
                                                                : v);
      }
    release_inputs(step);
  }
  outputs.clear();
  for (int id : output_ids_) outputs[value_names_[static_cast<size_t>(id)]] = slots[static_cast<size_t>(id)];
  return Status::ok();
}

}  // namespace qyolo
