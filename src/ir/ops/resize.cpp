#include "ir/ops/resize.h"

#include <cmath>

#include "ir/op_registry.h"

namespace qyolo {

Result<ResizeAttrs> ResizeAttrs::parse(const Node& node, const Shape& x,
                                       const std::optional<std::vector<float>>& roi,
                                       const std::optional<std::vector<float>>& scales,
                                       const std::optional<std::vector<int64_t>>& sizes) {
  auto err = [&](const std::string& what) { return invalid_argument(node.describe() + ": " + what); };
  const size_t rank = x.size();
  const bool legacy = node.op_type == "Upsample" || node.inputs.size() == 2;  // Upsample / Resize-10
  ResizeAttrs a;
  QYOLO_ASSIGN_OR_RETURN(std::string mode, node.attr_string("mode", std::string("nearest")));
  if (mode == "nearest") {
    a.mode = ResizeMode::kNearest;
  } else if (mode == "linear" || (legacy && mode == "bilinear")) {
    a.mode = ResizeMode::kLinear;
  } else if (mode == "cubic" && !legacy) {
    a.mode = ResizeMode::kCubic;
  } else {
    return err("unsupported mode '" + mode + "'");
  }
  if (legacy) {
    a.coord = ResizeCoordMode::kAsymmetric;
    a.nearest = ResizeNearestMode::kSimple;
  } else {
    QYOLO_ASSIGN_OR_RETURN(std::string cm,
                           node.attr_string("coordinate_transformation_mode", std::string("half_pixel")));
    if (cm == "half_pixel") {
      a.coord = ResizeCoordMode::kHalfPixel;
    } else if (cm == "pytorch_half_pixel") {
      a.coord = ResizeCoordMode::kPytorchHalfPixel;
    } else if (cm == "align_corners") {
      a.coord = ResizeCoordMode::kAlignCorners;
    } else if (cm == "asymmetric") {
      a.coord = ResizeCoordMode::kAsymmetric;
    } else if (cm == "tf_half_pixel_for_nn") {
      a.coord = ResizeCoordMode::kTfHalfPixelForNN;
    } else if (cm == "tf_crop_and_resize") {
      a.coord = ResizeCoordMode::kTfCropAndResize;
    } else if (cm == "half_pixel_symmetric") {
      a.coord = ResizeCoordMode::kHalfPixelSymmetric;
    } else {
      return err("unknown coordinate_transformation_mode '" + cm + "'");
    }
    QYOLO_ASSIGN_OR_RETURN(std::string nm,
                           node.attr_string("nearest_mode", std::string("round_prefer_floor")));
    if (nm == "round_prefer_floor") {
      a.nearest = ResizeNearestMode::kRoundPreferFloor;
    } else if (nm == "round_prefer_ceil") {
      a.nearest = ResizeNearestMode::kRoundPreferCeil;
    } else if (nm == "floor") {
      a.nearest = ResizeNearestMode::kFloor;
    } else if (nm == "ceil") {
      a.nearest = ResizeNearestMode::kCeil;
    } else {
      return err("unknown nearest_mode '" + nm + "'");
    }
    QYOLO_ASSIGN_OR_RETURN(a.cubic_coeff_a, node.attr_float("cubic_coeff_a", -0.75f));
    QYOLO_ASSIGN_OR_RETURN(int64_t excl, node.attr_int("exclude_outside", 0));
    a.exclude_outside = excl != 0;
    QYOLO_ASSIGN_OR_RETURN(a.extrapolation_value, node.attr_float("extrapolation_value", 0.f));
    if (node.has_attr("axes") || node.has_attr("keep_aspect_ratio_policy") || node.has_attr("antialias")) {
      QYOLO_ASSIGN_OR_RETURN(int64_t antialias, node.attr_int("antialias", 0));
      QYOLO_ASSIGN_OR_RETURN(std::string policy,
                             node.attr_string("keep_aspect_ratio_policy", std::string("stretch")));
      if (node.has_attr("axes") || antialias != 0 || policy != "stretch")
        return unsupported(node.describe() +
                           ": opset 18 attributes axes/antialias/keep_aspect_ratio_policy are not supported");
    }
  }

  a.scales.assign(rank, 1.0);
  a.out_shape = x;
  if (sizes) {
    if (scales) return err("scales and sizes must not both be given");
    if (sizes->size() != rank)
      return err("sizes has " + std::to_string(sizes->size()) + " values for input " + shape_str(x));
    for (size_t d = 0; d < rank; ++d) {
      if ((*sizes)[d] < 0) return err("sizes must be non-negative");
      a.out_shape[d] = (*sizes)[d];
      a.scales[d] = x[d] == 0 ? 1.0 : static_cast<double>((*sizes)[d]) / static_cast<double>(x[d]);
    }
  } else if (scales) {
    if (scales->size() != rank)
      return err("scales has " + std::to_string(scales->size()) + " values for input " + shape_str(x));
    for (size_t d = 0; d < rank; ++d) {
      double s = (*scales)[d];
      if (!(s > 0) || !std::isfinite(s)) return err("scales must be positive and finite");
      const double out = std::floor(s * static_cast<double>(x[d]));
      if (out >= 0x1p40)  // dims are < 2^34: this is a shape no tensor may have, and no int64 overflow
        return err("scale " + std::to_string(s) + " makes dim " + std::to_string(d) + " of " + shape_str(x) +
                   " too large");
      a.scales[d] = s;
      a.out_shape[d] = static_cast<int64_t>(out);
    }
  } else {
    return err("one of scales and sizes is required");
  }
  if (a.coord == ResizeCoordMode::kTfCropAndResize) {
    if (!roi || roi->size() != 2 * rank)
      return err("tf_crop_and_resize needs roi with " + std::to_string(2 * rank) + " values");
    a.roi.assign(roi->begin(), roi->end());
  }
  return a;
}

double ResizeAttrs::source_coord(size_t d, int64_t x, int64_t in) const {
  const double s = scales[d];
  const double xd = static_cast<double>(x);
  const double out_len = s * static_cast<double>(in);  // the reference uses the real-valued length
  switch (coord) {
    case ResizeCoordMode::kHalfPixel:
      return (xd + 0.5) / s - 0.5;
    case ResizeCoordMode::kPytorchHalfPixel:
      return out_len == 1.0 ? -0.5 : (xd + 0.5) / s - 0.5;
    case ResizeCoordMode::kAlignCorners:
      return out_len == 1.0 ? 0.0 : xd * static_cast<double>(in - 1) / (out_len - 1.0);
    case ResizeCoordMode::kAsymmetric:
      return xd / s;
    case ResizeCoordMode::kTfHalfPixelForNN:
      return (xd + 0.5) / s;
    case ResizeCoordMode::kTfCropAndResize: {
      const size_t rank = roi.size() / 2;
      const double start = roi[d], end = roi[d + rank];
      const double len = static_cast<double>(in - 1);
      if (out_len == 1.0) return (end - start) * len / 2.0 + start * len;
      return xd * (end - start) * len / (out_len - 1.0) + start * len;
    }
    case ResizeCoordMode::kHalfPixelSymmetric: {
      const double adjustment = static_cast<double>(out_shape[d]) / out_len;
      const double center = static_cast<double>(in) / 2.0;
      const double offset = center * (1.0 - adjustment);
      return offset + (xd + 0.5) / s - 0.5;
    }
  }
  return xd / s;
}

int64_t ResizeAttrs::nearest_index(size_t d, double c, int64_t in) const {
  const double fl = std::floor(c);
  const double frac = c - fl;
  double r = fl;  // every mode below sets it (initialised for -Wmaybe-uninitialized)
  switch (nearest) {
    case ResizeNearestMode::kRoundPreferFloor:
      r = frac <= 0.5 ? fl : fl + 1.0;
      break;
    case ResizeNearestMode::kRoundPreferCeil:
      r = frac < 0.5 ? fl : fl + 1.0;
      break;
    case ResizeNearestMode::kFloor:
      r = fl;
      break;
    case ResizeNearestMode::kCeil:
      r = std::ceil(c);
      break;
    case ResizeNearestMode::kSimple:
      r = scales[d] < 1.0 ? std::ceil(c) : fl;
      break;
  }
  if (frac == 0.0) r = c;
  int64_t i = static_cast<int64_t>(r);
  return i < 0 ? 0 : (i >= in ? in - 1 : i);
}

Status infer_resize(InferContext& ctx) {
  const ValueDesc* x = ctx.input(0);
  std::optional<std::vector<float>> roi, scales;
  std::optional<std::vector<int64_t>> sizes;
  auto const_floats = [&](size_t i) -> Result<std::optional<std::vector<float>>> {
    const ValueDesc* d = ctx.input(i);
    if (d == nullptr) return std::optional<std::vector<float>>();
    if (!d->value)
      return unsupported(ctx.node.describe() + ": input " + std::to_string(i) + " ('" + ctx.node.inputs[i] +
                         "') must be a constant (data-dependent shapes are not supported)");
    if (d->value->numel() == 0) return std::optional<std::vector<float>>();
    return std::optional<std::vector<float>>(d->value->to_float_vector());
  };
  const bool legacy = ctx.node.op_type == "Upsample" || ctx.node.inputs.size() == 2;
  if (legacy) {
    QYOLO_ASSIGN_OR_RETURN(scales, const_floats(1));
  } else {
    QYOLO_ASSIGN_OR_RETURN(roi, const_floats(1));
    QYOLO_ASSIGN_OR_RETURN(scales, const_floats(2));
    if (ctx.input(3) != nullptr) {
      QYOLO_ASSIGN_OR_RETURN(auto v, ctx.const_ints(3));
      if (!v.empty()) sizes = std::move(v);
    }
  }
  QYOLO_ASSIGN_OR_RETURN(ResizeAttrs a, ResizeAttrs::parse(ctx.node, x->shape, roi, scales, sizes));
  if (a.mode != ResizeMode::kNearest && x->dtype != DataType::kFloat32)
    return unsupported(ctx.node.describe() + ": linear/cubic resize supports float32 only, got " +
                       dtype_name(x->dtype));
  ctx.outputs[0].dtype = x->dtype;
  ctx.outputs[0].shape = a.out_shape;
  return Status::ok();
}

}  // namespace qyolo
