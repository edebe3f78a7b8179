#include "backends/cuda/cuda_executor.h"

#include "ir/ops/concat.h"
#include "ir/ops/conv2d.h"

#include <algorithm>
#include <optional>
#include <cstring>
#include <set>
#include <sstream>
#include <unordered_map>

namespace qyolo {

using cuda::Layout;
using cuda::TensorInfo;

namespace {

constexpr size_t kAlign = 256;
size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

bool is_float(DataType t) { return t == DataType::kFloat32 || t == DataType::kFloat16; }

const char* layout_name(Layout l) { return l == Layout::kNHWC ? "nhwc" : l == Layout::kStrided ? "strided" : "plain"; }

// Host bytes of `t` in device dtype `dtype` (float <-> half conversion, int -> float for
// constants feeding arithmetic).
Result<std::vector<uint8_t>> constant_bytes(const Tensor& t, DataType dtype) {
  std::vector<uint8_t> out;
  const size_t n = static_cast<size_t>(t.numel());
  if (t.dtype() == dtype) {
    out.resize(t.nbytes());
    if (!out.empty()) std::memcpy(out.data(), t.raw(), out.size());
    return out;
  }
  if (dtype == DataType::kFloat32) {
    std::vector<float> f = t.to_float_vector();
    out.resize(n * 4);
    if (n) std::memcpy(out.data(), f.data(), n * 4);
    return out;
  }
  if (dtype == DataType::kFloat16) {
    std::vector<float> f = t.to_float_vector();
    out.resize(n * 2);
    for (size_t i = 0; i < n; ++i) {
      uint16_t h = float_to_half(f[i]);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
    return out;
  }
  return unsupported(std::string("constant of type ") + dtype_name(t.dtype()) + " cannot be used as " +
                     dtype_name(dtype) + " on the GPU");
}

}  // namespace

// Build-time state.
struct CudaExecutor::Impl {
  explicit Impl(CudaExecutor& e) : ex(e) {}
  CudaExecutor& ex;
  std::unordered_map<std::string, int> ids;
  std::map<std::tuple<int, DataType, Layout>, int> converted;  // (value, dtype, layout) -> value
  std::map<std::pair<std::string, DataType>, int> uploaded;    // constant in a dtype -> value
  std::map<std::tuple<int, float, int>, int> quantized_values;  // (float value, scale or 0 for half, s2d) -> copy
  std::set<std::string> reaches_conv;
  std::set<const Node*> fp16_instead;  // INT8-eligible convs that time faster in FP16
  // The precision choice's cost model (sum of conv and quantize-pass times): the chosen mix and
  // every eligible conv in FP16, for the engine summary.
  double modelled_choice_ms = 0.0, modelled_fp16_ms = 0.0;
  cuda::PrepareContext pctx;

  int add_value(const std::string& name, TensorInfo info, Storage storage) {
    Value v;
    v.name = name;
    v.info = std::move(info);
    v.storage = storage;
    ex.values_.push_back(std::move(v));
    return static_cast<int>(ex.values_.size()) - 1;
  }

  // Device copy of constant `name` in `dtype` (plain layout).
  Result<int> constant_value(const std::string& name, DataType dtype) {
    auto key = std::make_pair(name, dtype);
    if (auto it = uploaded.find(key); it != uploaded.end()) return it->second;
    const ValueDesc& d = ex.graph_.values.at(name);
    QYOLO_ASSIGN_OR_RETURN(auto bytes, constant_bytes(*d.value, dtype));
    QYOLO_ASSIGN_OR_RETURN(auto buf, cuda::DeviceBuffer::allocate(std::max<size_t>(bytes.size(), 1)));
    QYOLO_RETURN_IF_ERROR(buf.upload(bytes.data(), bytes.size()));
    ex.constants_.push_back(std::move(buf));
    TensorInfo info{dtype, d.shape, Layout::kPlain, &*d.value, {}};
    int id = add_value(name, info, Storage::kConstant);
    ex.values_[static_cast<size_t>(id)].constant = static_cast<int>(ex.constants_.size()) - 1;
    uploaded[key] = id;
    return id;
  }

  // A value holding `v` in `dtype`/`layout` (v itself, or a conversion step's output).
  Result<int> as(int v, DataType dtype, Layout layout) {
    const TensorInfo vi = ex.values_[static_cast<size_t>(v)].info;
    const std::string vname = ex.values_[static_cast<size_t>(v)].name;
    if (vi.shape.size() != 4 && layout == Layout::kNHWC) layout = Layout::kPlain;
    if (vi.dtype == dtype && vi.layout == layout) return v;
    auto key = std::make_tuple(v, dtype, layout);
    if (auto it = converted.find(key); it != converted.end()) return it->second;
    TensorInfo info{dtype, vi.shape, layout, nullptr, {}};
    const std::string name = vname + "#" + dtype_name(dtype) + "_" + layout_name(layout);
    int out = add_value(name, info, Storage::kArena);
    QYOLO_RETURN_IF_ERROR(add_convert_step(v, out, "convert '" + vname + "'"));
    converted[key] = out;
    return out;
  }

  Status add_convert_step(int in, int out, const std::string& label) {
    Step s;
    s.label = label;
    s.kernel = cuda::make_cuda_convert();
    s.inputs = {in};
    s.outputs = {out};
    const TensorInfo* ins[] = {&ex.values_[static_cast<size_t>(in)].info};
    TensorInfo outs[] = {ex.values_[static_cast<size_t>(out)].info};
    Node dummy;
    dummy.name = label;
    dummy.op_type = "qyolo.Convert";
    QYOLO_RETURN_IF_ERROR(s.kernel->prepare(pctx, dummy, ins, outs).with_context(label));
    ex.steps_.push_back(std::move(s));
    return Status::ok();
  }

  // int8 NHWC copy of value `v` (channels padded to 16) quantised with `scale`, for INT8 convs.
  Result<int> quantized(int v, float scale, int s2d) { return packed_input(v, s2d, scale); }
  // Half NHWC space-to-depth copy (s2d > 1, channels padded to 16) for an FP16 stem conv.
  Result<int> space_to_depth_half(int v, int s2d) { return packed_input(v, s2d, std::nullopt); }

  // The conv-input copies above (one step each, memoised per value): quantised when `scale` is
  // given, half otherwise.
  Result<int> packed_input(int v, int s2d, std::optional<float> scale) {
    auto key = std::make_tuple(v, scale.value_or(0.f), s2d);
    if (auto it = quantized_values.find(key); it != quantized_values.end()) return it->second;
    const TensorInfo vi = ex.values_[static_cast<size_t>(v)].info;
    if (vi.shape.size() != 4 || !is_float(vi.dtype))
      return internal_error("conv input '" + ex.values_[static_cast<size_t>(v)].name + "' is not a 4-D float value");
    int src = v;
    if (vi.layout == Layout::kStrided) {
      QYOLO_ASSIGN_OR_RETURN(src, as(v, vi.dtype, Layout::kNHWC));
    }
    Shape qs = vi.shape;
    qs[1] = (qs[1] * s2d * s2d + 15) / 16 * 16;
    qs[2] /= s2d;
    qs[3] /= s2d;
    const bool to_half = !scale.has_value();
    const std::string name = ex.values_[static_cast<size_t>(v)].name + (to_half ? "#half" : "#int8") + (s2d > 1 ? "_s2d" : "");
    TensorInfo qi{to_half ? DataType::kFloat16 : DataType::kInt8, qs, Layout::kNHWC, nullptr, {}};
    qi.s2d = s2d;
    const int out = add_value(name, qi, Storage::kArena);
    Step s;
    s.label = (to_half ? "space-to-depth '" : "quantize '") + ex.values_[static_cast<size_t>(v)].name + "'";
    s.kernel = to_half ? cuda::make_cuda_space_to_depth_half(s2d) : cuda::make_cuda_quantize(*scale, s2d);
    s.inputs = {src};
    s.outputs = {out};
    s.quantize_scale = scale.value_or(0.f);  // 0 for the half copy: not a quantize step
    const TensorInfo* ins[] = {&ex.values_[static_cast<size_t>(src)].info};
    TensorInfo outs[] = {ex.values_[static_cast<size_t>(out)].info};
    Node dummy;
    dummy.name = s.label;
    dummy.op_type = "qyolo.Quantize";
    QYOLO_RETURN_IF_ERROR(s.kernel->prepare(pctx, dummy, ins, outs).with_context(s.label));
    ex.steps_.push_back(std::move(s));
    quantized_values[key] = out;
    return out;
  }

  // Whether this Conv runs on the INT8 tensor-core kernel: INT8 build, a calibrated input scale
  // (quantize_graph), sm_80+, group 1, 2-D, constant weights. Other convs run in fp16.
  bool int8_conv(const Node& node) const {
    if (fp16_instead.count(&node)) return false;
    return int8_eligible(node);
  }
  bool int8_eligible(const Node& node) const {
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
  bool fp16_image_stem(const Node& node) const {
    if (!ex.options_.int8_fp16 || !ex.options_.int8_fp16_stem || node.outputs.empty()) return false;
    auto y = ex.graph_.values.find(node.outputs[0]);
    if (y == ex.graph_.values.end()) return false;
    return direct_stem(node, TensorInfo{DataType::kFloat16, y->second.shape, Layout::kNHWC, nullptr, {}});
  }

  // The direct fp16 stem kernel: a conv reading a plain fp32 value of <= 4 channels (the image).
  bool direct_stem(const Node& node, const TensorInfo& out) const {
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
  bool int8_head_padded(const Node& node) const {
    if (!ex.options_.int8_fp16 || !ex.options_.fp32_tail || node.outputs.empty() || reaches_conv.count(node.outputs[0]))
      return false;
    auto y = ex.graph_.values.find(node.outputs[0]);
    if (y == ex.graph_.values.end() || y->second.shape.size() != 4) return false;
    const TensorInfo half_out{DataType::kFloat16, y->second.shape, Layout::kNHWC, nullptr, {}};
    return computed_channels(node, half_out) != y->second.shape[1];
  }

  // What an INT8 conv writes: fp32 from its fp32 epilogue when only the fp32 tail (the detect
  // head) reads it, unless it is a padded head; half otherwise.
  DataType int8_output_dtype(const Node& node) const {
    const bool tail = ex.options_.fp32_tail && !reaches_conv.count(node.outputs[0]);
    return tail && !int8_head_padded(node) ? DataType::kFloat32 : DataType::kFloat16;
  }

  // Output channels an fp16 cuDNN conv computes: K rounded up to 8 when fp16_pad_channels applies
  // (fp16 NHWC output, no residual), else K.
  int64_t computed_channels(const Node& node, const TensorInfo& out) const {
    if (out.shape.size() != 4) return out.shape.size() > 1 ? out.shape[1] : 0;
    const int64_t k = out.shape[1];
    const bool residual = node.inputs.size() > 3 && !node.inputs[3].empty();
    if (!ex.options_.fp16_pad_channels || node.op_type != "Conv" || out.dtype != DataType::kFloat16 ||
        out.layout != Layout::kNHWC || residual || k % 8 == 0)
      return k;
    return (k + 7) / 8 * 8;
  }

  bool fp16_stem_s2d(const Node& node, const TensorInfo& out) const {
    if (!ex.options_.fp16_space_to_depth || out.dtype != DataType::kFloat16 || out.layout != Layout::kNHWC) return false;
    auto group = node.attr_int("group", 1);
    auto w = ex.graph_.values.find(node.inputs.size() > 1 ? node.inputs[1] : std::string());
    if (!group || *group != 1 || w == ex.graph_.values.end() || !w->second.value || w->second.shape.size() != 4) return false;
    return space_to_depth_factor(node) > 1;
  }

  // Space-to-depth factor for an INT8 conv's input: a stride-s conv whose kernel and leading pads
  // are multiples of s, on so few channels that s*s*C still fits the 16-channel granule (the
  // 6x6/2 stem on RGB: 16 instead of 3 -> 16 padded channels, and a quarter of the MACs).
  int space_to_depth_factor(const Node& node) const {
    const auto& x = ex.graph_.values.at(node.inputs[0]).shape;
    const auto& w = ex.graph_.values.at(node.inputs[1]).shape;
    auto a = ConvAttrs::parse(node, x, w);
    if (!a) return 1;
    const auto& win = a->window;
    const int64_t s = win.strides[0];
    if (s < 2 || win.strides[1] != s || win.dilations[0] != 1 || win.dilations[1] != 1) return 1;
    if (w[2] % s || w[3] % s || win.pads_begin[0] % s || win.pads_begin[1] % s || x[2] % s || x[3] % s) return 1;
    if (x[1] * s * s > 16) return 1;
    return static_cast<int>(s);
  }

  // --int8 --fp16, as TensorRT's --int8 --fp16: each INT8-eligible conv runs INT8 or FP16,
  // whichever makes the engine faster. Every such conv is timed both ways first (measure_conv):
  // INT8 with its fused epilogue (our kernel or cuDNN's INT8 engine, whichever its prepare
  // chose), FP16 as its step runs, and the quantize pass INT8 needs when its input does not come
  // requantised from INT8 producers. A conv's best choice depends on its neighbours' (who pays
  // for that pass: one pass serves every INT8 reader of a value), so the choice is a local search
  // over the whole assignment on that cost model: from "all FP16", from "INT8 wherever its kernel
  // is faster" and from "all INT8", flip single convs while the modelled time drops; keep the
  // best. (build() then times the real engine against all-FP16.)
  struct ConvTiming {
    float t8 = -1.f, t16 = -1.f;  // ms; < 0: that side cannot run this conv
    float quant = 0.f;            // the quantize pass (or space-to-depth quantize) INT8 would need
    float t16_extra = 0.f;        // the half space-to-depth copy an FP16 stem would need
  };

  // kAllFp16 / kAllInt8: every eligible conv that can go FP16 / INT8 does (the engine-level
  // comparison); kModelled: the cost model's best assignment.
  Status choose_conv_precisions(PrecisionVariant variant) {
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

  // Times one INT8-eligible conv both ways on scratch (stored as a tactic by problem, in
  // nanoseconds, so engine files reproduce the choice). Both kernels are discarded: add_node
  // prepares the chosen one again from the cached tactics.
  Status measure_conv(const Node& node, ConvTiming& t) {
    const ValueDesc& xd = ex.graph_.values.at(node.inputs[0]);
    const ValueDesc& wd = ex.graph_.values.at(node.inputs[1]);
    QYOLO_ASSIGN_OR_RETURN(ConvAttrs a, ConvAttrs::parse(node, xd.shape, wd.shape));
    const Shape& y = a.out_shape;
    const int s2d = space_to_depth_factor(node);
    std::ostringstream key;
    key << "convtime:" << shape_str(xd.shape) << ':' << shape_str(wd.shape) << ':' << a.window.pads_begin[0] << ','
        << a.window.pads_begin[1] << ':' << a.window.strides[0] << ':' << a.window.dilations[0] << ':'
        << static_cast<int>(a.activation) << ':' << a.has_bias << a.has_residual << ':' << reaches_conv.count(node.outputs[0]);
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
    if (stem16) x16 = TensorInfo{DataType::kFloat32, xd.shape, Layout::kPlain, nullptr, {}};  // the image itself
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
  Result<float> time_pass(cuda::CudaKernel& k, const TensorInfo& src, const TensorInfo& dst) {
    Node dummy;
    dummy.name = "pass (timing)";
    const TensorInfo* ins[] = {&src};
    TensorInfo outs[] = {dst};
    if (!k.prepare(pctx, dummy, ins, outs).is_ok()) return 0.f;
    return time_kernel(k, {&src}, {dst});
  }

  // Mean time of one enqueue of a prepared kernel on zeroed scratch tensors (constant and omitted
  // inputs are passed as null, as the executor does), with its own workspace.
  Result<float> time_kernel(cuda::CudaKernel& k, const std::vector<const TensorInfo*>& ins,
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

  // INT8 convs whose output is read by quantize steps write the int8 copy themselves.
  void fuse_requantization() {
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
  Status finalize_kernels() {
    for (auto& st : ex.steps_) {
      if (st.alias || !st.kernel) continue;
      const size_t n = st.outputs.size();
      std::unique_ptr<bool[]> written(new bool[n]);
      for (size_t i = 0; i < n; ++i)
        written[i] = st.outputs[i] >= 0 && ex.values_[static_cast<size_t>(st.outputs[i])].storage != Storage::kNone;
      QYOLO_RETURN_IF_ERROR(st.kernel->finalize(pctx, std::span<const bool>(written.get(), n)).with_context(st.label));
    }
    return Status::ok();
  }

  void drop_steps(const std::vector<bool>& drop) {
    std::vector<Step> kept;
    for (size_t s = 0; s < ex.steps_.size(); ++s)
      if (!drop[s]) kept.push_back(std::move(ex.steps_[s]));
    ex.steps_ = std::move(kept);
  }

  // Float conv outputs nobody reads any more (requantised or placed into a concat instead) are not
  // written (their producer gets nullptr).
  void drop_unread_outputs() {
    std::vector<int> readers(ex.values_.size(), 0);
    for (const auto& st : ex.steps_)
      for (int v : st.inputs)
        if (v >= 0) ++readers[static_cast<size_t>(v)];
    for (auto& val : ex.values_)
      if (val.storage == Storage::kAlias) ++readers[static_cast<size_t>(val.alias_of)];
    for (const auto& st : ex.steps_) {
      if (st.outputs.size() < 2 || !(st.node && st.node->op_type == "Conv")) continue;
      Value& f = ex.values_[static_cast<size_t>(st.outputs[0])];
      if (f.storage == Storage::kArena && readers[static_cast<size_t>(st.outputs[0])] == 0) f.storage = Storage::kNone;
    }
  }

  // The value whose storage `v` views (through reshape views and concat slices).
  int root_of(int v) const {
    while (ex.values_[static_cast<size_t>(v)].storage == Storage::kAlias) v = ex.values_[static_cast<size_t>(v)].alias_of;
    return v;
  }

  // The step writing each value (-1: none).
  std::vector<int> step_producers() const {
    std::vector<int> producer(ex.values_.size(), -1);
    for (size_t s = 0; s < ex.steps_.size(); ++s)
      for (int v : ex.steps_[s].outputs) producer[static_cast<size_t>(v)] = static_cast<int>(s);
    return producer;
  }

  // The non-alias steps reading each value, directly or through reshape views of it.
  std::vector<std::vector<int>> step_readers() const {
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
  void make_slice(int v, int base, size_t offset) {
    Value& val = ex.values_[static_cast<size_t>(v)];
    val.storage = Storage::kAlias;
    val.alias_of = base;
    val.view_offset = offset;
    ex.slices_.push_back(v);
  }

  // The detect head: an INT8 head conv whose output only the YOLO decode reads applies the decode
  // in its epilogue and writes the decode's output (one pass instead of a write + read of the raw
  // head tensor, and one launch less).
  void fuse_yolo_decodes() {
    const std::vector<int> producer = step_producers();
    const auto readers = step_readers();
    std::vector<bool> drop(ex.steps_.size(), false);
    for (size_t di = 0; di < ex.steps_.size(); ++di) {
      Step& dec = ex.steps_[di];
      auto params = dec.kernel->yolo_decode_params();
      if (!params || dec.inputs.size() != 3 || dec.outputs.size() != 1) continue;
      const int x = dec.inputs[0];
      const int ps = x >= 0 ? producer[static_cast<size_t>(x)] : -1;
      if (ps < 0 || !ex.steps_[static_cast<size_t>(ps)].int8 || ex.steps_[static_cast<size_t>(ps)].outputs.size() != 1 ||
          ex.values_[static_cast<size_t>(x)].storage != Storage::kArena || readers[static_cast<size_t>(x)].size() != 1)
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
  Status place_concats() {
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
        if (v < 0) { distinct_inputs = false; break; }
        distinct_inputs = distinct_inputs && seen.insert(v).second;
        shapes.push_back(ex.values_[static_cast<size_t>(v)].info.shape);
      }
      if (!distinct_inputs) continue;
      auto attrs = ConcatAttrs::parse(*cat.node, shapes);
      if (!attrs.is_ok()) continue;
      const int64_t axis = attrs->axis;

      // (a) INT8 channel concat feeding one quantize step.
      const auto& rd = readers[static_cast<size_t>(vc)];
      if (ci_info.layout == Layout::kNHWC && axis == 1 && ex.values_[static_cast<size_t>(vc)].storage == Storage::kArena &&
          rd.size() == 1 && ex.steps_[static_cast<size_t>(rd[0])].quantize_scale > 0.f) {
        const Step& q = ex.steps_[static_cast<size_t>(rd[0])];
        const int vq = q.outputs[0];
        const TensorInfo qi = ex.values_[static_cast<size_t>(vq)].info;
        bool ok = qi.s2d == 1 && qi.shape == ci_info.shape;
        for (int v : cat.inputs) {
          const int ps = producer[static_cast<size_t>(v)];
          ok = ok && ps >= 0 && ex.steps_[static_cast<size_t>(ps)].int8 &&
               ex.steps_[static_cast<size_t>(ps)].outputs.size() == 1 &&
               ex.values_[static_cast<size_t>(v)].storage == Storage::kArena && only_reader(v, static_cast<int>(ci)) &&
               ex.values_[static_cast<size_t>(v)].info.shape[1] % 16 == 0;
        }
        if (ok) {
          int64_t coff = 0;
          for (int v : cat.inputs) {
            QYOLO_RETURN_IF_ERROR(requantise_into_slice(producer[static_cast<size_t>(v)], v, vq, coff, q.quantize_scale, cat.label));
            coff += ex.values_[static_cast<size_t>(v)].info.shape[1];
          }
          drop[ci] = true;
          drop[static_cast<size_t>(rd[0])] = true;
          continue;
        }
        // (d) the same concat with other inputs too (the resized or pooled neck values, or convs
        //     read elsewhere as well): INT8 producers read only by it requantise into their slices
        //     as in (a), the rest are quantised into theirs by one quantize-concat step in place of
        //     the quantize pass, and the float concat goes. Same int8 bytes, without the float copy.
        if (qi.s2d == 1 && qi.shape == ci_info.shape) {
          QYOLO_ASSIGN_OR_RETURN(bool done, quantize_concat(ci, rd[0], producer, only_reader));
          if (done) {
            drop[ci] = true;
            continue;
          }
        }
      }

      // (c) NHWC channel concat, input by input.
      if (ci_info.layout == Layout::kNHWC && axis == 1 && ex.values_[static_cast<size_t>(vc)].storage == Storage::kArena) {
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
                          ex.steps_[static_cast<size_t>(ps)].outputs.size() == 1 && only_reader(v, static_cast<int>(ci)) &&
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
        if (placed == cat.inputs.size()) drop[ci] = true;
        else if (placed > 0) cat.label += " (" + std::to_string(placed) + " of " + std::to_string(cat.inputs.size()) + " inputs in place)";
        continue;
      }

      // (b) producers that write with a row pitch, into a plain concat output whose rows are its dim 0.
      const Value& out = ex.values_[static_cast<size_t>(vc)];
      if (out.info.layout != Layout::kPlain || !(out.storage == Storage::kArena || out.storage == Storage::kOutput)) continue;
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
             root.info.dtype == out.info.dtype && ps >= 0 && ex.steps_[static_cast<size_t>(ps)].outputs.size() == 1 &&
             only_reader(u, static_cast<int>(ci)) && !root.info.shape.empty() && root.info.shape[0] == outer;
        roots.push_back(u);
      }
      if (!ok) continue;
      // Every producer must accept the pitch before anything changes.
      for (int u : roots) ok = ok && ex.steps_[static_cast<size_t>(producer[static_cast<size_t>(u)])].kernel->set_output_pitch(pctx, 0, pitch);
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
  Status requantise_into_slice(int ps, int v, int vq, int64_t coff, float scale, const std::string& concat_label) {
    Step& prod = ex.steps_[static_cast<size_t>(ps)];
    TensorInfo si = ex.values_[static_cast<size_t>(v)].info;
    si.dtype = DataType::kInt8;
    const int64_t pitch = ex.values_[static_cast<size_t>(vq)].info.shape[1];
    if (!prod.kernel->fuse_quantized_output(scale) || !prod.kernel->set_output_pitch(pctx, 1, pitch))
      return internal_error(prod.label + ": cannot requantise into the concat '" + concat_label + "'");
    const int slice = add_value(ex.values_[static_cast<size_t>(v)].name + "#int8_in_concat", si, Storage::kArena);
    make_slice(slice, vq, static_cast<size_t>(coff));
    prod.outputs.push_back(slice);
    prod.label += " +quantize into concat";
    return Status::ok();
  }

  // Pattern (d) of place_concats for concat step `ci` and the quantize step `qs` reading it: false
  // (nothing changed) when some input fits neither way.
  template <typename OnlyReader>
  Result<bool> quantize_concat(size_t ci, int qs, const std::vector<int>& producer, const OnlyReader& only_reader) {
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
      if (ps >= 0 && ex.steps_[static_cast<size_t>(ps)].int8 && ex.steps_[static_cast<size_t>(ps)].outputs.size() == 1 &&
          in.storage == Storage::kArena && only_reader(v, static_cast<int>(ci)) && width % 16 == 0 && coff % 16 == 0) {
        own.push_back(v);
        own_off.push_back(coff);
      } else if (in.info.layout == Layout::kNHWC && width % 8 == 0 && width > 0 && coff % 8 == 0 &&
                 is_float(in.info.dtype) && (rest.empty() || ex.values_[static_cast<size_t>(rest[0])].info.dtype == in.info.dtype)) {
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
      QYOLO_RETURN_IF_ERROR(requantise_into_slice(producer[static_cast<size_t>(own[k])], own[k], vq, own_off[k], scale, cat.label));
    // The new step takes the quantize pass's place: after every producer, before every reader.
    ex.steps_[static_cast<size_t>(qs)] = std::move(step);
    return true;
  }

  // Concurrent branches. A step whose last producer ran well before it needs nothing from the
  // steps in between (a C3's cv2 reads the block input, a detect-head conv reads a neck output the
  // rest of the neck goes on from): it runs on the side stream from just after that producer
  // (fork event) until just before its first reader (join event), overlapping them. Fills
  // `window`: the step indices during which each step may run, for the memory plan.
  Status assign_streams() {
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
      if (st.alias || d >= static_cast<int>(s) - 1 || (d >= 0 && ex.steps_[static_cast<size_t>(d)].side)) continue;
      const int j = first_reader(s);
      int fork;
      if (auto it = fork_of.find(d); it != fork_of.end()) {
        fork = it->second;
      } else {
        fork = static_cast<int>(ex.fork_events_.size());
        QYOLO_ASSIGN_OR_RETURN(auto e, cuda::make_event(false));
        ex.fork_events_.push_back(std::move(e));
        fork_of[d] = fork;
        if (d < 0) ex.start_forks_.push_back(fork);
        else ex.steps_[static_cast<size_t>(d)].record_fork = fork;
      }
      const int join = static_cast<int>(ex.join_events_.size());
      QYOLO_ASSIGN_OR_RETURN(auto e, cuda::make_event(false));
      ex.join_events_.push_back(std::move(e));
      st.side = true;
      st.wait_fork = fork;
      st.record_join = join;
      st.label += " [side stream]";
      if (j < static_cast<int>(n)) ex.steps_[static_cast<size_t>(j)].wait_joins.push_back(join);
      else ex.end_joins_.push_back(join);
      window[s] = {d + 1, std::min(j, static_cast<int>(n)) - 1};
      side_ws = std::max(side_ws, st.kernel->workspace_bytes());
    }
    if (ex.join_events_.empty()) return Status::ok();
    QYOLO_ASSIGN_OR_RETURN(ex.side_stream_, cuda::make_stream());
    QYOLO_ASSIGN_OR_RETURN(ex.side_workspace_, cuda::DeviceBuffer::allocate(side_ws));
    return Status::ok();
  }

  void compute_reaches_conv() {
    const Graph& g = ex.graph_.graph;
    for (auto it = g.nodes.rbegin(); it != g.nodes.rend(); ++it) {
      bool r = it->op_type == "Conv";
      for (const auto& o : it->outputs) r = r || reaches_conv.count(o);
      if (r)
        for (const auto& in : it->inputs)
          if (!in.empty()) reaches_conv.insert(in);
    }
  }

  DataType output_dtype(const Node& node, const std::string& out, DataType onnx_dtype) const {
    if (onnx_dtype != DataType::kFloat32) return onnx_dtype;
    if (ex.options_.precision == CudaPrecision::kFp32) return DataType::kFloat32;
    if (ex.options_.precision == CudaPrecision::kInt8 && !ex.options_.int8_fp16) return DataType::kFloat32;
    if (int8_conv(node)) return int8_output_dtype(node);
    if (node.op_type == "Conv" || !ex.options_.fp32_tail || reaches_conv.count(out)) return DataType::kFloat16;
    return DataType::kFloat32;
  }

  Status add_node(const Node& node, bool nhwc) {
    const Graph& g = ex.graph_.graph;
    const cuda::CudaOpTraits* tr = cuda::find_cuda_op(node.op_type);
    if (tr == nullptr || !cuda_supports(node)) {
      std::string list;
      for (const auto& op : cuda_supported_ops()) list += (list.empty() ? "" : ", ") + op;
      return unsupported(node.describe() + ": the CUDA backend has no kernel for this op" +
                         (tr ? std::string(" with these attributes") : std::string()) + " (supported: " + list + ")");
    }
    const bool is_conv = node.op_type == "Conv";
    const bool is_int8 = int8_conv(node);
    if (tr->alias) return add_alias_node(node, tr);

    // First non-host, non-constant input decides the layout of layout-following ops.
    Layout follow = Layout::kPlain;
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      if (node.inputs[i].empty() || (tr->host_inputs >> i & 1u)) continue;
      auto it = ids.find(node.inputs[i]);
      if (it == ids.end()) continue;
      const Value& v = ex.values_[static_cast<size_t>(it->second)];
      if (v.storage == Storage::kConstant) continue;
      follow = v.info.layout;
      break;
    }

    // Outputs.
    std::vector<TensorInfo> out_infos;
    for (const auto& o : node.outputs) {
      auto dit = ex.graph_.values.find(o);
      if (dit == ex.graph_.values.end()) return internal_error(node.describe() + ": output '" + o + "' has no description");
      const ValueDesc& d = dit->second;
      TensorInfo info;
      info.shape = d.shape;
      info.dtype = output_dtype(node, o, d.dtype);
      if (tr->compute && !is_float(info.dtype))
        return unsupported(node.describe() + ": the CUDA backend computes this op on float tensors only, output '" + o +
                           "' is " + dtype_name(d.dtype));
      if (d.shape.size() == 4 && nhwc && (is_conv || (tr->nhwc_output && follow == Layout::kNHWC)))
        info.layout = Layout::kNHWC;
      out_infos.push_back(std::move(info));
    }
    if (tr->alias) out_infos[0].layout = Layout::kPlain;

    const bool stem = is_conv && !is_int8 && direct_stem(node, out_infos[0]);
    // Padded output channels (fp16_pad_channels): the conv writes [N, Kp, H, W]; the node's output
    // is a strided view of its first K channels.
    const bool conv4 = is_conv && out_infos[0].shape.size() == 4;
    const int64_t model_channels = conv4 ? out_infos[0].shape[1] : 0;
    if (conv4 && !stem && (!is_int8 || int8_head_padded(node))) out_infos[0].shape[1] = computed_channels(node, out_infos[0]);

    // Inputs, converted to what the kernel reads.
    Step step;
    step.node = &node;
    step.label = node.describe();
    std::vector<TensorInfo> host_infos(node.inputs.size());
    std::vector<const TensorInfo*> in_infos;
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      const std::string& name = node.inputs[i];
      if (name.empty()) {
        step.inputs.push_back(-1);
        in_infos.push_back(nullptr);
        continue;
      }
      auto dit = ex.graph_.values.find(name);
      if (dit == ex.graph_.values.end()) return internal_error(node.describe() + ": unknown input '" + name + "'");
      const ValueDesc& d = dit->second;
      if (tr->host_inputs >> i & 1u) {
        if (!d.value)
          return unsupported(node.describe() + ": input " + std::to_string(i) + " ('" + name +
                             "') must be a constant for the CUDA backend");
        host_infos[i] = TensorInfo{d.dtype, d.shape, Layout::kPlain, &*d.value, {}};
        step.inputs.push_back(-1);
        in_infos.push_back(&host_infos[i]);
        continue;
      }
      // Required dtype and layout.
      const TensorInfo& o0 = out_infos[0];
      std::optional<Layout> want_layout;
      // Binary ops and data movement read any layout through strides; the rest need the output's.
      if (!tr->any_float_inputs && std::string_view(tr->stem) != "binary") want_layout = o0.layout;
      int v;
      if (d.value) {
        DataType cdt = d.dtype;
        if (tr->compute) cdt = o0.dtype;  // arithmetic on constants happens in the compute type
        else if (is_float(d.dtype) && is_float(o0.dtype)) cdt = o0.dtype;
        QYOLO_ASSIGN_OR_RETURN(v, constant_value(name, cdt));
      } else {
        auto it = ids.find(name);
        if (it == ids.end()) return internal_error(node.describe() + ": input '" + name + "' is not computed before it");
        v = it->second;
      }
      const DataType vdt = ex.values_[static_cast<size_t>(v)].info.dtype;
      const Layout vlayout = ex.values_[static_cast<size_t>(v)].info.layout;
      if (tr->compute && !is_float(vdt))
        return unsupported(node.describe() + ": input '" + name + "' is " + dtype_name(vdt) +
                           ", the CUDA backend computes this op on float tensors only");
      if (is_int8 && i == 0) {
        QYOLO_ASSIGN_OR_RETURN(float scale, node.attr_float("qyolo_input_scale"));
        QYOLO_ASSIGN_OR_RETURN(v, quantized(v, scale, space_to_depth_factor(node)));
        step.inputs.push_back(v);
        in_infos.push_back(&ex.values_[static_cast<size_t>(v)].info);
        continue;
      }
      if (stem && i == 0) {  // the direct stem kernel reads the fp32 image as it is
        step.inputs.push_back(v);
        in_infos.push_back(&ex.values_[static_cast<size_t>(v)].info);
        continue;
      }
      // The FP16 stem (a stride-s conv on few channels, the 6x6/2 on RGB): space-to-depth into
      // s*s*C half channels (padded to 16), a stride-1 conv cuDNN runs on tensor cores.
      if (is_conv && i == 0 && fp16_stem_s2d(node, out_infos[0])) {
        QYOLO_ASSIGN_OR_RETURN(v, space_to_depth_half(v, space_to_depth_factor(node)));
        step.inputs.push_back(v);
        in_infos.push_back(&ex.values_[static_cast<size_t>(v)].info);
        continue;
      }
      DataType dt = vdt;
      if (tr->compute || (tr->alias && is_float(vdt) && is_float(o0.dtype))) dt = o0.dtype;
      QYOLO_ASSIGN_OR_RETURN(v, as(v, dt, want_layout.value_or(vlayout)));
      step.inputs.push_back(v);
      in_infos.push_back(&ex.values_[static_cast<size_t>(v)].info);
    }

    for (size_t i = 0; i < node.outputs.size(); ++i) {
      const bool padded = i == 0 && conv4 && out_infos[0].shape[1] != model_channels;
      const std::string name = node.outputs[i] + (padded ? "#c" + std::to_string(out_infos[0].shape[1]) : std::string());
      int id = add_value(name, out_infos[i], tr->alias ? Storage::kAlias : Storage::kArena);
      if (tr->alias) ex.values_[static_cast<size_t>(id)].alias_of = step.inputs[0];
      ids[node.outputs[i]] = id;
      step.outputs.push_back(id);
      if (padded) {
        TensorInfo view = out_infos[0];
        view.shape[1] = model_channels;
        view.layout = Layout::kStrided;
        view.view = out_infos[0].strides();
        const int v = add_value(node.outputs[i], view, Storage::kAlias);
        make_slice(v, id, 0);
        ids[node.outputs[i]] = v;
      }
    }
    // in_infos may point into values_, which add_value can reallocate: refresh.
    for (size_t i = 0; i < step.inputs.size(); ++i)
      if (step.inputs[i] >= 0) in_infos[i] = &ex.values_[static_cast<size_t>(step.inputs[i])].info;
    step.alias = tr->alias;
    step.int8 = is_int8;
    if (is_int8) {
      QYOLO_ASSIGN_OR_RETURN(step.kernel, cuda::make_cuda_conv2d_int8(node));
    } else if (stem) {
      QYOLO_ASSIGN_OR_RETURN(step.kernel, cuda::make_cuda_conv2d_stem(node));
    } else {
      QYOLO_ASSIGN_OR_RETURN(step.kernel, tr->factory(node));
    }
    QYOLO_RETURN_IF_ERROR(step.kernel->prepare(pctx, node, in_infos, out_infos).with_context(g.source_path));
    ex.steps_.push_back(std::move(step));
    return Status::ok();
  }

  // Reshape family: the output views the input's memory (strided when the input is NHWC or
  // already a view and no copy is needed), in the input's dtype.
  Status add_alias_node(const Node& node, const cuda::CudaOpTraits* tr) {
    const Graph& g = ex.graph_.graph;
    if (node.inputs.empty() || node.inputs[0].empty()) return invalid_argument(node.describe() + ": input 0 is required");
    const std::string& name = node.inputs[0];
    const std::string& out = node.outputs[0];
    auto dit = ex.graph_.values.find(name);
    auto oit = ex.graph_.values.find(out);
    if (dit == ex.graph_.values.end() || oit == ex.graph_.values.end())
      return internal_error(node.describe() + ": missing value description");
    int v;
    if (dit->second.value) {
      QYOLO_ASSIGN_OR_RETURN(v, constant_value(name, output_dtype(node, out, dit->second.dtype)));
    } else {
      auto it = ids.find(name);
      if (it == ids.end()) return internal_error(node.describe() + ": input '" + name + "' is not computed before it");
      v = it->second;
    }
    const Shape& oshape = oit->second.shape;
    TensorInfo vi = ex.values_[static_cast<size_t>(v)].info;
    auto vs = cuda::view_strides(vi.shape, vi.strides(), oshape);
    if (!vs) {
      QYOLO_ASSIGN_OR_RETURN(v, as(v, vi.dtype, Layout::kPlain));
      vi = ex.values_[static_cast<size_t>(v)].info;
      vs = cuda::plain_strides(oshape);
    }
    TensorInfo oi;
    oi.dtype = vi.dtype;
    oi.shape = oshape;
    if (cuda::same_strides(oshape, *vs, cuda::plain_strides(oshape))) {
      oi.layout = Layout::kPlain;
    } else {
      TensorInfo nhwc{vi.dtype, oshape, Layout::kNHWC, nullptr, {}};
      if (oshape.size() == 4 && cuda::same_strides(oshape, *vs, nhwc.strides())) {
        oi.layout = Layout::kNHWC;
      } else {
        oi.layout = Layout::kStrided;
        oi.view = *vs;
      }
    }
    Step step;
    step.node = &node;
    step.label = node.describe();
    step.alias = true;
    step.inputs.assign(node.inputs.size(), -1);
    step.inputs[0] = v;
    int id = add_value(out, oi, Storage::kAlias);
    ex.values_[static_cast<size_t>(id)].alias_of = v;
    ids[out] = id;
    step.outputs = {id};
    std::vector<const TensorInfo*> in_infos(node.inputs.size(), nullptr);
    in_infos[0] = &ex.values_[static_cast<size_t>(v)].info;
    TensorInfo outs[] = {oi};
    QYOLO_ASSIGN_OR_RETURN(step.kernel, tr->factory(node));
    QYOLO_RETURN_IF_ERROR(step.kernel->prepare(pctx, node, in_infos, outs).with_context(g.source_path));
    ex.steps_.push_back(std::move(step));
    return Status::ok();
  }

  // Liveness-based offsets into one arena (greedy, largest first).
  void plan_memory() {
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
      bufs.push_back({static_cast<int>(v), align_up(std::max<size_t>(ex.values_[v].info.nbytes(), 1)), first[v], last[v], 0});
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

  size_t arena_size = 0;
  std::vector<std::pair<int, int>> window;  // per step: [first, last] step index it may run during
};

CudaExecutor::~CudaExecutor() {
  if (side_stream_) cudaStreamSynchronize(side_stream_.get());
  if (stream_) cudaStreamSynchronize(stream_.get());
}

// --int8 --fp16 with the per-layer choice: the cost model sums isolated kernel times, which
// misses launch gaps, concurrency, cache effects (at batch 1 they dominate) and the passes that
// are not convs (concat copies, quantize-concats). So the modelled mix is built, then the engines
// with every eligible conv in FP16 and in INT8 (their timings are mostly cached by then), each is
// replayed as a CUDA graph, and the fastest is kept. The verdict is a tactic, so reloading an
// engine file rebuilds the same one without timing.
Result<std::unique_ptr<CudaExecutor>> CudaExecutor::build(SpecializedGraph graph, const CudaBuildOptions& options) {
  if (options.precision != CudaPrecision::kInt8 || !options.int8_fp16 || !options.int8_fp16_choose)
    return build_variant(std::move(graph), options, PrecisionVariant::kModelled);
  std::ostringstream key;
  key << "engine-precision:";
  for (const auto& in : graph.graph.inputs) key << shape_str(graph.values.at(in.name).shape) << ';';
  if (auto it = options.tactics.find(key.str());
      it != options.tactics.end() && it->second.size() == 1 && it->second[0] >= 0 && it->second[0] <= 2)
    return build_variant(std::move(graph), options, static_cast<PrecisionVariant>(it->second[0]));
  // The modelled mix, all FP16 and all INT8 (the later builds reuse the earlier ones' timings);
  // an engine with the same INT8 share as one already built is the same engine and is skipped.
  struct Candidate {
    PrecisionVariant variant;
    const char* name;
    std::unique_ptr<CudaExecutor> engine;
    float ms = 0.f;
  };
  std::vector<Candidate> cands;
  std::map<std::string, std::vector<int64_t>> tactics = options.tactics;
  for (auto [variant, name] : {std::pair{PrecisionVariant::kModelled, "this mix"},
                               std::pair{PrecisionVariant::kAllFp16, "every eligible conv FP16"},
                               std::pair{PrecisionVariant::kAllInt8, "every eligible conv INT8"}}) {
    CudaBuildOptions again = options;
    again.tactics = tactics;
    QYOLO_ASSIGN_OR_RETURN(auto e, build_variant(graph, again, variant));
    tactics = e->tactics_;  // a superset of the earlier builds'
    const double macs = e->cost().int8_macs;
    if (std::any_of(cands.begin(), cands.end(), [&](const Candidate& c) { return c.engine->cost().int8_macs == macs; }))
      continue;
    cands.push_back({variant, name, std::move(e)});
  }
  const std::string precision_note = cands[0].engine->precision_note_;
  if (cands.size() > 1) {
    for (int round = 0; round < 2; ++round)  // each measured twice, interleaved; the best of the two
      for (auto& c : cands) {
        QYOLO_ASSIGN_OR_RETURN(float ms, c.engine->time_replay(30));
        c.ms = round == 0 ? ms : std::min(c.ms, ms);
      }
  }
  size_t best = 0;
  for (size_t i = 1; i < cands.size(); ++i)
    if (cands[i].ms < cands[best].ms) best = i;
  std::ostringstream note;
  note << precision_note << "; engines timed (CUDA graph):";
  for (const auto& c : cands) note << ' ' << c.name << ' ' << c.ms << " ms,";
  note << " kept " << cands[best].name;
  std::unique_ptr<CudaExecutor> kept = std::move(cands[best].engine);
  kept->tactics_ = std::move(tactics);
  kept->tactics_[key.str()] = {static_cast<int64_t>(cands[best].variant)};
  kept->precision_note_ = cands.size() > 1 ? note.str() : precision_note;
  return kept;
}

Result<float> CudaExecutor::time_replay(int iters) {
  std::vector<cuda::DeviceBuffer> bufs;
  std::vector<const void*> ins;
  std::vector<void*> outs;
  for (const auto& b : inputs_) {
    QYOLO_ASSIGN_OR_RETURN(auto d, cuda::DeviceBuffer::allocate(std::max<size_t>(b.nbytes(), 1)));
    QYOLO_CUDA_CHECK(cudaMemsetAsync(d.get(), 0, d.size(), stream_.get()));
    ins.push_back(d.get());
    bufs.push_back(std::move(d));
  }
  for (const auto& b : outputs_) {
    QYOLO_ASSIGN_OR_RETURN(auto d, cuda::DeviceBuffer::allocate(std::max<size_t>(b.nbytes(), 1)));
    outs.push_back(d.get());
    bufs.push_back(std::move(d));
  }
  QYOLO_RETURN_IF_ERROR(enqueue(ins, outs, stream_.get()));  // first launch outside the capture
  QYOLO_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
  QYOLO_CUDA_CHECK(cudaStreamBeginCapture(stream_.get(), cudaStreamCaptureModeThreadLocal));
  Status st = enqueue(ins, outs, stream_.get());
  cudaGraph_t raw = nullptr;
  const cudaError_t end = cudaStreamEndCapture(stream_.get(), &raw);
  cuda::Graph graph(raw);
  QYOLO_RETURN_IF_ERROR(st);
  QYOLO_CUDA_CHECK(end);
  cudaGraphExec_t exec_raw = nullptr;
  QYOLO_CUDA_CHECK(cudaGraphInstantiate(&exec_raw, graph.get(), 0));
  cuda::GraphExec exec(exec_raw);
  return cuda::time_launches(stream_.get(), 3, iters, [&]() -> Status {
    QYOLO_CUDA_CHECK(cudaGraphLaunch(exec.get(), stream_.get()));
    return Status::ok();
  });
}

Result<std::unique_ptr<CudaExecutor>> CudaExecutor::build_variant(SpecializedGraph graph, const CudaBuildOptions& options,
                                                                  PrecisionVariant variant) {
  if (cuda::device_count() == 0) return device_error("no CUDA device is available");
  auto ex = std::unique_ptr<CudaExecutor>(new CudaExecutor());
  ex->graph_ = std::move(graph);
  ex->options_ = options;
  QYOLO_CUDA_CHECK(cudaSetDevice(options.device));
  cudaDeviceProp prop{};
  QYOLO_CUDA_CHECK(cudaGetDeviceProperties(&prop, options.device));
  ex->programmatic_capable_ = prop.major >= 9;
  ex->set_programmatic_launch(options.programmatic_launch);
  QYOLO_ASSIGN_OR_RETURN(ex->cudnn_, cuda::make_cudnn());
  QYOLO_ASSIGN_OR_RETURN(ex->cublaslt_, cuda::make_cublaslt());
  QYOLO_ASSIGN_OR_RETURN(ex->stream_, cuda::make_stream());
  QYOLO_CUDA_CHECK(cudnnSetStream(ex->cudnn_.get(), ex->stream_.get()));

  Impl im(*ex);
  cuda::DeviceBuffer tuning;
  std::map<std::string, std::vector<int64_t>> tune_cache = options.tactics;
  std::map<std::string, std::shared_ptr<void>> object_cache;
  im.pctx.cudnn = ex->cudnn_.get();
  im.pctx.cublaslt = ex->cublaslt_.get();
  im.pctx.stream = ex->stream_.get();
  im.pctx.options = &ex->options_;
  im.pctx.prop = &prop;
  im.pctx.opset = ex->graph_.graph.opset;
  im.pctx.tuning_workspace = &tuning;
  im.pctx.tune_cache = &tune_cache;
  im.pctx.object_cache = &object_cache;
  im.pctx.weight_bytes = &ex->weight_bytes_;
  im.compute_reaches_conv();
  // Values are referenced by pointer during a node's preparation: reserve generously.
  ex->values_.reserve(ex->graph_.values.size() * 3 + 16);

  const Graph& g = ex->graph_.graph;
  const bool nhwc = options.layout == CudaLayout::kNHWC ||
                    (options.layout == CudaLayout::kAuto && options.precision != CudaPrecision::kFp32);
  for (size_t k = 0; k < g.inputs.size(); ++k) {
    const ValueDesc& d = ex->graph_.values.at(g.inputs[k].name);
    int id = im.add_value(g.inputs[k].name, TensorInfo{d.dtype, d.shape, Layout::kPlain, nullptr, {}}, Storage::kInput);
    ex->values_[static_cast<size_t>(id)].binding = static_cast<int>(k);
    im.ids[g.inputs[k].name] = id;
    ex->inputs_.push_back({g.inputs[k].name, d.dtype, d.shape});
    ex->input_values_.push_back(id);
  }
  if (options.precision == CudaPrecision::kInt8 && options.int8_fp16 && options.int8_fp16_choose) {
    Status st = im.choose_conv_precisions(variant);
    if (!st.is_ok()) return st.with_context(g.source_path);
    std::ostringstream note;
    note << "per-layer INT8/FP16 choice: modelled conv + quantize time " << im.modelled_choice_ms << " ms (all FP16: "
         << im.modelled_fp16_ms << " ms)";
    ex->precision_note_ = note.str();
  }
  for (const auto& node : g.nodes) {
    Status st = im.add_node(node, nhwc);
    if (!st.is_ok()) return st.with_context(g.source_path);
  }
  // Outputs: written in place by their producer when possible, else converted/copied at the end.
  std::set<int> bound;
  for (size_t k = 0; k < g.outputs.size(); ++k) {
    const std::string& name = g.outputs[k].name;
    const ValueDesc& d = ex->graph_.values.at(name);
    ex->outputs_.push_back({name, d.dtype, d.shape});
    int v;
    if (auto it = im.ids.find(name); it != im.ids.end()) {
      v = it->second;
    } else if (d.value) {
      QYOLO_ASSIGN_OR_RETURN(v, im.constant_value(name, d.dtype));
    } else {
      return internal_error(g.source_path + ": graph output '" + name + "' is never computed");
    }
    Value& val = ex->values_[static_cast<size_t>(v)];
    if (val.storage == Storage::kArena && val.info.dtype == d.dtype && val.info.layout == Layout::kPlain &&
        !bound.count(v)) {
      val.storage = Storage::kOutput;
      val.binding = static_cast<int>(k);
      bound.insert(v);
      ex->output_values_.push_back(v);
      continue;
    }
    int out = im.add_value(name + "#out", TensorInfo{d.dtype, d.shape, Layout::kPlain, nullptr, {}}, Storage::kOutput);
    ex->values_[static_cast<size_t>(out)].binding = static_cast<int>(k);
    QYOLO_RETURN_IF_ERROR(im.add_convert_step(v, out, "output '" + name + "'"));
    ex->output_values_.push_back(out);
  }
  im.fuse_requantization();
  if (options.fuse_head_decode) im.fuse_yolo_decodes();
  QYOLO_RETURN_IF_ERROR(im.place_concats());  // may re-plan cuDNN convs: before the tuning state goes
  im.drop_unread_outputs();
  QYOLO_RETURN_IF_ERROR(im.finalize_kernels());  // may plan again too
  tuning.reset();
  object_cache.clear();
  ex->tactics_ = std::move(tune_cache);
  QYOLO_RETURN_IF_ERROR(im.assign_streams());

  im.plan_memory();
  QYOLO_ASSIGN_OR_RETURN(ex->arena_, cuda::DeviceBuffer::allocate(im.arena_size));
  size_t ws = 0;
  for (const auto& s : ex->steps_)
    if (!s.side) ws = std::max(ws, s.kernel->workspace_bytes());
  QYOLO_ASSIGN_OR_RETURN(ex->workspace_, cuda::DeviceBuffer::allocate(ws));
  ex->ptrs_.assign(ex->values_.size(), nullptr);
  for (size_t v = 0; v < ex->values_.size(); ++v) {
    const Value& val = ex->values_[v];
    if (val.storage == Storage::kArena) ex->ptrs_[v] = static_cast<char*>(ex->arena_.get()) + val.offset;
    if (val.storage == Storage::kConstant) ex->ptrs_[v] = ex->constants_[static_cast<size_t>(val.constant)].get();
  }
  size_t max_in = 0, max_out = 0;
  for (const auto& s : ex->steps_) {
    max_in = std::max(max_in, s.inputs.size());
    max_out = std::max(max_out, s.outputs.size());
  }
  ex->in_scratch_.resize(max_in);
  ex->out_scratch_.resize(max_out);
  QYOLO_CUDA_CHECK(cudaStreamSynchronize(ex->stream_.get()));
  return ex;
}

Status CudaExecutor::enqueue(const std::vector<const void*>& device_inputs, const std::vector<void*>& device_outputs,
                             cudaStream_t stream) {
  if (device_inputs.size() != inputs_.size())
    return invalid_argument("enqueue: " + std::to_string(device_inputs.size()) + " inputs given, the engine has " +
                            std::to_string(inputs_.size()));
  if (device_outputs.size() != outputs_.size())
    return invalid_argument("enqueue: " + std::to_string(device_outputs.size()) + " outputs given, the engine has " +
                            std::to_string(outputs_.size()));
  for (size_t k = 0; k < inputs_.size(); ++k) {
    if (device_inputs[k] == nullptr && inputs_[k].nbytes() > 0)
      return invalid_argument("enqueue: input '" + inputs_[k].name + "' is a null pointer");
    ptrs_[static_cast<size_t>(input_values_[k])] = const_cast<void*>(device_inputs[k]);
  }
  for (size_t k = 0; k < outputs_.size(); ++k) {
    if (device_outputs[k] == nullptr && outputs_[k].nbytes() > 0)
      return invalid_argument("enqueue: output '" + outputs_[k].name + "' is a null pointer");
    ptrs_[static_cast<size_t>(output_values_[k])] = device_outputs[k];
  }
  for (int v : slices_) {
    const Value& val = values_[static_cast<size_t>(v)];
    ptrs_[static_cast<size_t>(v)] = static_cast<char*>(ptrs_[static_cast<size_t>(val.alias_of)]) + val.view_offset;
  }
  QYOLO_CUDA_CHECK(cudnnSetStream(cudnn_.get(), stream));
  const cuda::LaunchContext main_lc{stream, cudnn_.get(), workspace_.get(), workspace_.size(), cublaslt_.get(),
                                    programmatic_};
  const cuda::LaunchContext side_lc{side_stream_.get(), cudnn_.get(), side_workspace_.get(), side_workspace_.size(),
                                    cublaslt_.get(), programmatic_};
  bool cudnn_on_side = false;
  for (int f : start_forks_) QYOLO_CUDA_CHECK(cudaEventRecord(fork_events_[static_cast<size_t>(f)].get(), stream));
  for (const auto& s : steps_) {
    if (s.alias) {
      ptrs_[static_cast<size_t>(s.outputs[0])] = ptrs_[static_cast<size_t>(s.inputs[0])];
      continue;
    }
    for (size_t i = 0; i < s.inputs.size(); ++i)
      in_scratch_[i] = s.inputs[i] >= 0 ? ptrs_[static_cast<size_t>(s.inputs[i])] : nullptr;
    for (size_t i = 0; i < s.outputs.size(); ++i) out_scratch_[i] = ptrs_[static_cast<size_t>(s.outputs[i])];
    if (s.side) {
      QYOLO_CUDA_CHECK(cudaStreamWaitEvent(side_stream_.get(), fork_events_[static_cast<size_t>(s.wait_fork)].get(), 0));
    } else {
      for (int j : s.wait_joins) QYOLO_CUDA_CHECK(cudaStreamWaitEvent(stream, join_events_[static_cast<size_t>(j)].get(), 0));
    }
    if (s.side != cudnn_on_side) {  // one handle: cuDNN launches on the handle's stream
      QYOLO_CUDA_CHECK(cudnnSetStream(cudnn_.get(), s.side ? side_stream_.get() : stream));
      cudnn_on_side = s.side;
    }
    Status st = s.kernel->enqueue(s.side ? side_lc : main_lc, std::span<const void* const>(in_scratch_.data(), s.inputs.size()),
                                  std::span<void* const>(out_scratch_.data(), s.outputs.size()));
    if (!st.is_ok()) return st.with_context(graph_.graph.source_path + ": " + s.label);
    if (s.side) QYOLO_CUDA_CHECK(cudaEventRecord(join_events_[static_cast<size_t>(s.record_join)].get(), side_stream_.get()));
    if (s.record_fork >= 0) QYOLO_CUDA_CHECK(cudaEventRecord(fork_events_[static_cast<size_t>(s.record_fork)].get(), stream));
  }
  if (cudnn_on_side) QYOLO_CUDA_CHECK(cudnnSetStream(cudnn_.get(), stream));
  for (int j : end_joins_) QYOLO_CUDA_CHECK(cudaStreamWaitEvent(stream, join_events_[static_cast<size_t>(j)].get(), 0));
  return Status::ok();
}

Status CudaExecutor::run(const std::map<std::string, Tensor>& inputs, std::map<std::string, Tensor>& outputs) {
  QYOLO_CUDA_CHECK(cudaSetDevice(options_.device));
  std::vector<cuda::DeviceBuffer> dev_in, dev_out;
  std::vector<const void*> in_ptrs;
  std::vector<void*> out_ptrs;
  cudaStream_t s = stream_.get();
  for (const auto& b : inputs_) {
    auto it = inputs.find(b.name);
    if (it == inputs.end()) return invalid_argument("input '" + b.name + "' was not provided");
    if (it->second.shape() != b.shape || it->second.dtype() != b.dtype)
      return invalid_argument("input '" + b.name + "' is " + dtype_name(it->second.dtype()) + " " +
                              shape_str(it->second.shape()) + ", the engine was built for " + dtype_name(b.dtype) + " " +
                              shape_str(b.shape));
    QYOLO_ASSIGN_OR_RETURN(auto buf, cuda::DeviceBuffer::allocate(b.nbytes()));
    QYOLO_CUDA_CHECK(cudaMemcpyAsync(buf.get(), it->second.raw(), b.nbytes(), cudaMemcpyHostToDevice, s));
    in_ptrs.push_back(buf.get());
    dev_in.push_back(std::move(buf));
  }
  for (const auto& b : outputs_) {
    QYOLO_ASSIGN_OR_RETURN(auto buf, cuda::DeviceBuffer::allocate(b.nbytes()));
    out_ptrs.push_back(buf.get());
    dev_out.push_back(std::move(buf));
  }
  QYOLO_RETURN_IF_ERROR(enqueue(in_ptrs, out_ptrs, s));
  outputs.clear();
  for (size_t k = 0; k < outputs_.size(); ++k) {
    Tensor t = Tensor::uninitialized(outputs_[k].dtype, outputs_[k].shape);
    QYOLO_CUDA_CHECK(cudaMemcpyAsync(t.raw(), out_ptrs[k], outputs_[k].nbytes(), cudaMemcpyDeviceToHost, s));
    outputs[outputs_[k].name] = t;
  }
  QYOLO_CUDA_CHECK(cudaStreamSynchronize(s));
  return Status::ok();
}

Result<std::string> CudaExecutor::profile(const std::vector<const void*>& device_inputs,
                                          const std::vector<void*>& device_outputs, cudaStream_t stream, int iters) {
  // Resolve pointers through one plain enqueue first.
  QYOLO_RETURN_IF_ERROR(enqueue(device_inputs, device_outputs, stream));
  std::vector<cuda::Event> ev;
  for (size_t i = 0; i <= steps_.size(); ++i) {
    QYOLO_ASSIGN_OR_RETURN(auto e, cuda::make_event());
    ev.push_back(std::move(e));
  }
  std::vector<double> total(steps_.size(), 0.0);
  // Serial on one stream (every step's own time); side-stream steps keep their own workspace.
  const cuda::LaunchContext lc{stream, cudnn_.get(), workspace_.get(), workspace_.size(), cublaslt_.get()};
  const cuda::LaunchContext side_lc{stream, cudnn_.get(), side_workspace_.get(), side_workspace_.size(), cublaslt_.get()};
  for (int it = 0; it < iters; ++it) {
    for (size_t k = 0; k < steps_.size(); ++k) {
      const Step& s = steps_[k];
      QYOLO_CUDA_CHECK(cudaEventRecord(ev[k].get(), stream));
      if (s.alias) continue;
      for (size_t i = 0; i < s.inputs.size(); ++i)
        in_scratch_[i] = s.inputs[i] >= 0 ? ptrs_[static_cast<size_t>(s.inputs[i])] : nullptr;
      for (size_t i = 0; i < s.outputs.size(); ++i) out_scratch_[i] = ptrs_[static_cast<size_t>(s.outputs[i])];
      QYOLO_RETURN_IF_ERROR(s.kernel->enqueue(s.side ? side_lc : lc, std::span<const void* const>(in_scratch_.data(), s.inputs.size()),
                                              std::span<void* const>(out_scratch_.data(), s.outputs.size())));
    }
    QYOLO_CUDA_CHECK(cudaEventRecord(ev.back().get(), stream));
    QYOLO_CUDA_CHECK(cudaEventSynchronize(ev.back().get()));
    for (size_t k = 0; k < steps_.size(); ++k) {
      float ms = 0;
      QYOLO_CUDA_CHECK(cudaEventElapsedTime(&ms, ev[k].get(), ev[k + 1].get()));
      total[k] += ms;
    }
  }
  double sum = 0;
  for (double t : total) sum += t;
  std::vector<size_t> order(steps_.size());
  for (size_t k = 0; k < order.size(); ++k) order[k] = k;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return total[a] > total[b]; });
  std::ostringstream os;
  os << "profile: " << sum / iters << " ms per run over " << steps_.size() << " steps\n";
  std::map<std::string, double> by_op;
  for (size_t k = 0; k < steps_.size(); ++k)
    by_op[steps_[k].node ? steps_[k].node->op_type : std::string("convert")] += total[k] / iters;
  for (const auto& [op, t] : by_op) os << "  op " << op << ": " << t << " ms\n";
  for (size_t k : order) {
    const Step& s = steps_[k];
    if (total[k] / iters < 0.005) break;
    const Value& o = values_[static_cast<size_t>(s.outputs[0])];
    os << "  " << total[k] / iters << " ms  " << s.label << " -> " << dtype_name(o.info.dtype) << " "
       << layout_name(o.info.layout) << " " << shape_str(o.info.shape) << " [" << s.kernel->info() << "]\n";
  }
  return os.str();
}

Status CudaExecutor::debug_fill_arena(int byte) {
  if (arena_.size() == 0) return Status::ok();
  QYOLO_CUDA_CHECK(cudaMemset(arena_.get(), byte, arena_.size()));
  QYOLO_CUDA_CHECK(cudaDeviceSynchronize());
  return Status::ok();
}

CudaExecutor::Cost CudaExecutor::cost() const {
  Cost c;
  for (const auto& s : steps_) {
    if (s.alias) continue;
    for (int v : s.inputs)
      if (v >= 0) c.bytes += static_cast<double>(values_[static_cast<size_t>(v)].info.nbytes());
    for (int v : s.outputs)
      if (values_[static_cast<size_t>(v)].storage != Storage::kNone)
        c.bytes += static_cast<double>(values_[static_cast<size_t>(v)].info.nbytes());
    if (!s.node || s.node->op_type != "Conv" || s.node->inputs.size() < 2) continue;
    auto w = graph_.values.find(s.node->inputs[1]);
    if (w == graph_.values.end() || s.outputs.empty()) continue;
    const Shape& y = values_[static_cast<size_t>(s.outputs[0])].info.shape;
    // y: [N, K, OH, OW]; w: [K, C/g, R, S]: N*K*OH*OW*(C/g)*R*S.
    const double macs = static_cast<double>(shape_numel(y)) * static_cast<double>(shape_numel(w->second.shape)) /
                        static_cast<double>(std::max<int64_t>(w->second.shape.empty() ? 1 : w->second.shape[0], 1));
    c.bytes += static_cast<double>(shape_numel(w->second.shape)) *
               (s.int8 ? 1.0 : dtype_size(values_[static_cast<size_t>(s.outputs[0])].info.dtype));
    c.conv_macs += macs;
    if (s.int8) c.int8_macs += macs;
  }
  return c;
}

std::string CudaExecutor::summary() const {
  std::ostringstream os;
  os << "CUDA engine: " << cuda_precision_name(options_.precision)
     << (options_.precision == CudaPrecision::kInt8 ? (options_.int8_fp16 ? " (fp16 elsewhere)" : " (fp32 elsewhere)") : "")
     << ", " << steps_.size() << " steps, arena "
     << arena_.size() / (1 << 20) << " MiB, workspace " << workspace_.size() / (1 << 20) << " MiB, weights "
     << weight_bytes_ / (1 << 20) << " MiB" << (programmatic_ ? ", programmatic launch" : "") << "\n";
  if (!precision_note_.empty()) os << "  " << precision_note_ << "\n";
  for (const auto& s : steps_) {
    os << "  " << s.label;
    for (int v : s.outputs) {
      const Value& val = values_[static_cast<size_t>(v)];
      os << " -> " << dtype_name(val.info.dtype) << " " << layout_name(val.info.layout) << " " << shape_str(val.info.shape);
    }
    if (s.alias) os << " (alias)";
    std::string info = s.kernel->info();
    if (!info.empty()) os << " [" << info << "]";
    os << "\n";
  }
  return os.str();
}

}  // namespace qyolo
