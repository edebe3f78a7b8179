// CudaExecutor build stage: step-level fusions (requantisation, the YOLO decode, concat in place,
// the uint8 image read by the stem).
#include <algorithm>
#include <map>
#include <set>

#include "backends/cuda/executor_impl.h"
#include "ir/ops/concat.h"
#include "ir/ops/image_to_float.h"

namespace qyolo {

using cuda::Layout;
using cuda::TensorInfo;
using namespace cuda_exec;

// INT8 convs whose output is read by quantize steps write the int8 copy themselves.
void CudaExecutor::Impl::fuse_requantization() {
  const std::vector<int> producer = step_producers();
  std::vector<bool> drop(ex.steps_.size(), false);
  for (size_t s = 0; s < ex.steps_.size(); ++s) {
    Step& q = ex.steps_[s];
    if (!(q.quantize_scale > 0.f)) continue;
    const int v = q.inputs[0];
    const int ps = producer[static_cast<size_t>(v)];
    if (ps < 0) continue;
    Step& prod = ex.steps_[static_cast<size_t>(ps)];
    const TensorInfo& vi = ex.values_[static_cast<size_t>(v)].info;
    const TensorInfo& qi = ex.values_[static_cast<size_t>(q.outputs[0])].info;
    if (prod.outputs.size() != 1 || vi.layout != Layout::kNHWC || qi.shape != vi.shape) continue;
    if (!prod.kernel->fuse_quantized_output(q.quantize_scale)) continue;
    prod.outputs.push_back(q.outputs[0]);
    prod.label += " +quantize";
    drop[s] = true;
  }
  drop_steps(drop);
}

// Every kernel learns which of its outputs are written (the others stay null) and settles its
// implementation for that.
Status CudaExecutor::Impl::finalize_kernels() {
  for (auto& st : ex.steps_) {
    if (st.alias || !st.kernel) continue;
    const size_t n = st.outputs.size();
    std::unique_ptr<bool[]> written(new bool[n]);
    for (size_t i = 0; i < n; ++i)
      written[i] =
          st.outputs[i] >= 0 && ex.values_[static_cast<size_t>(st.outputs[i])].storage != Storage::kNone;
    QYOLO_RETURN_IF_ERROR(
        st.kernel->finalize(pctx, std::span<const bool>(written.get(), n)).with_context(st.label));
  }
  return Status::ok();
}

void CudaExecutor::Impl::drop_steps(const std::vector<bool>& drop) {
  std::vector<Step> kept;
  for (size_t s = 0; s < ex.steps_.size(); ++s)
    if (!drop[s]) kept.push_back(std::move(ex.steps_[s]));
  ex.steps_ = std::move(kept);
}

void CudaExecutor::Impl::fuse_image_input() {
  if (!ex.options_.stem_reads_bytes) return;
  const auto readers = step_readers();
  std::vector<bool> drop(ex.steps_.size(), false);
  for (size_t si = 0; si < ex.steps_.size(); ++si) {
    Step& img = ex.steps_[si];
    if (!img.node || img.node->op_type != kImageToFloatOp || img.inputs.size() != 1 ||
        img.outputs.size() != 1)
      continue;
    const int f = img.outputs[0];
    const auto& r = readers[static_cast<size_t>(f)];
    if (r.size() != 1 || ex.values_[static_cast<size_t>(f)].storage != Storage::kArena) continue;
    Step& reader = ex.steps_[static_cast<size_t>(r[0])];
    if (reader.inputs.empty() || reader.inputs[0] != f ||
        std::count(reader.inputs.begin(), reader.inputs.end(), f) != 1 ||
        !reader.kernel->read_image_bytes(pctx))
      continue;
    reader.inputs[0] = img.inputs[0];
    reader.label += " (uint8 image)";
    ex.values_[static_cast<size_t>(f)].storage = Storage::kNone;
    drop[si] = true;
  }
  drop_steps(drop);
}

// Float conv outputs nobody reads any more (requantised or placed into a concat instead) are not
// written (their producer gets nullptr).
void CudaExecutor::Impl::drop_unread_outputs() {
  std::vector<int> readers(ex.values_.size(), 0);
  for (const auto& st : ex.steps_)
    for (int v : st.inputs)
      if (v >= 0) ++readers[static_cast<size_t>(v)];
  for (auto& val : ex.values_)
    if (val.storage == Storage::kAlias) ++readers[static_cast<size_t>(val.alias_of)];
  for (const auto& st : ex.steps_) {
    if (st.outputs.size() < 2 || !(st.node && st.node->op_type == "Conv")) continue;
    Value& f = ex.values_[static_cast<size_t>(st.outputs[0])];
    if (f.storage == Storage::kArena && readers[static_cast<size_t>(st.outputs[0])] == 0)
      f.storage = Storage::kNone;
  }
}

// The value whose storage `v` views (through reshape views and concat slices).
int CudaExecutor::Impl::root_of(int v) const {
  while (ex.values_[static_cast<size_t>(v)].storage == Storage::kAlias)
    v = ex.values_[static_cast<size_t>(v)].alias_of;
  return v;
}

// The step writing each value (-1: none).
std::vector<int> CudaExecutor::Impl::step_producers() const {
  std::vector<int> producer(ex.values_.size(), -1);
  for (size_t s = 0; s < ex.steps_.size(); ++s)
    for (int v : ex.steps_[s].outputs) producer[static_cast<size_t>(v)] = static_cast<int>(s);
  return producer;
}

// The non-alias steps reading each value, directly or through reshape views of it.
std::vector<std::vector<int>> CudaExecutor::Impl::step_readers() const {
  std::vector<std::vector<int>> r(ex.values_.size());
  for (size_t s = 0; s < ex.steps_.size(); ++s) {
    if (ex.steps_[s].alias) continue;
    for (int v : ex.steps_[s].inputs)
      for (int u = v; u >= 0;) {
        r[static_cast<size_t>(u)].push_back(static_cast<int>(s));
        const Value& val = ex.values_[static_cast<size_t>(u)];
        u = val.storage == Storage::kAlias ? val.alias_of : -1;
      }
  }
  return r;
}

// Turns `v` into a slice of `base`, `offset` bytes in (the producer already writes it pitched).
void CudaExecutor::Impl::make_slice(int v, int base, size_t offset) {
  Value& val = ex.values_[static_cast<size_t>(v)];
  val.storage = Storage::kAlias;
  val.alias_of = base;
  val.view_offset = offset;
  ex.slices_.push_back(v);
}

// The detect head: an INT8 head conv whose output only the YOLO decode reads applies the decode
// in its epilogue and writes the decode's output (one pass instead of a write + read of the raw
// head tensor, and one launch less).
void CudaExecutor::Impl::fuse_yolo_decodes() {
  const std::vector<int> producer = step_producers();
  const auto readers = step_readers();
  std::vector<bool> drop(ex.steps_.size(), false);
  for (size_t di = 0; di < ex.steps_.size(); ++di) {
    Step& dec = ex.steps_[di];
    auto params = dec.kernel->yolo_decode_params();
    if (!params || dec.inputs.size() != 3 || dec.outputs.size() != 1) continue;
    const int x = dec.inputs[0];
    const int ps = x >= 0 ? producer[static_cast<size_t>(x)] : -1;
    if (ps < 0 || !ex.steps_[static_cast<size_t>(ps)].int8 ||
        ex.steps_[static_cast<size_t>(ps)].outputs.size() != 1 ||
        ex.values_[static_cast<size_t>(x)].storage != Storage::kArena ||
        readers[static_cast<size_t>(x)].size() != 1)
      continue;
    const Value& grid = ex.values_[static_cast<size_t>(dec.inputs[1])];
    const Value& anchor = ex.values_[static_cast<size_t>(dec.inputs[2])];
    if (grid.storage != Storage::kConstant || anchor.storage != Storage::kConstant) continue;
    params->grid = ex.constants_[static_cast<size_t>(grid.constant)].get();
    params->anchor = ex.constants_[static_cast<size_t>(anchor.constant)].get();
    Step& conv = ex.steps_[static_cast<size_t>(ps)];
    if (!conv.kernel->fuse_yolo_decode(*params)) continue;
    conv.outputs = dec.outputs;
    conv.label += " +decode";
    ex.values_[static_cast<size_t>(x)].storage = Storage::kNone;
    drop[di] = true;
  }
  drop_steps(drop);
}

// Concat in place (TensorRT's concat elision). Three patterns:
//  (a) INT8: a channel Concat read only by a quantize step (the next INT8 conv's input), whose
//      inputs all come from INT8 convs and are read by nothing else. Quantising a concat is
//      quantising each part with the same scale, so each producer requantises its output into
//      its channel slice of the int8 buffer: the concat and quantize passes go, bit for bit.
//  (b) a Concat whose inputs are all outputs (or reshape views of outputs) that only it reads,
//      of kernels that can write with a row pitch (the YOLO decode into the detect output).
//  (c) a channel Concat of NHWC values: each input that only the concat reads, from a kernel
//      that can write with a pixel pitch (cuDNN convs re-planned with a strided output, INT8
//      convs, resize), is written into its channel slice; the concat copies only the rest
//      (inputs read elsewhere too, the SPPF pools and the neck's skip connections) and goes
//      when nothing is left.
Status CudaExecutor::Impl::place_concats() {
  if (!ex.options_.concat_in_place) return Status::ok();
  const std::vector<int> producer = step_producers();
  const auto readers = step_readers();
  auto only_reader = [&](int v, int step) {
    const auto& r = readers[static_cast<size_t>(v)];
    return r.size() == 1 && r[0] == step;
  };
  std::vector<bool> drop(ex.steps_.size(), false);
  for (size_t ci = 0; ci < ex.steps_.size(); ++ci) {
    Step& cat = ex.steps_[ci];
    if (!cat.node || cat.node->op_type != "Concat" || cat.outputs.size() != 1) continue;
    const int vc = cat.outputs[0];
    const TensorInfo ci_info = ex.values_[static_cast<size_t>(vc)].info;  // copy: add_value may reallocate
    std::vector<Shape> shapes;
    bool distinct_inputs = true;
    std::set<int> seen;
    for (int v : cat.inputs) {
      if (v < 0) {
        distinct_inputs = false;
        break;
      }
      distinct_inputs = distinct_inputs && seen.insert(v).second;
      shapes.push_back(ex.values_[static_cast<size_t>(v)].info.shape);
    }
    if (!distinct_inputs) continue;
    auto attrs = ConcatAttrs::parse(*cat.node, shapes);
    if (!attrs.is_ok()) continue;
    const int64_t axis = attrs->axis;

    // (a) INT8 channel concat feeding one quantize step.
    const auto& rd = readers[static_cast<size_t>(vc)];
    if (ci_info.layout == Layout::kNHWC && axis == 1 &&
        ex.values_[static_cast<size_t>(vc)].storage == Storage::kArena && rd.size() == 1 &&
        ex.steps_[static_cast<size_t>(rd[0])].quantize_scale > 0.f) {
      const Step& q = ex.steps_[static_cast<size_t>(rd[0])];
      const int vq = q.outputs[0];
      const TensorInfo qi = ex.values_[static_cast<size_t>(vq)].info;
      bool ok = qi.s2d == 1 && qi.shape == ci_info.shape;
      for (int v : cat.inputs) {
        const int ps = producer[static_cast<size_t>(v)];
        ok = ok && ps >= 0 && ex.steps_[static_cast<size_t>(ps)].int8 &&
             ex.steps_[static_cast<size_t>(ps)].outputs.size() == 1 &&
             ex.values_[static_cast<size_t>(v)].storage == Storage::kArena &&
             only_reader(v, static_cast<int>(ci)) &&
             ex.values_[static_cast<size_t>(v)].info.shape[1] % 16 == 0;
      }
      if (ok) {
        int64_t coff = 0;
        for (int v : cat.inputs) {
          QYOLO_RETURN_IF_ERROR(requantise_into_slice(producer[static_cast<size_t>(v)], v, vq, coff,
                                                      q.quantize_scale, cat.label));
          coff += ex.values_[static_cast<size_t>(v)].info.shape[1];
        }
        drop[ci] = true;
        drop[static_cast<size_t>(rd[0])] = true;
        continue;
      }
      // (e) SPPF: a conv and the max-pools chained from it, all on int8 in the concat's buffer.
      //     Why it did not apply goes into the summary (a concat with pool inputs only).
      std::string pools_note;
      bool pool_input = false;
      for (int v : cat.inputs) {
        const int ps = producer[static_cast<size_t>(v)];
        pool_input = pool_input || (ps >= 0 && ex.steps_[static_cast<size_t>(ps)].node &&
                                    ex.steps_[static_cast<size_t>(ps)].node->op_type == "MaxPool");
      }
      if (ex.options_.int8_pools && pool_input && qi.s2d == 1 && qi.shape == ci_info.shape) {
        QYOLO_ASSIGN_OR_RETURN(pools_note, int8_pool_chain(ci, rd[0], producer, readers));
        if (pools_note.empty()) {
          drop[ci] = true;
          drop[static_cast<size_t>(rd[0])] = true;
          continue;
        }
      }
      // (d) the same concat with other inputs too (the resized or pooled neck values, or convs
      //     read elsewhere as well): INT8 producers read only by it requantise into their slices
      //     as in (a), the rest are quantised into theirs by one quantize-concat step in place of
      //     the quantize pass, and the float concat goes. Same int8 bytes, without the float copy.
      if (qi.s2d == 1 && qi.shape == ci_info.shape) {
        QYOLO_ASSIGN_OR_RETURN(bool done, quantize_concat(ci, rd[0], producer, only_reader));
        if (done) {
          if (!pools_note.empty()) ex.steps_[static_cast<size_t>(rd[0])].label += " [no int8 pools: " + pools_note + "]";
          drop[ci] = true;
          continue;
        }
      }
    }

    // (c) NHWC channel concat, input by input.
    if (ci_info.layout == Layout::kNHWC && axis == 1 &&
        ex.values_[static_cast<size_t>(vc)].storage == Storage::kArena) {
      const int64_t pitch = ci_info.shape[1];
      int64_t coff = 0;
      size_t placed = 0;
      for (size_t k = 0; k < cat.inputs.size(); ++k) {
        const int v = cat.inputs[k];
        const Value& in = ex.values_[static_cast<size_t>(v)];
        const int ps = producer[static_cast<size_t>(v)];
        const int64_t width = in.info.shape[1];
        const bool ok = ps >= 0 && in.storage == Storage::kArena && in.info.layout == Layout::kNHWC &&
                        in.info.dtype == ci_info.dtype && in.info.shape.size() == 4 &&
                        ex.steps_[static_cast<size_t>(ps)].outputs.size() == 1 &&
                        only_reader(v, static_cast<int>(ci)) &&
                        coff * static_cast<int64_t>(dtype_size(in.info.dtype)) % 16 == 0 &&
                        ex.steps_[static_cast<size_t>(ps)].kernel->set_output_pitch(pctx, 0, pitch);
        if (ok) {
          make_slice(v, vc, static_cast<size_t>(coff) * dtype_size(in.info.dtype));
          ex.steps_[static_cast<size_t>(ps)].label += " (into concat)";
          cat.inputs[k] = -1;  // the concat kernel skips inputs already in place
          ++placed;
        }
        coff += width;
      }
      if (placed == cat.inputs.size())
        drop[ci] = true;
      else if (placed > 0)
        cat.label +=
            " (" + std::to_string(placed) + " of " + std::to_string(cat.inputs.size()) + " inputs in place)";
      continue;
    }

    // (b) producers that write with a row pitch, into a plain concat output whose rows are its dim 0.
    const Value& out = ex.values_[static_cast<size_t>(vc)];
    if (out.info.layout != Layout::kPlain ||
        !(out.storage == Storage::kArena || out.storage == Storage::kOutput))
      continue;
    int64_t outer = 1, pitch = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= out.info.shape[static_cast<size_t>(d)];
    for (size_t d = static_cast<size_t>(axis); d < out.info.shape.size(); ++d) pitch *= out.info.shape[d];
    if (out.info.shape.empty() || outer != out.info.shape[0]) continue;
    std::vector<int> roots;
    bool ok = true;
    for (int v : cat.inputs) {
      int u = v;
      while (ok && ex.values_[static_cast<size_t>(u)].storage == Storage::kAlias) {
        ok = ex.values_[static_cast<size_t>(u)].info.layout == Layout::kPlain;
        u = ex.values_[static_cast<size_t>(u)].alias_of;
      }
      const Value& root = ex.values_[static_cast<size_t>(u)];
      const int ps = producer[static_cast<size_t>(u)];
      ok = ok && root.storage == Storage::kArena && root.info.layout == Layout::kPlain &&
           root.info.dtype == out.info.dtype && ps >= 0 &&
           ex.steps_[static_cast<size_t>(ps)].outputs.size() == 1 && only_reader(u, static_cast<int>(ci)) &&
           !root.info.shape.empty() && root.info.shape[0] == outer;
      roots.push_back(u);
    }
    if (!ok) continue;
    // Every producer must accept the pitch before anything changes.
    for (int u : roots)
      ok = ok && ex.steps_[static_cast<size_t>(producer[static_cast<size_t>(u)])].kernel->set_output_pitch(
                     pctx, 0, pitch);
    if (!ok) {
      for (int u : roots)  // restore the ones that accepted
        ex.steps_[static_cast<size_t>(producer[static_cast<size_t>(u)])].kernel->set_output_pitch(
            pctx, 0, ex.values_[static_cast<size_t>(u)].info.numel() / outer);
      continue;
    }
    size_t off = 0;
    for (int u : roots) {
      make_slice(u, vc, off);
      ex.steps_[static_cast<size_t>(producer[static_cast<size_t>(u)])].label += " (into concat)";
      off += ex.values_[static_cast<size_t>(u)].info.nbytes() / static_cast<size_t>(outer);
    }
    drop[ci] = true;
  }
  drop_steps(drop);
  return Status::ok();
}

// Concat in place on the INT8 path: the INT8 conv step `ps` writing `v` also writes it requantised
// with `scale` into channels [coff, coff + C) of the int8 concat buffer `vq`.
Status CudaExecutor::Impl::requantise_into_slice(int ps, int v, int vq, int64_t coff, float scale,
                                                 const std::string& concat_label) {
  Step& prod = ex.steps_[static_cast<size_t>(ps)];
  TensorInfo si = ex.values_[static_cast<size_t>(v)].info;
  si.dtype = DataType::kInt8;
  const int64_t pitch = ex.values_[static_cast<size_t>(vq)].info.shape[1];
  if (!prod.kernel->fuse_quantized_output(scale) || !prod.kernel->set_output_pitch(pctx, 1, pitch))
    return internal_error(prod.label + ": cannot requantise into the concat '" + concat_label + "'");
  const int slice =
      add_value(ex.values_[static_cast<size_t>(v)].name + "#int8_in_concat", si, Storage::kArena);
  make_slice(slice, vq, static_cast<size_t>(coff));
  prod.outputs.push_back(slice);
  prod.label += " +quantize into concat";
  return Status::ok();
}

Result<std::string> CudaExecutor::Impl::int8_pool_chain(size_t ci, int qs, const std::vector<int>& producer,
                                                  const std::vector<std::vector<int>>& readers) {
  const Step& cat = ex.steps_[ci];
  const int vq = ex.steps_[static_cast<size_t>(qs)].outputs[0];
  const float scale = ex.steps_[static_cast<size_t>(qs)].quantize_scale;
  const int64_t pitch = ex.values_[static_cast<size_t>(vq)].info.shape[1];
  std::map<int, int64_t> offset_of;  // concat input -> its channel offset
  int64_t coff = 0;
  for (int v : cat.inputs) {
    const TensorInfo& in = ex.values_[static_cast<size_t>(v)].info;
    if (ex.values_[static_cast<size_t>(v)].storage != Storage::kArena || in.layout != Layout::kNHWC ||
        in.shape.size() != 4 || in.shape[1] % 16 != 0 || coff % 16 != 0 || !offset_of.emplace(v, coff).second)
      return "input '" + ex.values_[static_cast<size_t>(v)].name + "' is not an NHWC arena value in 16s of channels";
    coff += in.shape[1];
  }
  int root = -1;
  std::vector<int> pools;  // steps, in step order (each reads an input of the concat written earlier)
  std::set<int> chain = {static_cast<int>(ci)};
  for (int v : cat.inputs) {
    const int ps = producer[static_cast<size_t>(v)];
    if (ps < 0) return "input '" + ex.values_[static_cast<size_t>(v)].name + "' has no producer step";
    const Step& p = ex.steps_[static_cast<size_t>(ps)];
    if (p.node && p.node->op_type == "MaxPool" && p.inputs.size() == 1 && p.outputs.size() == 1 &&
        offset_of.count(p.inputs[0])) {
      pools.push_back(ps);
      chain.insert(ps);
    } else if (p.int8 && p.outputs.size() == 1 && root < 0) {
      root = v;
    } else {
      return "input '" + ex.values_[static_cast<size_t>(v)].name + "' is neither the INT8 conv nor a pool of the chain";
    }
  }
  if (root < 0 || pools.empty()) return std::string("no INT8 conv with pools chained from it");
  for (int v : cat.inputs)  // nothing outside the chain reads its values
    for (int r : readers[static_cast<size_t>(v)])
      if (!chain.count(r))
        return "'" + ex.values_[static_cast<size_t>(v)].name + "' is read outside the chain (" +
               ex.steps_[static_cast<size_t>(r)].label + ")";
  std::sort(pools.begin(), pools.end());
  // The int8 pool kernels first: nothing changes if one refuses.
  std::vector<std::unique_ptr<cuda::CudaKernel>> kernels;
  for (int ps : pools) {
    const Step& p = ex.steps_[static_cast<size_t>(ps)];
    TensorInfo xi = ex.values_[static_cast<size_t>(p.inputs[0])].info, yi = ex.values_[static_cast<size_t>(p.outputs[0])].info;
    xi.dtype = yi.dtype = DataType::kInt8;
    xi.layout = Layout::kStrided;  // the source's slice of the concat buffer
    xi.view = {xi.shape[2] * xi.shape[3] * pitch, 1, xi.shape[3] * pitch, pitch};
    yi.layout = Layout::kNHWC;
    QYOLO_ASSIGN_OR_RETURN(auto k, cuda::make_cuda_max_pool(*p.node));
    const TensorInfo* ins[] = {&xi};
    if (Status st = k->prepare(pctx, *p.node, ins, std::span<const TensorInfo>(&yi, 1)); !st.is_ok())
      return st.to_string();
    if (!k->set_output_pitch(pctx, 0, pitch)) return p.label + ": no int8 output pitch " + std::to_string(pitch);
    kernels.push_back(std::move(k));
  }
  std::map<int, int> slice_of;  // concat input -> its int8 slice value
  const int root_step = producer[static_cast<size_t>(root)];
  QYOLO_RETURN_IF_ERROR(requantise_into_slice(root_step, root, vq, offset_of[root], scale, cat.label));
  slice_of[root] = ex.steps_[static_cast<size_t>(root_step)].outputs.back();
  for (size_t k = 0; k < pools.size(); ++k) {
    Step& p = ex.steps_[static_cast<size_t>(pools[k])];
    const int v = p.outputs[0];
    TensorInfo si = ex.values_[static_cast<size_t>(v)].info;
    si.dtype = DataType::kInt8;
    const int slice = add_value(ex.values_[static_cast<size_t>(v)].name + "#int8_in_concat", si, Storage::kArena);
    make_slice(slice, vq, static_cast<size_t>(offset_of[v]));
    slice_of[v] = slice;
    p.inputs[0] = slice_of.at(p.inputs[0]);
    p.outputs[0] = slice;
    p.kernel = std::move(kernels[k]);
    p.label += " (int8, into concat)";
    ex.values_[static_cast<size_t>(v)].storage = Storage::kNone;  // the half value is gone
  }
  return std::string();
}

// Pattern (d) of place_concats for concat step `ci` and the quantize step `qs` reading it: false
// (nothing changed) when some input fits neither way.
Result<bool> CudaExecutor::Impl::quantize_concat(size_t ci, int qs, const std::vector<int>& producer,
                                                 const std::function<bool(int, int)>& only_reader) {
  Step& cat = ex.steps_[ci];
  const int vq = ex.steps_[static_cast<size_t>(qs)].outputs[0];
  const float scale = ex.steps_[static_cast<size_t>(qs)].quantize_scale;
  std::vector<int> own, rest;  // requantised by their INT8 producer / by the new step
  std::vector<int64_t> own_off, rest_off;
  int64_t coff = 0;
  for (int v : cat.inputs) {
    const Value& in = ex.values_[static_cast<size_t>(v)];
    const int ps = producer[static_cast<size_t>(v)];
    const int64_t width = in.info.shape.size() == 4 ? in.info.shape[1] : 0;
    if (ps >= 0 && ex.steps_[static_cast<size_t>(ps)].int8 &&
        ex.steps_[static_cast<size_t>(ps)].outputs.size() == 1 && in.storage == Storage::kArena &&
        only_reader(v, static_cast<int>(ci)) && width % 16 == 0 && coff % 16 == 0) {
      own.push_back(v);
      own_off.push_back(coff);
    } else if (in.info.layout == Layout::kNHWC && width % 8 == 0 && width > 0 && coff % 8 == 0 &&
               is_float(in.info.dtype) &&
               (rest.empty() || ex.values_[static_cast<size_t>(rest[0])].info.dtype == in.info.dtype)) {
      rest.push_back(v);
      rest_off.push_back(coff);
    } else {
      return false;
    }
    coff += width;
  }
  if (rest.empty() || rest.size() > 8) return false;
  Step step;
  step.label = "quantize-concat '" + ex.values_[static_cast<size_t>(cat.outputs[0])].name + "' (" +
               std::to_string(rest.size()) + " of " + std::to_string(cat.inputs.size()) + " inputs)";
  step.kernel = cuda::make_cuda_quantize_concat(scale, rest_off);
  step.inputs = rest;
  step.outputs = {vq};
  std::vector<const TensorInfo*> ins;
  for (int v : rest) ins.push_back(&ex.values_[static_cast<size_t>(v)].info);
  TensorInfo outs[] = {ex.values_[static_cast<size_t>(vq)].info};
  Node dummy;
  dummy.name = step.label;
  dummy.op_type = "qyolo.QuantizeConcat";
  QYOLO_RETURN_IF_ERROR(step.kernel->prepare(pctx, dummy, ins, outs).with_context(step.label));
  for (size_t k = 0; k < own.size(); ++k)
    QYOLO_RETURN_IF_ERROR(requantise_into_slice(producer[static_cast<size_t>(own[k])], own[k], vq, own_off[k],
                                                scale, cat.label));
  // The new step takes the quantize pass's place: after every producer, before every reader.
  ex.steps_[static_cast<size_t>(qs)] = std::move(step);
  return true;
}

}  // namespace qyolo
