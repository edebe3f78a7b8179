// CudaExecutor build stage: nodes -> launch steps (values, conversions, constants, prepared kernels).
#include "backends/cuda/executor_impl.h"
#include "ir/ops/conv2d.h"
#include "ir/ops/image_to_float.h"

namespace qyolo {

using cuda::Layout;
using cuda::TensorInfo;
using namespace cuda_exec;

// Host bytes of `t` in device dtype `dtype` (float <-> half conversion, int -> float for
// constants feeding arithmetic).
Result<std::vector<uint8_t>> cuda_exec::constant_bytes(const Tensor& t, DataType dtype) {
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

int CudaExecutor::Impl::add_value(const std::string& name, TensorInfo info, Storage storage) {
  Value v;
  v.name = name;
  v.info = std::move(info);
  v.storage = storage;
  ex.values_.push_back(std::move(v));
  return static_cast<int>(ex.values_.size()) - 1;
}

// Device copy of constant `name` in `dtype` (plain layout).
Result<int> CudaExecutor::Impl::constant_value(const std::string& name, DataType dtype) {
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
Result<int> CudaExecutor::Impl::as(int v, DataType dtype, Layout layout) {
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

Status CudaExecutor::Impl::add_convert_step(int in, int out, const std::string& label) {
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

// The conv-input copies above (one step each, memoised per value): quantised when `scale` is
// given, half otherwise.
Result<int> CudaExecutor::Impl::packed_input(int v, int s2d, std::optional<float> scale) {
  auto key = std::make_tuple(v, scale.value_or(0.f), s2d);
  if (auto it = quantized_values.find(key); it != quantized_values.end()) return it->second;
  const TensorInfo vi = ex.values_[static_cast<size_t>(v)].info;
  if (vi.shape.size() != 4 || !is_float(vi.dtype))
    return internal_error("conv input '" + ex.values_[static_cast<size_t>(v)].name +
                          "' is not a 4-D float value");
  int src = v;
  if (vi.layout == Layout::kStrided) {
    QYOLO_ASSIGN_OR_RETURN(src, as(v, vi.dtype, Layout::kNHWC));
  }
  Shape qs = vi.shape;
  qs[1] = (qs[1] * s2d * s2d + 15) / 16 * 16;
  qs[2] /= s2d;
  qs[3] /= s2d;
  const bool to_half = !scale.has_value();
  const std::string name =
      ex.values_[static_cast<size_t>(v)].name + (to_half ? "#half" : "#int8") + (s2d > 1 ? "_s2d" : "");
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

void CudaExecutor::Impl::compute_reaches_conv() {
  const Graph& g = ex.graph_.graph;
  for (auto it = g.nodes.rbegin(); it != g.nodes.rend(); ++it) {
    bool r = it->op_type == "Conv";
    for (const auto& o : it->outputs) r = r || reaches_conv.count(o);
    if (r)
      for (const auto& in : it->inputs)
        if (!in.empty()) reaches_conv.insert(in);
  }
}

DataType CudaExecutor::Impl::output_dtype(const Node& node, const std::string& out,
                                          DataType onnx_dtype) const {
  if (onnx_dtype != DataType::kFloat32) return onnx_dtype;
  if (ex.options_.precision == CudaPrecision::kFp32) return DataType::kFloat32;
  // The float image stays fp32 in every precision: what the direct stem kernel reads (which then
  // reads the bytes instead, fuse_image_input), and what the CPU computes.
  if (node.op_type == kImageToFloatOp) return DataType::kFloat32;
  if (ex.options_.precision == CudaPrecision::kInt8 && !ex.options_.int8_fp16) return DataType::kFloat32;
  if (int8_conv(node)) return int8_output_dtype(node);
  if (node.op_type == "Conv" || !ex.options_.fp32_tail || reaches_conv.count(out)) return DataType::kFloat16;
  return DataType::kFloat32;
}

Status CudaExecutor::Impl::add_node(const Node& node, bool nhwc) {
  const Graph& g = ex.graph_.graph;
  const cuda::CudaOpTraits* tr = cuda::find_cuda_op(node.op_type);
  if (tr == nullptr || !cuda_supports(node)) {
    std::string list;
    for (const auto& op : cuda_supported_ops()) list += (list.empty() ? "" : ", ") + op;
    return unsupported(node.describe() + ": the CUDA backend has no kernel for this op" +
                       (tr ? std::string(" with these attributes") : std::string()) + " (supported: " + list +
                       ")");
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
    if (dit == ex.graph_.values.end())
      return internal_error(node.describe() + ": output '" + o + "' has no description");
    const ValueDesc& d = dit->second;
    TensorInfo info;
    info.shape = d.shape;
    info.dtype = output_dtype(node, o, d.dtype);
    if (tr->compute && !is_float(info.dtype))
      return unsupported(node.describe() +
                         ": the CUDA backend computes this op on float tensors only, output '" + o + "' is " +
                         dtype_name(d.dtype));
    if (d.shape.size() == 4 && nhwc && (is_conv || (tr->nhwc_output && follow == Layout::kNHWC)))
      info.layout = Layout::kNHWC;
    out_infos.push_back(std::move(info));
  }
  if (tr->alias) out_infos[0].layout = Layout::kPlain;

  const bool stem = is_conv && !is_int8 && direct_stem(node, out_infos[0]);
  const bool image_stem8 = is_int8 && int8_image_stem(node);  // reads the image (then its bytes) as it is
  // Padded output channels (fp16_pad_channels): the conv writes [N, Kp, H, W]; the node's output
  // is a strided view of its first K channels.
  const bool conv4 = is_conv && out_infos[0].shape.size() == 4;
  const int64_t model_channels = conv4 ? out_infos[0].shape[1] : 0;
  if (conv4 && !stem && (!is_int8 || int8_head_padded(node)))
    out_infos[0].shape[1] = computed_channels(node, out_infos[0]);

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
    if (dit == ex.graph_.values.end())
      return internal_error(node.describe() + ": unknown input '" + name + "'");
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
      if (tr->compute)
        cdt = o0.dtype;  // arithmetic on constants happens in the compute type
      else if (is_float(d.dtype) && is_float(o0.dtype))
        cdt = o0.dtype;
      QYOLO_ASSIGN_OR_RETURN(v, constant_value(name, cdt));
    } else {
      auto it = ids.find(name);
      if (it == ids.end())
        return internal_error(node.describe() + ": input '" + name + "' is not computed before it");
      v = it->second;
    }
    const DataType vdt = ex.values_[static_cast<size_t>(v)].info.dtype;
    const Layout vlayout = ex.values_[static_cast<size_t>(v)].info.layout;
    if (tr->compute && !is_float(vdt))
      return unsupported(node.describe() + ": input '" + name + "' is " + dtype_name(vdt) +
                         ", the CUDA backend computes this op on float tensors only");
    if (is_int8 && i == 0 && !image_stem8) {
      QYOLO_ASSIGN_OR_RETURN(float scale, node.attr_float("qyolo_input_scale"));
      QYOLO_ASSIGN_OR_RETURN(v, quantized(v, scale, space_to_depth_factor(node)));
      step.inputs.push_back(v);
      in_infos.push_back(&ex.values_[static_cast<size_t>(v)].info);
      continue;
    }
    if (is_int8 && i == 3 && int8_residual(node)) {  // the residual's int8 copy (see int8_residual)
      QYOLO_ASSIGN_OR_RETURN(float scale, node.attr_float("qyolo_residual_scale"));
      QYOLO_ASSIGN_OR_RETURN(v, quantized(v, scale, 1));
      step.inputs.push_back(v);
      in_infos.push_back(&ex.values_[static_cast<size_t>(v)].info);
      continue;
    }
    if ((stem || image_stem8) && i == 0) {  // the direct stem kernel reads the fp32 image as it is
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
    const std::string name =
        node.outputs[i] + (padded ? "#c" + std::to_string(out_infos[0].shape[1]) : std::string());
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
  if (image_stem8) {
    QYOLO_ASSIGN_OR_RETURN(step.kernel, cuda::make_cuda_conv2d_image_stem_int8(node));
  } else if (is_int8) {
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
Status CudaExecutor::Impl::add_alias_node(const Node& node, const cuda::CudaOpTraits* tr) {
  const Graph& g = ex.graph_.graph;
  if (node.inputs.empty() || node.inputs[0].empty())
    return invalid_argument(node.describe() + ": input 0 is required");
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
    if (it == ids.end())
      return internal_error(node.describe() + ": input '" + name + "' is not computed before it");
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

}  // namespace qyolo
