#include "ir/precision_plan.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>

namespace qyolo {

// Plan section (little-endian; str = u64 length + bytes):
//   u32 plan version (1) | u32 float precision
//   | u64 n, n x (str node, u32 precision)
//   | u64 n, n x (str tensor, u32 storage dtype, f32 scale[, i32 zero point: version 2])
// Version 1 (no zero points) is still read; a plan with a zero point is written as version 2.
namespace {

constexpr uint32_t kPlanVersionSymmetric = 1, kPlanVersion = 2;

void put_u32(std::string& b, uint32_t v) {
  b.append(reinterpret_cast<const char*>(&v), 4);
}
void put_u64(std::string& b, uint64_t v) {
  b.append(reinterpret_cast<const char*>(&v), 8);
}
void put_str(std::string& b, const std::string& s) {
  put_u64(b, s.size());
  b += s;
}

class PlanReader {
 public:
  PlanReader(const std::string& b, const std::string& where) : b_(b), where_(where) {}
  Status error(const std::string& what) const { return corrupt(where_ + ": precision plan: " + what); }
  Status need(size_t n, const std::string& what) const {
    if (n > b_.size() - pos_) return error("truncated (" + what + ")");
    return Status::ok();
  }
  Result<uint32_t> u32(const std::string& what) {
    QYOLO_RETURN_IF_ERROR(need(4, what));
    uint32_t v;
    std::memcpy(&v, b_.data() + pos_, 4);
    pos_ += 4;
    return v;
  }
  Result<uint64_t> u64(const std::string& what) {
    QYOLO_RETURN_IF_ERROR(need(8, what));
    uint64_t v;
    std::memcpy(&v, b_.data() + pos_, 8);
    pos_ += 8;
    return v;
  }
  Result<float> f32(const std::string& what) {
    QYOLO_ASSIGN_OR_RETURN(uint32_t bits, u32(what));
    float v;
    std::memcpy(&v, &bits, 4);
    return v;
  }
  Result<std::string> str(const std::string& what) {
    QYOLO_ASSIGN_OR_RETURN(uint64_t n, u64(what));
    QYOLO_RETURN_IF_ERROR(need(n, what));
    std::string s = b_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  size_t remaining() const { return b_.size() - pos_; }

 private:
  const std::string& b_;
  const std::string& where_;
  size_t pos_ = 0;
};

bool valid_storage(uint32_t dtype) {
  const auto t = static_cast<DataType>(dtype);
  return dtype <= static_cast<uint32_t>(DataType::kBool) &&
         (t == DataType::kFloat32 || t == DataType::kFloat16 || t == DataType::kInt8);
}

std::string float_str(float v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.9g", static_cast<double>(v));
  return buf;
}

}  // namespace

const char* node_precision_name(NodePrecision p) {
  switch (p) {
    case NodePrecision::kFp32:
      return "fp32";
    case NodePrecision::kFp16:
      return "fp16";
    case NodePrecision::kInt8:
      return "int8";
  }
  return "?";
}

NodePrecision PrecisionPlan::precision_of(const std::string& node) const {
  auto it = nodes.find(node);
  return it == nodes.end() ? float_precision : it->second;
}

float PrecisionPlan::scale_of(const std::string& tensor) const {
  auto it = tensors.find(tensor);
  return it == tensors.end() ? 0.f : it->second.scale;
}

std::string serialize_precision_plan(const PrecisionPlan& plan) {
  std::string b;
  bool any_zero_point = false;
  for (const auto& [name, t] : plan.tensors) any_zero_point |= t.zero_point != 0;
  // Symmetric plans keep version 1, which engines written before zero points read too.
  const uint32_t version = any_zero_point ? kPlanVersion : kPlanVersionSymmetric;
  put_u32(b, version);
  put_u32(b, static_cast<uint32_t>(plan.float_precision));
  put_u64(b, plan.nodes.size());
  for (const auto& [name, p] : plan.nodes) {
    put_str(b, name);
    put_u32(b, static_cast<uint32_t>(p));
  }
  put_u64(b, plan.tensors.size());
  for (const auto& [name, t] : plan.tensors) {
    put_str(b, name);
    put_u32(b, static_cast<uint32_t>(t.storage));
    uint32_t bits;
    std::memcpy(&bits, &t.scale, 4);
    put_u32(b, bits);
    if (version >= 2) put_u32(b, static_cast<uint32_t>(t.zero_point));
  }
  return b;
}

Result<PrecisionPlan> parse_precision_plan(const std::string& bytes, const std::string& where) {
  PlanReader rd(bytes, where);
  QYOLO_ASSIGN_OR_RETURN(uint32_t version, rd.u32("version"));
  if (version != kPlanVersion && version != kPlanVersionSymmetric)
    return rd.error("version " + std::to_string(version) + ", expected " +
                    std::to_string(kPlanVersionSymmetric) + " or " + std::to_string(kPlanVersion));
  PrecisionPlan plan;
  QYOLO_ASSIGN_OR_RETURN(uint32_t fp, rd.u32("float precision"));
  if (fp > static_cast<uint32_t>(NodePrecision::kFp16))
    return rd.error("bad float precision " + std::to_string(fp) + " (expected 0 fp32 or 1 fp16)");
  plan.float_precision = static_cast<NodePrecision>(fp);
  QYOLO_ASSIGN_OR_RETURN(uint64_t n_nodes, rd.u64("node count"));
  if (n_nodes > rd.remaining() / 12) return rd.error("truncated (" + std::to_string(n_nodes) + " nodes)");
  for (uint64_t i = 0; i < n_nodes; ++i) {
    QYOLO_ASSIGN_OR_RETURN(std::string name, rd.str("node name"));
    QYOLO_ASSIGN_OR_RETURN(uint32_t p, rd.u32("node '" + name + "'"));
    if (name.empty()) return rd.error("a node entry without a name");
    if (p > static_cast<uint32_t>(NodePrecision::kInt8))
      return rd.error("node '" + name + "' has precision " + std::to_string(p) +
                      " (expected 0 fp32, 1 fp16 or 2 int8)");
    if (!plan.nodes.emplace(name, static_cast<NodePrecision>(p)).second)
      return rd.error("node '" + name + "' is listed twice");
  }
  QYOLO_ASSIGN_OR_RETURN(uint64_t n_tensors, rd.u64("tensor count"));
  if (n_tensors > rd.remaining() / (version >= 2 ? 20 : 16))
    return rd.error("truncated (" + std::to_string(n_tensors) + " tensors)");
  for (uint64_t i = 0; i < n_tensors; ++i) {
    QYOLO_ASSIGN_OR_RETURN(std::string name, rd.str("tensor name"));
    QYOLO_ASSIGN_OR_RETURN(uint32_t dtype, rd.u32("tensor '" + name + "'"));
    QYOLO_ASSIGN_OR_RETURN(float scale, rd.f32("tensor '" + name + "'"));
    int32_t zero_point = 0;
    if (version >= 2) {
      QYOLO_ASSIGN_OR_RETURN(uint32_t zp, rd.u32("tensor '" + name + "' zero point"));
      zero_point = static_cast<int32_t>(zp);
    }
    if (name.empty()) return rd.error("a tensor entry without a name");
    if (zero_point < -128 || zero_point > 127 || (zero_point != 0 && scale == 0.f))
      return rd.error("tensor '" + name + "' has zero point " + std::to_string(zero_point) +
                      " (expected -128..127, and a scale)");
    if (!valid_storage(dtype))
      return rd.error("tensor '" + name + "' has storage dtype " + std::to_string(dtype) +
                      " (expected float32, float16 or int8)");
    // 0: not quantised; anything else must be a usable scale (positive, normal, finite).
    if (scale != 0.f && !(std::isnormal(scale) && scale > 0.f))
      return rd.error("tensor '" + name + "' has scale " + float_str(scale) +
                      ", not a positive normal float");
    TensorPlan t{static_cast<DataType>(dtype), scale, zero_point};
    if (t.storage == DataType::kInt8 && scale == 0.f)
      return rd.error("tensor '" + name + "' is stored int8 without a scale");
    if (!plan.tensors.emplace(name, t).second) return rd.error("tensor '" + name + "' is listed twice");
  }
  if (rd.remaining() != 0)
    return rd.error(std::to_string(rd.remaining()) + " unexpected bytes after the tensor entries");
  return plan;
}

std::string format_precision_plan(const PrecisionPlan& plan) {
  std::ostringstream os;
  os << "precision plan: " << plan.nodes.size() << " nodes, " << plan.tensors.size()
     << " tensors; other nodes " << node_precision_name(plan.float_precision) << "\n";
  for (const auto& [name, p] : plan.nodes)
    os << "  node    " << name << "  " << node_precision_name(p) << "\n";
  for (const auto& [name, t] : plan.tensors) {
    os << "  tensor  " << name << "  " << dtype_name(t.storage);
    if (t.scale > 0.f) os << "  scale " << float_str(t.scale);
    if (t.zero_point != 0) os << "  zero point " << t.zero_point;
    os << "\n";
  }
  return os.str();
}

}  // namespace qyolo
