#include "quant/weight_refit.h"

#include <oneapi/dnnl/dnnl.h>

#include <cmath>
#include <cstdio>
#include <map>

#include "ir/ops/conv2d.h"
#include "quant/int8_dataflow.h"
#include "quant/quant_params.h"
#include "runtime/detector.h"
#include "runtime/engine_impl.h"
#include "runtime/image_source.h"

namespace qyolo {

namespace {

// One INT8 conv's geometry and its accumulated statistics over the sampled patches.
struct ConvFit {
  std::string node, input, weight, bias;  // names in the prepared graph ("" bias: none)
  Int8Grid grid;                          // the INT8 conv's input grid (scale, zero point)
  ConvAttrs attrs;
  Shape x_shape, w_shape;
  int64_t d = 0;                 // patch length (+1 with a bias)
  std::vector<double> a, b, c;   // sum q q^T, sum x q^T, sum x x^T (d x d)
  std::vector<float> xp, qp, t;  // per-image patch matrices (P x d) and a d x d product
};

// Samples output positions on a grid of step `step` shifted by `offset` and writes the patches of
// x and of Q(x) row by row; returns the number of rows.
int64_t gather_patches(ConvFit& f, const float* x, int64_t step, int64_t offset) {
  const int64_t cin = f.x_shape[1], ih = f.x_shape[2], iw = f.x_shape[3];
  const int64_t kh = f.w_shape[2], kw = f.w_shape[3];
  const auto& win = f.attrs.window;
  const int64_t oh = f.attrs.out_shape[2], ow = f.attrs.out_shape[3];
  int64_t rows = 0;
  for (int64_t y = offset % step; y < oh; y += step)
    for (int64_t xo = offset % step; xo < ow; xo += step) {
      float* px = f.xp.data() + rows * f.d;
      float* pq = f.qp.data() + rows * f.d;
      int64_t j = 0;
      for (int64_t ci = 0; ci < cin; ++ci)
        for (int64_t ky = 0; ky < kh; ++ky)
          for (int64_t kx = 0; kx < kw; ++kx, ++j) {
            const int64_t iy = y * win.strides[0] - win.pads_begin[0] + ky * win.dilations[0];
            const int64_t ix = xo * win.strides[1] - win.pads_begin[1] + kx * win.dilations[1];
            const float v = (iy >= 0 && iy < ih && ix >= 0 && ix < iw) ? x[(ci * ih + iy) * iw + ix] : 0.f;
            px[j] = v;
            pq[j] = dequantize_int8(quantize_int8(v, f.grid.scale, f.grid.zero_point), f.grid.scale,
                                    f.grid.zero_point);
          }
      if (!f.bias.empty()) px[j] = pq[j] = 1.f;
      ++rows;
    }
  return rows;
}

// sum += l^T r over `rows` rows (l, r: rows x d, row-major); t is d x d scratch.
void accumulate(std::vector<double>& sum, const float* l, const float* r, int64_t rows, int64_t d,
                std::vector<float>& t) {
  dnnl_sgemm('T', 'N', d, d, rows, 1.f, l, d, r, d, 0.f, t.data(), d);
  for (size_t i = 0; i < sum.size(); ++i) sum[i] += t[i];
}

// The weights [W b] of a conv as a Cout x d matrix (double).
std::vector<double> weight_matrix(const ConvFit& f, const Tensor& w, const Tensor* b) {
  const int64_t cout = f.w_shape[0], k = w.numel() / cout;
  std::vector<double> m(static_cast<size_t>(cout * f.d));
  for (int64_t o = 0; o < cout; ++o) {
    for (int64_t j = 0; j < k; ++j) m[static_cast<size_t>(o * f.d + j)] = w.data<float>()[o * k + j];
    if (b) m[static_cast<size_t>(o * f.d + k)] = b->data<float>()[o];
  }
  return m;
}

// sum ||W x - V q||^2 from the statistics: tr(W C W^T) - 2 tr(W B V^T) + tr(V A V^T).
double residual(const ConvFit& f, const std::vector<double>& w, const std::vector<double>& v) {
  const int64_t cout = f.w_shape[0], d = f.d;
  double r = 0;
  std::vector<double> tw(static_cast<size_t>(d)), tv(static_cast<size_t>(d));
  for (int64_t o = 0; o < cout; ++o) {
    const double* wo = w.data() + o * d;
    const double* vo = v.data() + o * d;
    for (int64_t i = 0; i < d; ++i) {
      double cw = 0, bv = 0, av = 0;
      for (int64_t j = 0; j < d; ++j) {
        cw += f.c[static_cast<size_t>(i * d + j)] * wo[j];
        bv += f.b[static_cast<size_t>(i * d + j)] * vo[j];
        av += f.a[static_cast<size_t>(i * d + j)] * vo[j];
      }
      r += wo[i] * cw - 2 * wo[i] * bv + vo[i] * av;
    }
  }
  return r;
}

}  // namespace

Result<std::vector<double>> solve_spd(std::vector<double> a, std::vector<double> r, int64_t n, int64_t m,
                                      double ridge_abs) {
  for (int64_t i = 0; i < n; ++i) a[static_cast<size_t>(i * n + i)] += ridge_abs;
  // Cholesky A = L L^T in place (lower triangle).
  for (int64_t j = 0; j < n; ++j) {
    double s = a[static_cast<size_t>(j * n + j)];
    for (int64_t k = 0; k < j; ++k)
      s -= a[static_cast<size_t>(j * n + k)] * a[static_cast<size_t>(j * n + k)];
    if (!(s > 0))
      return invalid_argument("least-squares refit: matrix not positive definite at row " +
                              std::to_string(j));
    const double l = std::sqrt(s);
    a[static_cast<size_t>(j * n + j)] = l;
    for (int64_t i = j + 1; i < n; ++i) {
      double t = a[static_cast<size_t>(i * n + j)];
      for (int64_t k = 0; k < j; ++k)
        t -= a[static_cast<size_t>(i * n + k)] * a[static_cast<size_t>(j * n + k)];
      a[static_cast<size_t>(i * n + j)] = t / l;
    }
  }
  // L Y = R, then L^T Z = Y, column by column of R.
  for (int64_t c = 0; c < m; ++c) {
    for (int64_t i = 0; i < n; ++i) {
      double t = r[static_cast<size_t>(i * m + c)];
      for (int64_t k = 0; k < i; ++k)
        t -= a[static_cast<size_t>(i * n + k)] * r[static_cast<size_t>(k * m + c)];
      r[static_cast<size_t>(i * m + c)] = t / a[static_cast<size_t>(i * n + i)];
    }
    for (int64_t i = n - 1; i >= 0; --i) {
      double t = r[static_cast<size_t>(i * m + c)];
      for (int64_t k = i + 1; k < n; ++k)
        t -= a[static_cast<size_t>(k * n + i)] * r[static_cast<size_t>(k * m + c)];
      r[static_cast<size_t>(i * m + c)] = t / a[static_cast<size_t>(i * n + i)];
    }
  }
  return r;
}

Result<WeightOverrides> refit_int8_weights(const std::string& onnx_path, const BuildOptions& int8_options,
                                           const WeightOverrides& base,
                                           const std::vector<std::string>& image_files, int input_h,
                                           int input_w, const RefitOptions& options, RefitReport* report,
                                           const RefineLogFn& log) {
  if (image_files.empty()) return invalid_argument("the weight refit needs calibration images");
  if (options.max_positions < 1) return invalid_argument("the weight refit needs max_positions >= 1");
  BuildOptions q_options = int8_options;
  q_options.device = Device::kCpu;
  q_options.int8_fp16 = q_options.int8_all = false;
  q_options.weight_clip = false;
  BuildOptions fp32_options = q_options;
  fp32_options.precision = Precision::kFp32;
  fp32_options.calibration_file.clear();
  fp32_options.float_layers_regex.clear();
  fp32_options.weights_file.clear();
  const Shape shape = {1, 3, input_h, input_w};
  QYOLO_ASSIGN_OR_RETURN(auto int8, build_engine_with_weights(onnx_path, q_options, base));
  QYOLO_ASSIGN_OR_RETURN(auto fp32, build_engine_with_weights(onnx_path, fp32_options, {}));
  QYOLO_ASSIGN_OR_RETURN(SpecializedGraph qg, int8->impl().prepare(shape));
  QYOLO_ASSIGN_OR_RETURN(SpecializedGraph fg, fp32->impl().prepare(shape));

  // The INT8 convs (group 1, 2-D), their scales from the INT8 graph, weights from the FP32 one.
  std::map<std::string, Int8Grid> scale_of;
  for (const Node& n : qg.graph.nodes)
    if (n.op_type == "Conv" && n.has_attr("qyolo_input_scale")) {
      QYOLO_ASSIGN_OR_RETURN(scale_of[n.name], conv_input_grid(n));
    }
  std::vector<ConvFit> fits;
  for (const Node& n : fg.graph.nodes) {
    if (n.op_type != "Conv" || !scale_of.count(n.name)) continue;
    ConvFit f;
    f.node = n.name;
    f.input = n.inputs[0];
    f.weight = n.inputs[1];
    if (n.has_input(2) && fg.graph.initializers.count(n.inputs[2])) f.bias = n.inputs[2];
    f.grid = scale_of[n.name];
    f.x_shape = fg.values.at(f.input).shape;
    f.w_shape = fg.values.at(f.weight).shape;
    if (f.x_shape.size() != 4 || f.w_shape.size() != 4 || !fg.graph.initializers.count(f.weight)) continue;
    QYOLO_ASSIGN_OR_RETURN(f.attrs, ConvAttrs::parse(n, f.x_shape, f.w_shape));
    if (f.attrs.group != 1) continue;
    f.d = f.w_shape[1] * f.w_shape[2] * f.w_shape[3] + (f.bias.empty() ? 0 : 1);
    const size_t dd = static_cast<size_t>(f.d * f.d);
    f.a.assign(dd, 0.0);
    f.b.assign(dd, 0.0);
    f.c.assign(dd, 0.0);
    f.t.resize(dd);
    fits.push_back(std::move(f));
  }
  std::map<std::string, std::vector<size_t>> readers;  // input tensor -> fits reading it
  for (size_t i = 0; i < fits.size(); ++i) readers[fits[i].input].push_back(i);

  QYOLO_ASSIGN_OR_RETURN(auto exec, CpuExecutor::build(std::move(fg)));
  const std::string input_name = fp32->info().input_name;
  int64_t image_index = 0;
  auto observe = [&](const std::string& name, const Tensor& t) {
    auto it = readers.find(name);
    if (it == readers.end() || t.dtype() != DataType::kFloat32) return;
    for (size_t k : it->second) {
      ConvFit& f = fits[k];
      const int64_t positions = f.attrs.out_shape[2] * f.attrs.out_shape[3];
      const int64_t step = std::max<int64_t>(
          1,
          static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(positions) / options.max_positions))));
      const int64_t max_rows =
          ((f.attrs.out_shape[2] + step - 1) / step) * ((f.attrs.out_shape[3] + step - 1) / step);
      f.xp.resize(static_cast<size_t>(max_rows * f.d));
      f.qp.resize(static_cast<size_t>(max_rows * f.d));
      const int64_t rows = gather_patches(f, t.data<float>(), step, image_index);
      accumulate(f.a, f.qp.data(), f.qp.data(), rows, f.d, f.t);
      accumulate(f.b, f.xp.data(), f.qp.data(), rows, f.d, f.t);
      accumulate(f.c, f.xp.data(), f.xp.data(), rows, f.d, f.t);
    }
  };
  for (const auto& file : image_files) {
    QYOLO_ASSIGN_OR_RETURN(Image img, load_image(file));
    Tensor input = Detector::preprocess({&img}, input_h, input_w, nullptr);
    observe(input_name, input);  // the first conv reads the network input
    std::map<std::string, Tensor> outputs;
    QYOLO_RETURN_IF_ERROR(exec->run({{input_name, input}}, outputs, observe));
    ++image_index;
  }

  WeightOverrides out = base;
  RefitReport rep;
  rep.images = static_cast<int>(image_files.size());
  const SpecializedGraph& g = exec->graph();
  for (ConvFit& f : fits) {
    f.xp.clear();
    f.qp.clear();
    const Tensor& w = g.graph.initializers.at(f.weight);
    const Tensor* b = f.bias.empty() ? nullptr : &g.graph.initializers.at(f.bias);
    const int64_t cout = f.w_shape[0], d = f.d;
    const std::vector<double> wm = weight_matrix(f, w, b);
    // R = B^T W^T + ridge W^T (d x cout).
    double diag = 0;
    for (int64_t i = 0; i < d; ++i) diag += f.a[static_cast<size_t>(i * d + i)];
    const double ridge = options.ridge * std::max(diag / static_cast<double>(d), 1e-12);
    std::vector<double> r(static_cast<size_t>(d * cout), 0.0);
    for (int64_t i = 0; i < d; ++i)
      for (int64_t o = 0; o < cout; ++o) {
        double s = ridge * wm[static_cast<size_t>(o * d + i)];
        for (int64_t j = 0; j < d; ++j)
          s += f.b[static_cast<size_t>(j * d + i)] * wm[static_cast<size_t>(o * d + j)];
        r[static_cast<size_t>(i * cout + o)] = s;
      }
    QYOLO_ASSIGN_OR_RETURN(std::vector<double> z, solve_spd(f.a, std::move(r), d, cout, ridge));
    std::vector<double> vm(static_cast<size_t>(cout * d));
    for (int64_t o = 0; o < cout; ++o)
      for (int64_t i = 0; i < d; ++i)
        vm[static_cast<size_t>(o * d + i)] = z[static_cast<size_t>(i * cout + o)];
    double signal = 0;  // sum ||W x||^2 = tr(W C W^T)
    {
      std::vector<double> zero(wm.size(), 0.0);
      signal = residual(f, wm, zero);
    }
    RefitReport::Conv c{f.node, residual(f, wm, wm) / std::max(signal, 1e-30),
                        residual(f, wm, vm) / std::max(signal, 1e-30)};
    rep.per_conv.push_back(c);
    rep.residual_before += c.before;
    rep.residual_after += c.after;
    ++rep.convs;
    Tensor nw(DataType::kFloat32, w.shape());
    const int64_t k = w.numel() / cout;
    for (int64_t o = 0; o < cout; ++o)
      for (int64_t j = 0; j < k; ++j)
        nw.data<float>()[o * k + j] = static_cast<float>(vm[static_cast<size_t>(o * d + j)]);
    out[f.weight] = std::move(nw);
    if (b) {
      Tensor nb(DataType::kFloat32, b->shape());
      for (int64_t o = 0; o < cout; ++o)
        nb.data<float>()[o] = static_cast<float>(vm[static_cast<size_t>(o * d + k)]);
      out[f.bias] = std::move(nb);
    }
    if (log) {
      char line[300];
      std::snprintf(line, sizeof line, "refit %s: relative residual %.3g -> %.3g (d %lld)", f.node.c_str(),
                    c.before, c.after, static_cast<long long>(d));
      log(line);
    }
    f.a.clear();
    f.b.clear();
    f.c.clear();
  }
  if (rep.convs) {
    rep.residual_before /= rep.convs;
    rep.residual_after /= rep.convs;
  }
  if (report) *report = rep;
  return out;
}

}  // namespace qyolo
