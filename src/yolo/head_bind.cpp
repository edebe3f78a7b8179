// Binding a head description to a model's output shapes at one input size.
#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "yolo/head.h"
#include "yolo/head_decode.h"

namespace qyolo {

namespace {

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

bool is_decoded(BoxEncoding e) {
  return e == BoxEncoding::kXywh || e == BoxEncoding::kXyxy;
}

struct Level {
  int stride = 1;
  int64_t h = 1, w = 1, a = 1;
  std::vector<float> anchors;
  int64_t points() const { return a * h * w; }
};

// One model output as the head reads it.
struct Entry {
  int output = -1;
  bool explicit_spec = false;  // listed in the description (errors instead of being skipped)
  OutputLayout layout = OutputLayout::kAuto;
  bool flat = false;         // kRows / kColumns: several levels, points concatenated
  int stride = 0;            // one-level outputs
  int64_t h = 0, w = 0;      // one-level outputs
  std::vector<int> strides;  // flat outputs: the levels held (empty = all)
  int64_t channels = 0;      // per anchor
  std::vector<HeadPart> parts;
  Activation activation = Activation::kAuto;
  bool cell_major = false;
  std::vector<float> anchors;
};

struct Binder {
  Binder(const HeadSpec& s, const std::vector<OutputDesc>& o, const HeadBindContext& c)
      : spec(s), outs(o), ctx(c) {}
  const HeadSpec& spec;
  const std::vector<OutputDesc>& outs;
  const HeadBindContext& ctx;
  bool decoded = false;
  int64_t box_ch = 4;
  int obj_ch = 0;
  int nc = -1;
  std::vector<Entry> entries;
  std::vector<Level> levels;
  std::vector<std::string> skipped;  // auto mode: outputs not used, and why

  std::string out_name(int i) const {
    return "'" + outs[static_cast<size_t>(i)].name + "' " + shape_str(outs[static_cast<size_t>(i)].shape);
  }

  Status fail(const Entry& e, const std::string& why) {
    if (e.explicit_spec) return invalid_argument("output " + out_name(e.output) + ": " + why);
    skipped.push_back(out_name(e.output) + ": " + why);
    return Status::ok();
  }

  int64_t part_channels(HeadPart p) const {
    return p == HeadPart::kBox ? box_ch : p == HeadPart::kObj ? 1 : nc;
  }

  // Stage 1: which outputs, their layout and (one-level outputs) stride and cells.
  Status collect() {
    std::vector<Entry> cand;
    if (!spec.outputs.empty()) {
      for (const HeadOutputSpec& o : spec.outputs) {
        Entry e;
        e.explicit_spec = true;
        if (!o.name.empty()) {
          for (size_t i = 0; i < outs.size(); ++i)
            if (outs[i].name == o.name) e.output = static_cast<int>(i);
          if (e.output < 0) {
            std::string list;
            for (const auto& d : outs) list += (list.empty() ? "'" : ", '") + d.name + "'";
            return invalid_argument("the model has no output '" + o.name + "' (outputs: " + list + ")");
          }
        } else {
          if (o.index >= static_cast<int>(outs.size()))
            return invalid_argument("output index " + std::to_string(o.index) +
                                    " is out of range: the model has " + std::to_string(outs.size()) +
                                    " outputs");
          e.output = o.index;
        }
        e.layout = o.layout;
        e.strides = o.strides;
        e.parts = o.parts;
        e.activation = o.activation;
        e.cell_major = o.cell_major;
        e.anchors = o.anchors;
        cand.push_back(std::move(e));
      }
    } else {
      for (size_t i = 0; i < outs.size(); ++i) {
        Entry e;
        e.output = static_cast<int>(i);
        cand.push_back(std::move(e));
      }
    }
    std::set<int> seen;
    for (Entry& e : cand) {
      if (!seen.insert(e.output).second)
        return invalid_argument("output " + out_name(e.output) + " is listed twice in the head description");
      Status st = geometry(e);
      if (!st) {
        QYOLO_RETURN_IF_ERROR(fail(e, st.message()));
        continue;
      }
      entries.push_back(std::move(e));
    }
    if (entries.empty()) return invalid_argument("no output fits" + skipped_list());
    return Status::ok();
  }

  // The stride whose cells give H x W at this input size (ceil, as stride-2 convs round up):
  // powers of two first, then an exact ratio. 0 if none.
  int infer_stride(int64_t h, int64_t w) const {
    for (int64_t s = 1; s <= 4096; s *= 2)
      if (ceil_div(ctx.input_h, s) == h && ceil_div(ctx.input_w, s) == w) return static_cast<int>(s);
    if (ctx.input_h % h == 0 && ctx.input_w % w == 0 && ctx.input_h / h == ctx.input_w / w)
      return static_cast<int>(ctx.input_h / h);
    return 0;
  }

  // Layout, and for one-level outputs stride and cells.
  Status geometry(Entry& e) const {
    const Shape& s = outs[static_cast<size_t>(e.output)].shape;
    for (int64_t d : s)
      if (d <= 0) return invalid_argument("has an empty dimension");
    const bool layout_given = e.layout != OutputLayout::kAuto;
    if (!layout_given)
      e.layout = s.size() == 5   ? OutputLayout::kNahwc
                 : s.size() == 4 ? OutputLayout::kNchw
                                 : OutputLayout::kAuto;
    if (e.layout == OutputLayout::kRows || e.layout == OutputLayout::kColumns ||
        e.layout == OutputLayout::kAuto) {
      if (s.size() != 3)
        return invalid_argument("has rank " + std::to_string(s.size()) + "; heads use rank 3, 4 or 5");
      e.flat = true;
      return Status::ok();
    }
    if (decoded)
      return invalid_argument(std::string("decoded boxes (") + box_encoding_name(spec.box) +
                              ") come as [N, P, C] or [N, C, P], not per level");
    const size_t rank = e.layout == OutputLayout::kNahwc ? 5 : 4;
    if (s.size() != rank)
      return invalid_argument(std::string("layout ") + output_layout_name(e.layout) + " needs rank " +
                              std::to_string(rank));
    e.h = e.layout == OutputLayout::kNhwc ? s[1] : s[2];
    e.w = e.layout == OutputLayout::kNhwc ? s[2] : s[3];
    e.stride = infer_stride(e.h, e.w);
    if (e.stride == 0 && !layout_given && e.layout == OutputLayout::kNchw && infer_stride(s[1], s[2]) > 0) {
      e.layout = OutputLayout::kNhwc;  // channels last
      e.h = s[1];
      e.w = s[2];
      e.stride = infer_stride(e.h, e.w);
    }
    if (e.stride == 0)
      return invalid_argument("its H x W (" + std::to_string(e.h) + " x " + std::to_string(e.w) +
                              ") is no stride of the input " + std::to_string(ctx.input_h) + " x " +
                              std::to_string(ctx.input_w));
    if (!e.strides.empty() && (e.strides.size() != 1 || e.strides[0] != e.stride))
      return invalid_argument("the description says stride " + std::to_string(e.strides[0]) +
                              ", its H x W gives stride " + std::to_string(e.stride));
    return Status::ok();
  }

  std::string skipped_list() const {
    std::string s;
    for (const auto& k : skipped) s += "; " + k;
    return s;
  }

  // Stage 2: the levels (ascending strides) with their cells and anchors.
  Status make_levels() {
    if (decoded) return Status::ok();
    std::set<int> strides;
    for (const Entry& e : entries)
      if (!e.flat) strides.insert(e.stride);
    for (int s : spec.strides) strides.insert(s);
    for (const Entry& e : entries)
      for (int s : e.strides) strides.insert(s);
    const bool have_flat = std::any_of(entries.begin(), entries.end(), [](const Entry& e) { return e.flat; });
    std::vector<std::vector<int>> candidates;
    if (!strides.empty())
      candidates.push_back({strides.begin(), strides.end()});
    else if (have_flat) {
      // The usual pyramids (P3-P5, P3-P6, P3-P7); a stride metadata value names the largest.
      for (std::vector<int> c : {std::vector<int>{8, 16, 32}, {8, 16, 32, 64}, {8, 16, 32, 64, 128}})
        if (ctx.max_stride <= 0 || c.back() == ctx.max_stride) candidates.push_back(c);
    }
    if (candidates.empty()) return invalid_argument("cannot tell the head's strides" + skipped_list());
    std::string why;
    for (const auto& c : candidates) {
      std::vector<Level> lv;
      for (int s : c) {
        Level l;
        l.stride = s;
        l.h = ceil_div(ctx.input_h, s);
        l.w = ceil_div(ctx.input_w, s);
        lv.push_back(l);
      }
      Status st = assign_anchors(lv);
      if (!st) {
        why += "; strides " + join(c) + ": " + st.message();
        continue;
      }
      if (have_flat && !flat_fits(lv)) {
        why += "; strides " + join(c) + ": the point counts do not match";
        continue;
      }
      levels = std::move(lv);
      return Status::ok();
    }
    return invalid_argument("no level layout fits" + why + skipped_list());
  }

  static std::string join(const std::vector<int>& v) {
    std::string s;
    for (int x : v) s += (s.empty() ? "" : ", ") + std::to_string(x);
    return s;
  }

  Status assign_anchors(std::vector<Level>& lv) const {
    const bool anchored = spec.box == BoxEncoding::kYoloV5 || spec.box == BoxEncoding::kDeltas;
    if (!spec.anchors.empty()) {
      if (spec.anchors.size() != lv.size())
        return invalid_argument("the description has anchors for " + std::to_string(spec.anchors.size()) +
                                " levels, the model has " + std::to_string(lv.size()));
      for (size_t i = 0; i < lv.size(); ++i) lv[i].anchors = spec.anchors[i];
    }
    for (const Entry& e : entries)
      if (!e.flat && !e.anchors.empty())
        for (Level& l : lv)
          if (l.stride == e.stride) {
            if (!l.anchors.empty() && l.anchors != e.anchors)
              return invalid_argument("two outputs of stride " + std::to_string(l.stride) +
                                      " give different anchors");
            l.anchors = e.anchors;
          }
    for (Level& l : lv) {
      if (anchored && l.anchors.empty())
        return invalid_argument("no anchors for stride " + std::to_string(l.stride));
      l.a = anchored ? static_cast<int64_t>(l.anchors.size() / 2) : 1;
    }
    return Status::ok();
  }

  // Points of the levels an entry holds.
  int64_t entry_points(const Entry& e, const std::vector<Level>& lv) const {
    int64_t p = 0;
    for (const Level& l : lv)
      if (e.strides.empty() || std::count(e.strides.begin(), e.strides.end(), l.stride)) p += l.points();
    return p;
  }

  bool flat_fits(const std::vector<Level>& lv) const {
    for (const Entry& e : entries) {
      if (!e.flat) continue;
      const Shape& s = outs[static_cast<size_t>(e.output)].shape;
      const int64_t p = entry_points(e, lv);
      const bool rows = s[1] == p, cols = s[2] == p;
      if (e.layout == OutputLayout::kRows      ? !rows
          : e.layout == OutputLayout::kColumns ? !cols
                                               : !(rows || cols))
        return false;
    }
    return true;
  }

  // Stage 3: channels per anchor of each entry.
  Status channels() {
    std::vector<Entry> kept;
    for (Entry& e : entries) {
      const Shape& s = outs[static_cast<size_t>(e.output)].shape;
      if (e.flat) {
        if (decoded) {
          if (e.layout == OutputLayout::kAuto) {
            // The channel axis: the one whose size fits the parts, else the shorter one.
            const int64_t want = expected_channels(e);
            const bool rows_fit = want > 0 && s[2] == want, cols_fit = want > 0 && s[1] == want;
            e.layout = rows_fit != cols_fit ? (rows_fit ? OutputLayout::kRows : OutputLayout::kColumns)
                       : s[1] > s[2]        ? OutputLayout::kRows
                                            : OutputLayout::kColumns;
          }
        } else {
          const int64_t p = entry_points(e, levels);
          if (e.layout == OutputLayout::kAuto) {
            if (s[1] == p && s[2] == p) {
              QYOLO_RETURN_IF_ERROR(
                  fail(e, "both axes have " + std::to_string(p) + " entries; give \"layout\""));
              continue;
            }
            e.layout = s[1] == p ? OutputLayout::kRows : OutputLayout::kColumns;
          }
        }
        e.channels = e.layout == OutputLayout::kRows ? s[2] : s[1];
      } else {
        const Level& l = level_of(e.stride);
        if (e.layout == OutputLayout::kNahwc) {
          if (s[1] != l.a) {
            QYOLO_RETURN_IF_ERROR(
                fail(e, "has " + std::to_string(s[1]) + " anchors, the level has " + std::to_string(l.a)));
            continue;
          }
          e.channels = s[4];
        } else {
          const int64_t ac = e.layout == OutputLayout::kNchw ? s[1] : s[3];
          if (ac % l.a) {
            QYOLO_RETURN_IF_ERROR(fail(e, std::to_string(ac) + " channels are no multiple of its " +
                                              std::to_string(l.a) + " anchors"));
            continue;
          }
          e.channels = ac / l.a;
        }
      }
      kept.push_back(std::move(e));
    }
    entries = std::move(kept);
    if (entries.empty()) return invalid_argument("no output fits" + skipped_list());
    return Status::ok();
  }

  // Channels an entry should have (0 if unknown: no class count yet).
  int64_t expected_channels(const Entry& e) const {
    if (nc < 1) return 0;
    if (e.parts.empty()) return box_ch + obj_ch + nc;
    int64_t c = 0;
    for (HeadPart p : e.parts) c += part_channels(p);
    return c;
  }

  const Level& level_of(int stride) const {
    for (const Level& l : levels)
      if (l.stride == stride) return l;
    return levels.front();
  }

  // Stage 4: parts of each entry. Entries are grouped by the levels they hold: a group of one
  // output holds every part; in a larger group each output's channel count names its part.
  Status parts() {
    std::map<std::vector<int>, std::vector<Entry*>> groups;
    for (Entry& e : entries) {
      std::vector<int> key;
      if (decoded)
        key = {0};
      else if (e.flat)
        key = e.strides.empty() ? std::vector<int>{-1} : e.strides;
      else
        key = {e.stride};
      groups[key].push_back(&e);
    }
    for (auto& [key, group] : groups) {
      // Decoded heads without a description: a first output holding every part is used alone
      // (older YOLOv5 exports add their raw levels after the decoded output).
      if (decoded && spec.outputs.empty() && group.size() > 1) {
        Entry trial = *group.front();
        const int nc_before = nc;
        if (assign_parts(trial, true)) {
          *group.front() = trial;
          for (size_t k = 1; k < group.size(); ++k)
            skipped.push_back(out_name(group[k]->output) + ": not needed, " + out_name(trial.output) +
                              " holds the whole head");
          group.resize(1);
          continue;
        }
        nc = nc_before;
      }
      std::vector<Entry*> ok;
      for (Entry* e : group) {
        Status st = assign_parts(*e, group.size() == 1);
        if (!st) {
          QYOLO_RETURN_IF_ERROR(fail(*e, st.message()));
          continue;
        }
        ok.push_back(e);
      }
      group = ok;
    }
    std::vector<Entry> kept;
    for (auto& [key, group] : groups)
      for (Entry* e : group) kept.push_back(*e);
    entries = std::move(kept);
    if (entries.empty()) return invalid_argument("no output fits" + skipped_list());
    return Status::ok();
  }

  Status assign_parts(Entry& e, bool alone) {
    const int64_t c = e.channels;
    if (!e.parts.empty()) {
      int64_t known = 0, cls_parts = 0;
      for (HeadPart p : e.parts) {
        if (p == HeadPart::kObj && !spec.objectness)
          return invalid_argument("\"obj\" in a head without objectness");
        if (p == HeadPart::kCls)
          ++cls_parts;
        else
          known += part_channels(p);
      }
      if (cls_parts && nc < 1) {
        if (c - known < 1) return invalid_argument(std::to_string(c) + " channels leave none for classes");
        nc = static_cast<int>(c - known);
      }
      if (known + cls_parts * nc != c)
        return invalid_argument("has " + std::to_string(c) + " channels per anchor, its parts need " +
                                std::to_string(known + cls_parts * nc));
      return Status::ok();
    }
    if (alone) {
      const int64_t cls = c - box_ch - obj_ch;
      if (cls < 1)
        return invalid_argument(std::to_string(c) + " channels per anchor leave no class channels after " +
                                std::to_string(box_ch) + " box" + (obj_ch ? " + 1 objectness" : "") +
                                " channels");
      if (nc >= 1 && cls != nc)
        return invalid_argument(std::to_string(c) + " channels per anchor are " + std::to_string(box_ch) +
                                " box" + (obj_ch ? " + 1 objectness" : "") + " + " + std::to_string(cls) +
                                " classes, not " + std::to_string(nc));
      nc = static_cast<int>(cls);
      e.parts = {HeadPart::kBox};
      if (obj_ch) e.parts.push_back(HeadPart::kObj);
      e.parts.push_back(HeadPart::kCls);
      return Status::ok();
    }
    const bool is_box = c == box_ch, is_obj = obj_ch && c == 1, is_cls = nc < 1 || c == nc;
    if (is_box + is_obj + (is_cls && !is_box && !is_obj) == 0 || (nc >= 1 && is_cls + is_box + is_obj > 1))
      return invalid_argument(std::to_string(c) + " channels per anchor name no single part (box " +
                              std::to_string(box_ch) + (obj_ch ? ", obj 1" : "") + ", cls " +
                              (nc >= 1 ? std::to_string(nc) : std::string("?")) +
                              "); list \"parts\" in the head description");
    if (is_box)
      e.parts = {HeadPart::kBox};
    else if (is_obj)
      e.parts = {HeadPart::kObj};
    else {
      e.parts = {HeadPart::kCls};
      nc = static_cast<int>(c);
    }
    return Status::ok();
  }
};

Activation effective(Activation entry, Activation head) {
  return entry == Activation::kAuto ? head : entry;
}

PartAccess part_access(const Entry& e, const Shape& s, const BoundLevel& lv, int64_t level_offset,
                       int64_t channel_offset, int64_t total_channels) {
  PartAccess p;
  p.output = e.output;
  const int64_t A = lv.a, H = lv.h, W = lv.w, C = total_channels;
  switch (e.layout) {
    case OutputLayout::kNchw:  // [N, A*C, H, W]
      p.batch_stride = A * C * H * W, p.anchor_stride = C * H * W, p.y_stride = W, p.x_stride = 1,
      p.channel_stride = H * W;
      p.base = channel_offset * H * W;
      break;
    case OutputLayout::kNhwc:  // [N, H, W, A*C]
      p.batch_stride = H * W * A * C, p.anchor_stride = C, p.y_stride = W * A * C, p.x_stride = A * C,
      p.channel_stride = 1;
      p.base = channel_offset;
      break;
    case OutputLayout::kNahwc:  // [N, A, H, W, C]
      p.batch_stride = A * H * W * C, p.anchor_stride = H * W * C, p.y_stride = W * C, p.x_stride = C,
      p.channel_stride = 1;
      p.base = channel_offset;
      break;
    case OutputLayout::kRows: {  // [N, P, C]
      const int64_t P = s[1];
      p.batch_stride = P * C, p.channel_stride = 1;
      if (e.cell_major)
        p.anchor_stride = C, p.y_stride = W * A * C, p.x_stride = A * C;
      else
        p.anchor_stride = H * W * C, p.y_stride = W * C, p.x_stride = C;
      p.base = level_offset * C + channel_offset;
      break;
    }
    case OutputLayout::kColumns: {  // [N, C, P]
      const int64_t P = s[2];
      p.batch_stride = C * P, p.channel_stride = P;
      if (e.cell_major)
        p.anchor_stride = 1, p.y_stride = W * A, p.x_stride = A;
      else
        p.anchor_stride = H * W, p.y_stride = W, p.x_stride = 1;
      p.base = channel_offset * P + level_offset;
      break;
    }
    case OutputLayout::kAuto:
      break;
  }
  return p;
}

Result<BoundHead> bind_one(const HeadSpec& spec, const std::vector<OutputDesc>& outs,
                           const HeadBindContext& ctx) {
  Binder b(spec, outs, ctx);
  b.decoded = is_decoded(spec.box);
  b.box_ch = spec.box == BoxEncoding::kDfl ? 4 * static_cast<int64_t>(spec.reg_max) : 4;
  b.obj_ch = spec.objectness ? 1 : 0;
  b.nc = spec.num_classes > 0 ? spec.num_classes : ctx.nc_hint;
  if (ctx.input_h <= 0 || ctx.input_w <= 0) return invalid_argument("head binding needs the input size");
  QYOLO_RETURN_IF_ERROR(b.collect());
  QYOLO_RETURN_IF_ERROR(b.make_levels());
  QYOLO_RETURN_IF_ERROR(b.channels());
  QYOLO_RETURN_IF_ERROR(b.parts());
  if (b.nc < 1) return invalid_argument("cannot tell the number of classes" + b.skipped_list());
  if (ctx.nc_hint > 0 && spec.num_classes <= 0 && b.nc != ctx.nc_hint)
    return invalid_argument("the outputs hold " + std::to_string(b.nc) +
                            " classes, the model's names metadata lists " + std::to_string(ctx.nc_hint));

  BoundHead h;
  h.spec_name = spec.name;
  h.box = spec.box;
  h.objectness = spec.objectness;
  h.nc = b.nc;
  h.reg_max = spec.reg_max;
  h.grid_offset = spec.grid_offset.value_or(spec.box == BoxEncoding::kDfl ? 0.5f : 0.0f);
  h.delta_weights = spec.delta_weights;
  h.batch = -1;
  for (const Entry& e : b.entries) {
    const int64_t n = outs[static_cast<size_t>(e.output)].shape[0];
    if (h.batch >= 0 && n != h.batch)
      return invalid_argument("outputs disagree on the batch size (" + std::to_string(h.batch) + " and " +
                              std::to_string(n) + " in " + b.out_name(e.output) + ")");
    h.batch = n;
    h.outputs_used.push_back(e.output);
  }
  std::sort(h.outputs_used.begin(), h.outputs_used.end());

  std::vector<Level> levels = b.levels;
  if (b.decoded) {
    // One pseudo-level: P points in a row.
    const Entry& e = b.entries.front();
    const Shape& s = outs[static_cast<size_t>(e.output)].shape;
    Level l;
    l.w = e.layout == OutputLayout::kRows ? s[1] : s[2];
    levels = {l};
    for (const Entry& o : b.entries) {
      const Shape& so = outs[static_cast<size_t>(o.output)].shape;
      if ((o.layout == OutputLayout::kRows ? so[1] : so[2]) != l.w)
        return invalid_argument("outputs " + b.out_name(e.output) + " and " + b.out_name(o.output) +
                                " hold different numbers of points");
    }
  }
  int64_t first = 0;
  for (const Level& l : levels) {
    BoundLevel bl;
    bl.stride = static_cast<float>(l.stride);
    bl.h = l.h, bl.w = l.w, bl.a = l.a;
    bl.first_point = first;
    bl.anchors = l.anchors;
    first += l.points();
    h.levels.push_back(std::move(bl));
  }
  h.points = first;

  // Every level: each part exactly once.
  for (size_t li = 0; li < h.levels.size(); ++li) {
    BoundLevel& bl = h.levels[li];
    for (const Entry& e : b.entries) {
      const bool holds =
          b.decoded ||
          (e.flat ? (e.strides.empty() || std::count(e.strides.begin(), e.strides.end(), levels[li].stride))
                  : e.stride == levels[li].stride);
      if (!holds) continue;
      int64_t level_offset = 0;
      if (e.flat && !b.decoded)
        for (size_t k = 0; k < li; ++k)
          if (e.strides.empty() || std::count(e.strides.begin(), e.strides.end(), levels[k].stride))
            level_offset += levels[k].points();
      int64_t co = 0;
      for (HeadPart p : e.parts) {
        PartAccess pa =
            part_access(e, outs[static_cast<size_t>(e.output)].shape, bl, level_offset, co, e.channels);
        const Activation act = effective(e.activation, spec.scores);
        pa.logits = act == Activation::kLogits;
        pa.auto_activation = act == Activation::kAuto;
        PartAccess& slot = p == HeadPart::kBox ? bl.box : p == HeadPart::kObj ? bl.obj : bl.cls;
        if (slot.output >= 0)
          return invalid_argument(std::string("two outputs hold the ") + head_part_name(p) + " of stride " +
                                  std::to_string(levels[li].stride) + ": " + b.out_name(slot.output) +
                                  " and " + b.out_name(e.output) +
                                  "; list the outputs in a head description");
        slot = pa;
        co += b.part_channels(p);
      }
    }
    const std::string lvl =
        b.decoded ? std::string("the head") : "stride " + std::to_string(levels[li].stride);
    if (bl.box.output < 0) return invalid_argument("no output holds the boxes of " + lvl + b.skipped_list());
    if (bl.cls.output < 0)
      return invalid_argument("no output holds the class scores of " + lvl + b.skipped_list());
    if (spec.objectness && bl.obj.output < 0)
      return invalid_argument("no output holds the objectness of " + lvl + b.skipped_list());
  }

  // A decoded head in the NMS's own layout needs no copy.
  if (b.decoded && spec.box == BoxEncoding::kXywh && b.entries.size() == 1) {
    const Entry& e = b.entries.front();
    const bool all_applied = !h.levels[0].cls.logits && (!spec.objectness || !h.levels[0].obj.logits);
    const bool layout_ok =
        spec.objectness ? e.layout == OutputLayout::kRows : e.layout == OutputLayout::kColumns;
    if (all_applied && layout_ok) h.passthrough_output = e.output;
  }
  return h;
}

}  // namespace

Result<BoundHead> bind_head(const std::vector<HeadSpec>& alternatives, const std::vector<OutputDesc>& outputs,
                            const HeadBindContext& ctx) {
  if (alternatives.empty()) return invalid_argument("empty head description");
  if (outputs.empty()) return invalid_argument("the model has no outputs");
  std::string why;
  for (size_t i = 0; i < alternatives.size(); ++i) {
    auto h = bind_one(alternatives[i], outputs, ctx);
    if (h) {
      h->alternative = static_cast<int>(i);
      return h;
    }
    const HeadSpec& s = alternatives[i];
    why += "\n  " +
           (alternatives.size() > 1 ? std::string("as ") + box_encoding_name(s.box) +
                                          (s.objectness ? " boxes with objectness" : " boxes") + ": "
                                    : std::string()) +
           h.status().message();
  }
  std::string outs;
  for (const auto& o : outputs)
    outs += (outs.empty() ? "" : ", ") + ("'" + o.name + "' " + shape_str(o.shape));
  return invalid_argument("head '" + alternatives.front().name + "' does not fit the model's outputs (" +
                          outs + ") at input " + std::to_string(ctx.input_h) + "x" +
                          std::to_string(ctx.input_w) + ":" + why);
}

Result<BoundHead> bind_default_head(const std::vector<OutputDesc>& outputs, const HeadBindContext& ctx) {
  if (outputs.empty()) return invalid_argument("the model has no outputs");
  const Shape& s = outputs[0].shape;
  const std::string hint =
      "; if the model's head is not decoded (raw grids, several outputs), describe it with --head "
      "yolov5|yolov8|yolox|FILE.json (docs/heads.md)";
  const std::string others =
      outputs.size() > 1 ? " (the first of the model's " + std::to_string(outputs.size()) + " outputs)" : "";
  Result<HeadKind> kind = detect_head_kind(s, ctx.nc_hint);
  if (s.size() == 3 && ctx.nc_hint < 1 && ctx.input_h > 0 && ctx.input_w > 0) {
    // Without class names: the axis holding the P3-P5 points of this input size names the layout.
    int64_t p = 0;
    for (int st : {8, 16, 32}) p += ceil_div(ctx.input_h, st) * ceil_div(ctx.input_w, st);
    if (s[2] == p && s[1] >= 5 && s[1] != 3 * p)
      kind = HeadKind::kYoloV8;
    else if (s[1] == 3 * p && s[2] >= 6 && s[2] != p)
      kind = HeadKind::kYoloV5;
  }
  if (!kind)
    return invalid_argument("output '" + outputs[0].name + "'" + others + ": " + kind.status().message() +
                            hint);
  HeadSpec spec;
  spec.name = "ultralytics";
  spec.box = BoxEncoding::kXywh;
  spec.objectness = *kind == HeadKind::kYoloV5;
  spec.scores = Activation::kApplied;
  HeadOutputSpec o;
  o.index = 0;
  o.layout = spec.objectness ? OutputLayout::kRows : OutputLayout::kColumns;
  spec.outputs.push_back(o);
  auto h = bind_one(spec, outputs, ctx);
  if (!h) return invalid_argument(h.status().message() + hint);
  return h;
}

namespace {
// Calls fn(value) for every value of one part of one level (all images, anchors, cells, channels).
template <typename Fn>
void for_each_value(const BoundHead& h, const BoundLevel& lv, const PartAccess& p, int64_t channels,
                    const float* data, Fn&& fn) {
  for (int64_t n = 0; n < h.batch; ++n)
    for (int64_t a = 0; a < lv.a; ++a)
      for (int64_t y = 0; y < lv.h; ++y)
        for (int64_t x = 0; x < lv.w; ++x)
          for (int64_t c = 0; c < channels; ++c) fn(data[p.at(n, a, y, x, c)]);
}
}  // namespace

HeadSpec resolve_activation(const HeadSpec& spec, const BoundHead& head,
                            const std::vector<const float*>& outputs) {
  HeadSpec out = spec;
  bool any_auto = false, all_probabilities = true;
  for (const BoundLevel& lv : head.levels) {
    for (const PartAccess* p : {&lv.obj, &lv.cls}) {
      if (p->output < 0 || !p->auto_activation) continue;
      any_auto = true;
      const float* data = outputs[static_cast<size_t>(p->output)];
      for_each_value(head, lv, *p, p == &lv.cls ? head.nc : 1, data, [&](float v) {
        if (!(v >= -kProbabilityTolerance && v <= 1.0f + kProbabilityTolerance)) all_probabilities = false;
      });
    }
  }
  if (any_auto) out.scores = all_probabilities ? Activation::kApplied : Activation::kLogits;
  return out;
}

}  // namespace qyolo
