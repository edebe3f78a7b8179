// CudaExecutor build stage: which convs run INT8 or FP16, and on which kernel (timed at build).
#include <algorithm>
#include <cmath>
#include <sstream>

#include "backends/cuda/executor_impl.h"
#include "ir/ops/conv2d.h"
#include "ir/ops/image_to_float.h"

namespace qyolo {

using cuda::Layout;
using cuda::TensorInfo;
using namespace cuda_exec;

// Whether this Conv runs on the INT8 tensor-core kernel: INT8 build, a calibrated input scale
// (quantize_graph), sm_80+, group 1, 2-D, constant weights. Other convs run in fp16.
bool CudaExecutor::Impl::int8_conv(const Node& node) const {
  if (fp16_instead.count(&node)) return false;
  return int8_eligible(node);
}

bool CudaExecutor::Impl::int8_residual(const Node& node) const {
  return ex.options_.int8_fp16 && ex.options_.int8_residual && node.has_input(3) &&
         node.has_attr("qyolo_residual_scale");
}

bool CudaExecutor::Impl::int8_eligible(const Node& node) const {
  if (ex.options_.precision != CudaPrecision::kInt8 || node.op_type != "Conv") return false;
  if (!node.has_attr("qyolo_input_scale") || pctx.prop->major < 8) return false;
  auto group = node.attr_int("group", 1);
  if (!group || *group != 1 || node.inputs.size() < 2) return false;
  auto x = ex.graph_.values.find(node.inputs[0]);
  auto w = ex.graph_.values.find(node.inputs[1]);
  if (x == ex.graph_.values.end() || w == ex.graph_.values.end() || x->second.shape.size() != 4 ||
      !w->second.value.has_value() || w->second.shape.size() != 4)
    return false;
  return !fp16_image_stem(node);
}

// --int8 --fp16: the conv on the image stays on the direct FP16 stem kernel (int8_fp16_stem).
bool CudaExecutor::Impl::fp16_image_stem(const Node& node) const {
  if (!ex.options_.int8_fp16 || !ex.options_.int8_fp16_stem || node.outputs.empty() || int8_image_stem(node))
    return false;
  auto y = ex.graph_.values.find(node.outputs[0]);
  if (y == ex.graph_.values.end()) return false;
  return direct_stem(node, TensorInfo{DataType::kFloat16, y->second.shape, Layout::kNHWC, nullptr, {}});
}

// --int8 --fp16 with the uint8 image input (int8_image_stem): the conv whose input is the float
// image of the bytes, read by nothing else, on the direct stem's geometry, feeding convs. Decided
// from the graph alone (it is the same before and after the image step is lowered). It is an INT8
// conv of the plan, fixed (no timing: its FP16 alternative is the FP16 stem on the same bytes).
bool CudaExecutor::Impl::int8_image_stem(const Node& node) const {
  const CudaBuildOptions& o = ex.options_;
  if (o.precision != CudaPrecision::kInt8 || !o.int8_fp16 || !o.int8_image_stem || !o.stem_reads_bytes ||
      !o.fp16_direct_stem || node.op_type != "Conv" || node.inputs.size() < 2 || node.outputs.empty() ||
      pctx.prop->major < 8 || !reaches_conv.count(node.outputs[0]) || !node.has_attr("qyolo_input_scale"))
    return false;
  const Node* producer = nullptr;
  int readers = 0;
  for (const auto& n : ex.graph_.graph.nodes) {
    if (std::find(n.outputs.begin(), n.outputs.end(), node.inputs[0]) != n.outputs.end()) producer = &n;
    readers += static_cast<int>(std::count(n.inputs.begin(), n.inputs.end(), node.inputs[0]));
  }
  if (producer == nullptr || producer->op_type != kImageToFloatOp || readers != 1) return false;
  auto x = ex.graph_.values.find(node.inputs[0]);
  auto w = ex.graph_.values.find(node.inputs[1]);
  if (x == ex.graph_.values.end() || w == ex.graph_.values.end() || !w->second.value ||
      x->second.dtype != DataType::kFloat32 || x->second.shape.size() != 4 || w->second.shape.size() != 4 ||
      w->second.shape[0] % 16 != 0)
    return false;
  auto a = ConvAttrs::parse(node, x->second.shape, w->second.shape);
  return a.is_ok() && cuda::conv2d_stem_supports(x->second.shape, w->second.shape, *a);
}

// The direct fp16 stem kernel: a conv reading a plain fp32 value of <= 4 channels (the image).
bool CudaExecutor::Impl::direct_stem(const Node& node, const TensorInfo& out) const {
  if (!ex.options_.fp16_direct_stem || node.op_type != "Conv" || pctx.prop->major < 8 ||
      out.dtype != DataType::kFloat16 || out.layout != Layout::kNHWC || node.inputs.size() < 2)
    return false;
  auto xit = ids.find(node.inputs[0]);
  if (xit == ids.end()) return false;
  const TensorInfo& x = ex.values_[static_cast<size_t>(xit->second)].info;
  auto w = ex.graph_.values.find(node.inputs[1]);
  if (x.dtype != DataType::kFloat32 || x.layout != Layout::kPlain || x.shape.size() != 4 ||
      w == ex.graph_.values.end() || !w->second.value || w->second.shape.size() != 4)
    return false;
  auto a = ConvAttrs::parse(node, x.shape, w->second.shape);
  return a.is_ok() && cuda::conv2d_stem_supports(x.shape, w->second.shape, *a);
}

// --int8 --fp16: an INT8 conv feeding only the fp32 tail (a detect head) whose half output an
// FP16 conv would pad (computed_channels: 255 -> 256) writes half padded the same way, so that
// cuDNN's INT8 engines can run it; the decode is then its own pass. (Unpadded, it writes fp32
// with the decode fused into our kernel's epilogue: 2.5x slower on yolov5s b32, 0.63 against
// 0.25 ms.)
bool CudaExecutor::Impl::int8_head_padded(const Node& node) const {
  if (!ex.options_.int8_fp16 || !ex.options_.fp32_tail || node.outputs.empty() ||
      reaches_conv.count(node.outputs[0]))
    return false;
  auto y = ex.graph_.values.find(node.outputs[0]);
  if (y == ex.graph_.values.end() || y->second.shape.size() != 4) return false;
  const TensorInfo half_out{DataType::kFloat16, y->second.shape, Layout::kNHWC, nullptr, {}};
  return computed_channels(node, half_out) != y->second.shape[1];
}

// What an INT8 conv writes: fp32 from its fp32 epilogue when only the fp32 tail (the detect
// head) reads it, unless it is a padded head; half otherwise.
DataType CudaExecutor::Impl::int8_output_dtype(const Node& node) const {
  const bool tail = ex.options_.fp32_tail && !reaches_conv.count(node.outputs[0]);
  return tail && !int8_head_padded(node) ? DataType::kFloat32 : DataType::kFloat16;
}

// Output channels an fp16 cuDNN conv computes: K rounded up to 8 when fp16_pad_channels applies
// (fp16 NHWC output, no residual), else K.
int64_t CudaExecutor::Impl::computed_channels(const Node& node, const TensorInfo& out) const {
  if (out.shape.size() != 4) return out.shape.size() > 1 ? out.shape[1] : 0;
  const int64_t k = out.shape[1];
  const bool residual = node.inputs.size() > 3 && !node.inputs[3].empty();
  if (!ex.options_.fp16_pad_channels || node.op_type != "Conv" || out.dtype != DataType::kFloat16 ||
      out.layout != Layout::kNHWC || residual || k % 8 == 0)
    return k;
  return (k + 7) / 8 * 8;
}

bool CudaExecutor::Impl::fp16_stem_s2d(const Node& node, const TensorInfo& out) const {
  if (!ex.options_.fp16_space_to_depth || out.dtype != DataType::kFloat16 || out.layout != Layout::kNHWC)
    return false;
  auto group = node.attr_int("group", 1);
  auto w = ex.graph_.values.find(node.inputs.size() > 1 ? node.inputs[1] : std::string());
  if (!group || *group != 1 || w == ex.graph_.values.end() || !w->second.value || w->second.shape.size() != 4)
    return false;
  return space_to_depth_factor(node) > 1;
}

// Space-to-depth factor for an INT8 conv's input: a stride-s conv whose kernel and leading pads
// are multiples of s, on so few channels that s*s*C still fits the 16-channel granule (the
// 6x6/2 stem on RGB: 16 instead of 3 -> 16 padded channels, and a quarter of the MACs).
int CudaExecutor::Impl::space_to_depth_factor(const Node& node) const {
  const auto& x = ex.graph_.values.at(node.inputs[0]).shape;
  const auto& w = ex.graph_.values.at(node.inputs[1]).shape;
  auto a = ConvAttrs::parse(node, x, w);
  if (!a) return 1;
  const auto& win = a->window;
  const int64_t s = win.strides[0];
  if (s < 2 || win.strides[1] != s || win.dilations[0] != 1 || win.dilations[1] != 1) return 1;
  if (w[2] % s || w[3] % s || win.pads_begin[0] % s || win.pads_begin[1] % s || x[2] % s || x[3] % s)
    return 1;
  if (x[1] * s * s > 16) return 1;
  return static_cast<int>(s);
}

// kAllFp16 / kAllInt8: every eligible conv that can go FP16 / INT8 does (the engine-level
// comparison); kModelled: the cost model's best assignment.
Status CudaExecutor::Impl::choose_conv_precisions(PrecisionVariant variant) {
  const Graph& g = ex.graph_.graph;
  std::map<std::string, const Node*> producer;
  for (const auto& n : g.nodes)
    for (const auto& o : n.outputs) producer[o] = &n;
  std::vector<const Node*> convs;
  std::vector<ConvTiming> t;
  std::map<const Node*, size_t> index;
  for (const auto& n : g.nodes) {
    if (!int8_eligible(n)) continue;
    ConvTiming ct;
    if (int8_image_stem(n))
      ct.t8 = 0.f;  // fixed INT8 (t16 < 0), no quantize pass
    else
      QYOLO_RETURN_IF_ERROR(measure_conv(n, ct).with_context(n.describe()));
    index[&n] = convs.size();
    convs.push_back(&n);
    t.push_back(ct);
  }
  const size_t n = convs.size();
  // One side not measurable: INT8 as asked, fixed.
  std::vector<bool> fixed(n);
  for (size_t i = 0; i < n; ++i) fixed[i] = t[i].t8 <= 0.f || t[i].t16 <= 0.f;
  auto int8_conv_output = [&](const std::vector<bool>& a, const std::string& v) {
    auto p = producer.find(v);
    if (p == producer.end()) return false;
    auto it = index.find(p->second);
    const Shape& sh = ex.graph_.values.at(v).shape;
    return it != index.end() && a[it->second] && sh.size() == 4 && sh[1] % 16 == 0;
  };
  // The input arrives as int8 from INT8 producers' requantising epilogues (directly, or as the
  // concat they write their slices of).
  auto requantised_input = [&](const std::vector<bool>& a, const Node& c) {
    if (space_to_depth_factor(c) != 1) return false;
    auto p = producer.find(c.inputs[0]);
    if (p == producer.end()) return false;
    // The FP16 image stem writes the int8 copy itself when its channels fill the 16-granule.
    if (p->second->op_type == "Conv" && fp16_image_stem(*p->second))
      return ex.graph_.values.at(c.inputs[0]).shape[1] % 16 == 0;
    if (p->second->op_type == "Conv") return int8_conv_output(a, c.inputs[0]);
    if (p->second->op_type != "Concat") return false;
    for (const auto& in : p->second->inputs)
      if (!int8_conv_output(a, in)) return false;
    return true;
  };
  auto cost = [&](const std::vector<bool>& a) {
    double total = 0.0;
    std::map<std::string, float> passes;  // value -> its quantize pass (one per value)
    for (size_t i = 0; i < n; ++i) {
      if (!a[i]) {
        total += t[i].t16 + t[i].t16_extra;
        continue;
      }
      total += std::max(t[i].t8, 0.f);
      if (!requantised_input(a, *convs[i])) {
        float& q = passes[convs[i]->inputs[0]];
        q = std::max(q, t[i].quant);
      }
      // An int8 residual not requantised by an INT8 producer needs its own quantize pass (costed
      // like this conv's input pass: in a C3 bottleneck both are c_ channels at the same size).
      if (int8_residual(*convs[i]) && !int8_conv_output(a, convs[i]->inputs[3])) {
        float& q = passes[convs[i]->inputs[3]];
        q = std::max(q, t[i].quant);
      }
    }
    for (const auto& [v, q] : passes) total += q;
    return total;
  };
  auto improve = [&](std::vector<bool> a) {
    double best = cost(a);
    for (int pass = 0; pass < 32; ++pass) {
      bool changed = false;
      for (size_t i = 0; i < n; ++i) {
        if (fixed[i]) continue;
        a[i] = !a[i];
        const double c = cost(a);
        if (c < best - 1e-7) {
          best = c;
          changed = true;
        } else {
          a[i] = !a[i];
        }
      }
      if (!changed) break;
    }
    return std::make_pair(best, a);
  };
  std::vector<bool> faster(n), all(n, true);
  for (size_t i = 0; i < n; ++i) faster[i] = fixed[i] || t[i].t8 <= t[i].t16 + t[i].t16_extra;
  std::pair<double, std::vector<bool>> best = improve(fixed);  // from "all FP16"
  for (const auto& start : {faster, all}) {
    auto r = improve(start);
    if (r.first < best.first) best = std::move(r);
  }
  std::vector<bool> chosen = variant == PrecisionVariant::kAllFp16   ? fixed
                             : variant == PrecisionVariant::kAllInt8 ? all
                                                                     : best.second;
  modelled_choice_ms = best.first;
  modelled_fp16_ms = cost(fixed);
  for (size_t i = 0; i < n; ++i)
    if (!chosen[i] && !fixed[i]) fp16_instead.insert(convs[i]);
  return Status::ok();
}

Status CudaExecutor::Impl::lower_plan_precisions(const PrecisionPlan& plan) {
  for (const auto& n : ex.graph_.graph.nodes) {
    if (n.op_type != "Conv") continue;
    const bool int8 = plan.precision_of(n.name) == NodePrecision::kInt8;
    if (int8 && ex.options_.precision != CudaPrecision::kInt8)
      return invalid_argument("the precision plan runs " + n.describe() + " in INT8, but this is a " +
                              cuda_precision_name(ex.options_.precision) + " build");
    if (int8 && !int8_eligible(n))
      return invalid_argument("the precision plan runs " + n.describe() +
                              " in INT8, which the CUDA backend cannot here (no input scale, sm < 80, grouped, "
                              "or the --int8 --fp16 image stem)");
    if (!int8 && int8_eligible(n)) fp16_instead.insert(&n);
  }
  return Status::ok();
}

// Times one INT8-eligible conv both ways on scratch (stored as a tactic by problem, in
// nanoseconds, so engine files reproduce the choice). Both kernels are discarded: add_node
// prepares the chosen one again from the cached tactics.
Status CudaExecutor::Impl::measure_conv(const Node& node, ConvTiming& t) {
  const ValueDesc& xd = ex.graph_.values.at(node.inputs[0]);
  const ValueDesc& wd = ex.graph_.values.at(node.inputs[1]);
  QYOLO_ASSIGN_OR_RETURN(ConvAttrs a, ConvAttrs::parse(node, xd.shape, wd.shape));
  const Shape& y = a.out_shape;
  const int s2d = space_to_depth_factor(node);
  std::ostringstream key;
  key << "convtime:" << shape_str(xd.shape) << ':' << shape_str(wd.shape) << ':' << a.window.pads_begin[0]
      << ',' << a.window.pads_begin[1] << ':' << a.window.strides[0] << ':' << a.window.dilations[0] << ':'
      << static_cast<int>(a.activation) << ':' << a.has_bias << a.has_residual
      << (int8_residual(node) ? "i8" : "") << ':' << reaches_conv.count(node.outputs[0]);
  auto& cache = *pctx.tune_cache;
  if (auto it = cache.find(key.str()); it != cache.end() && it->second.size() == 4) {
    t = {it->second[0] * 1e-6f, it->second[1] * 1e-6f, it->second[2] * 1e-6f, it->second[3] * 1e-6f};
    return Status::ok();
  }
  auto host = [&](size_t i) -> TensorInfo {
    const ValueDesc& d = ex.graph_.values.at(node.inputs[i]);
    return TensorInfo{d.dtype, d.shape, Layout::kPlain, d.value ? &*d.value : nullptr, {}};
  };
  const TensorInfo w = host(1);
  const TensorInfo b = node.inputs.size() > 2 && !node.inputs[2].empty() ? host(2) : TensorInfo{};
  const bool has_b = node.inputs.size() > 2 && !node.inputs[2].empty();
  const bool head_padded = int8_head_padded(node);
  const DataType y8_dtype = int8_output_dtype(node);
  // INT8 candidate.
  Shape qs = xd.shape;
  qs[1] = (qs[1] * s2d * s2d + 15) / 16 * 16;
  qs[2] /= s2d;
  qs[3] /= s2d;
  TensorInfo xq{DataType::kInt8, qs, Layout::kNHWC, nullptr, {}};
  xq.s2d = s2d;
  TensorInfo r8{y8_dtype, y, Layout::kNHWC, nullptr, {}};
  if (int8_residual(node)) {  // the residual's int8 copy, channels padded to 16
    r8.dtype = DataType::kInt8;
    r8.shape[1] = (y[1] + 15) / 16 * 16;
  }
  const TensorInfo* in8[] = {&xq, &w, has_b ? &b : nullptr, &r8};
  TensorInfo out8[] = {TensorInfo{y8_dtype, y, Layout::kNHWC, nullptr, {}}};
  if (head_padded) out8[0].shape[1] = computed_channels(node, out8[0]);
  const size_t n_in = a.has_residual ? 4 : 3;
  {
    QYOLO_ASSIGN_OR_RETURN(auto k, cuda::make_cuda_conv2d_int8(node));
    if (k->prepare(pctx, node, std::span<const TensorInfo* const>(in8, n_in), out8).is_ok()) {
      QYOLO_ASSIGN_OR_RETURN(t.t8, time_kernel(*k, {in8, in8 + n_in}, {out8[0]}));
    }
  }
  TensorInfo x16{DataType::kFloat16, xd.shape, Layout::kNHWC, nullptr, {}};
  TensorInfo out16_info{DataType::kFloat16, y, Layout::kNHWC, nullptr, {}};
  const bool stem16 = direct_stem(node, out16_info);
  const bool s2d16 = !stem16 && fp16_stem_s2d(node, out16_info);
  if (stem16)
    x16 = TensorInfo{DataType::kFloat32, xd.shape, Layout::kPlain, nullptr, {}};  // the image itself
  if (s2d16) {  // the FP16 stem reads a space-to-depth copy too
    x16 = xq;
    x16.dtype = DataType::kFloat16;
  }
  TensorInfo r16{DataType::kFloat16, y, Layout::kNHWC, nullptr, {}};
  const TensorInfo* in16[] = {&x16, &w, has_b ? &b : nullptr, &r16};
  TensorInfo out16[] = {TensorInfo{DataType::kFloat16, y, Layout::kNHWC, nullptr, {}}};
  if (!stem16) out16[0].shape[1] = computed_channels(node, out16[0]);
  {
    QYOLO_ASSIGN_OR_RETURN(auto k, stem16 ? cuda::make_cuda_conv2d_stem(node) : cuda::make_cuda_conv2d(node));
    if (k->prepare(pctx, node, std::span<const TensorInfo* const>(in16, n_in), out16).is_ok()) {
      QYOLO_ASSIGN_OR_RETURN(t.t16, time_kernel(*k, {in16, in16 + n_in}, {out16[0]}));
    }
  }
  // The quantize pass, from the input as the graph holds it before this conv: the image as it
  // is, anything else as half NHWC (what --int8 --fp16 keeps between layers).
  TensorInfo src{DataType::kFloat16, xd.shape, Layout::kNHWC, nullptr, {}};
  if (auto it = ids.find(node.inputs[0]); it != ids.end()) {
    const TensorInfo& cur = ex.values_[static_cast<size_t>(it->second)].info;
    if (cur.layout != Layout::kStrided) src = TensorInfo{cur.dtype, cur.shape, cur.layout, nullptr, {}};
  }
  QYOLO_ASSIGN_OR_RETURN(float scale, node.attr_float("qyolo_input_scale"));
  QYOLO_ASSIGN_OR_RETURN(t.quant, time_pass(*cuda::make_cuda_quantize(scale, s2d), src, xq));
  if (s2d16) {
    const TensorInfo image{DataType::kFloat32, xd.shape, Layout::kPlain, nullptr, {}};
    QYOLO_ASSIGN_OR_RETURN(t.t16_extra, time_pass(*cuda::make_cuda_space_to_depth_half(s2d), image, x16));
  }
  auto ns = [](float ms) { return static_cast<int64_t>(std::lround(ms * 1e6f)); };
  cache[key.str()] = {ns(t.t8), ns(t.t16), ns(t.quant), ns(t.t16_extra)};
  return Status::ok();
}

// Time of a one-input pass the executor would insert (quantize, space-to-depth) from `src` to
// `dst`; 0 when the kernel does not take these tensors.
Result<float> CudaExecutor::Impl::time_pass(cuda::CudaKernel& k, const TensorInfo& src,
                                            const TensorInfo& dst) {
  Node dummy;
  dummy.name = "pass (timing)";
  const TensorInfo* ins[] = {&src};
  TensorInfo outs[] = {dst};
  if (!k.prepare(pctx, dummy, ins, outs).is_ok()) return 0.f;
  return time_kernel(k, {&src}, {dst});
}

// Mean time of one enqueue of a prepared kernel on zeroed scratch tensors (constant and omitted
// inputs are passed as null, as the executor does), with its own workspace.
Result<float> CudaExecutor::Impl::time_kernel(cuda::CudaKernel& k, const std::vector<const TensorInfo*>& ins,
                                              const std::vector<TensorInfo>& outs) {
  std::vector<cuda::DeviceBuffer> bufs;
  std::vector<const void*> in_ptrs;
  std::vector<void*> out_ptrs;
  auto scratch = [&](size_t bytes) -> Result<void*> {
    QYOLO_ASSIGN_OR_RETURN(auto b, cuda::DeviceBuffer::allocate(std::max<size_t>(bytes, 1)));
    QYOLO_CUDA_CHECK(cudaMemsetAsync(b.get(), 0, std::max<size_t>(bytes, 1), pctx.stream));
    bufs.push_back(std::move(b));
    return bufs.back().get();
  };
  for (const TensorInfo* t : ins) {
    if (t == nullptr || t->constant != nullptr) {
      in_ptrs.push_back(nullptr);
      continue;
    }
    QYOLO_ASSIGN_OR_RETURN(void* p, scratch(t->nbytes()));
    in_ptrs.push_back(p);
  }
  for (const TensorInfo& t : outs) {
    QYOLO_ASSIGN_OR_RETURN(void* p, scratch(t.nbytes()));
    out_ptrs.push_back(p);
  }
  QYOLO_ASSIGN_OR_RETURN(void* ws, scratch(k.workspace_bytes()));
  cuda::LaunchContext lc{pctx.stream, pctx.cudnn, ws, k.workspace_bytes(), pctx.cublaslt};
  return cuda::time_launches(pctx.stream, 1, 5, [&] { return k.enqueue(lc, in_ptrs, out_ptrs); });
}

}  // namespace qyolo
