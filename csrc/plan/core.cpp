#include "plan/core.h"

#include <algorithm>
#include <numeric>

namespace convcore {

std::string epilogue_suffix(const Epilogue& e) {
  return e.act == Act::none ? "" : std::string("+") + act_name(e.act);
}

bool winograd_eligible(const ConvSpec& s) {
  return s.R == 3 && s.S == 3 && s.sh == 1 && s.sw == 1 && s.dh == 1 && s.dw == 1 && s.groups == 1;
}

const TensorDesc& PlanCore::tensor(int t) const {
  require(t >= 0 && t < num_tensors(), "plan: unknown tensor id " + std::to_string(t));
  return tensors_[static_cast<size_t>(t)];
}

int PlanCore::check(int t, const std::string& what) const {
  require(t >= 0 && t < num_tensors(), what + ": unknown tensor id " + std::to_string(t));
  return t;
}

void PlanCore::check_like(int t, index_t H, index_t W, index_t C, const std::string& what) const {
  if (t < 0) return;
  const TensorDesc& d = tensor(check(t, what));
  require(d.H == H && d.W == W && d.C == C && !is_constant(t),
          what + ": expected a computed " + std::to_string(H) + "x" + std::to_string(W) + "x" + std::to_string(C) +
              " tensor (got " + dims(t) + (is_constant(t) ? ", a constant)" : ")"));
}

std::string PlanCore::dims(int t) const {
  const TensorDesc& d = tensor(t);
  return std::to_string(d.H) + "x" + std::to_string(d.W) + "x" + std::to_string(d.C);
}

int PlanCore::add_tensor(index_t H, index_t W, index_t C) {
  require(H >= 1 && W >= 1 && C >= 1, "plan: tensor dims must be positive");
  TensorDesc d;
  d.H = H, d.W = W, d.C = C;
  d.buffer = static_cast<int>(buffer_floats_.size());
  buffer_floats_.push_back(H * W * C);
  tensors_.push_back(d);
  return num_tensors() - 1;
}

int PlanCore::register_constant(index_t H, index_t W, index_t C) {
  require(H >= 1 && W >= 1 && C >= 1, "plan: constant dims must be positive");
  TensorDesc d;
  d.H = H, d.W = W, d.C = C;
  d.constant = constants_++;
  weight_bytes_ += H * W * C * 4;
  tensors_.push_back(d);
  return num_tensors() - 1;
}

int PlanCore::reshape(int t, index_t H, index_t W, index_t C) {
  const TensorDesc src = tensor(check(t, "t"));
  require(src.parent < 0 || src.reshaped, "plan.reshape: expected a root tensor or a view of one");
  require(H >= 1 && W >= 1 && C >= 1 && H * W * C == src.H * src.W * src.C, "plan.reshape: sizes differ");
  TensorDesc d;
  d.H = H, d.W = W, d.C = C;
  d.parent = src.reshaped ? src.parent : t;  // a view of a view: of its root
  d.reshaped = true;
  tensors_.push_back(d);
  return num_tensors() - 1;
}

int PlanCore::root_of(int t) const {
  while (tensor(t).parent >= 0) t = tensor(t).parent;
  return t;
}

bool PlanCore::aliasable(int t) const {
  const TensorDesc& d = tensor(t);
  if (d.parent >= 0 || d.constant >= 0 || d.buffer < 0) return false;
  for (const TensorDesc& other : tensors_)
    if (other.reshaped && root_of(other.parent) == t) return false;  // a reshaped view needs contiguous storage
  return true;
}

void PlanCore::alias(int child, int parent, index_t c0) {
  check(child, "child"), check(parent, "parent");
  const TensorDesc& p = tensor(parent);
  require(aliasable(child), "plan.alias: the child must be a root arena tensor with no reshaped view");
  require(root_of(parent) != child, "plan.alias: a tensor cannot live inside itself");
  require(p.constant < 0 && !p.reshaped, "plan.alias: cannot alias into a constant or a reshaped view");
  TensorDesc& c = tensors_[static_cast<size_t>(child)];
  require(c.H == p.H && c.W == p.W && c0 >= 0 && c0 + c.C <= p.C, "plan.alias: the slice does not fit the parent");
  buffer_floats_[static_cast<size_t>(c.buffer)] = 0;  // the buffer is no longer used
  c.buffer = -1;
  c.parent = parent;
  c.c0 = c0;
  invalidate();
}

void PlanCore::add_op(std::unique_ptr<PlanOp> op) {
  for (int t : op->reads) require(t >= 0 && t < num_tensors(), "plan: op reads an unknown tensor");
  for (int t : op->writes)
    require(t >= 0 && t < num_tensors() && !is_constant(t), "plan: op writes an unknown or constant tensor");
  require(outputs_.empty(), "plan: every op must be added before the outputs");
  ops_.push_back(std::move(op));
  invalidate();
}

int PlanCore::register_input(index_t C, index_t H, index_t W) {
  require(ops_.size() == inputs_.size(), "plan: inputs must be added before other ops");
  require(C >= 1 && H >= 1 && W >= 1, "plan: input dims must be positive");
  const int y = add_tensor(H, W, C);
  inputs_.push_back(y);
  return y;
}

void PlanCore::register_output(int t, bool nchw, std::unique_ptr<PlanOp> op) {
  require(!is_constant(check(t, "t")), "plan: an output must be computed");
  ops_.push_back(std::move(op));
  outputs_.emplace_back(t, nchw);
  invalidate();
}

std::vector<std::vector<index_t>> PlanCore::output_shapes(index_t N) const {
  std::vector<std::vector<index_t>> out;
  for (const auto& [t, nchw] : outputs_) {
    const TensorDesc& d = tensor(t);
    if (nchw)
      out.push_back({N, d.C, d.H, d.W});
    else
      out.push_back({N, d.H * d.W * d.C});
  }
  return out;
}

std::vector<index_t> PlanCore::input_shape(size_t i, index_t N) const {
  const TensorDesc& d = tensor(inputs_.at(i));
  return {N, d.C, d.H, d.W};
}

ArenaLayout PlanCore::plan_memory(index_t N, index_t align) const {
  const size_t nb = buffer_floats_.size();
  std::vector<int> first(nb, -1), last(nb, -1);
  auto touch = [&](int t, int i) {
    const int b = tensor(root_of(t)).buffer;
    if (b < 0) return;
    if (first[static_cast<size_t>(b)] < 0) first[static_cast<size_t>(b)] = i;
    last[static_cast<size_t>(b)] = std::max(last[static_cast<size_t>(b)], i);
  };
  for (size_t i = 0; i < ops_.size(); ++i) {
    for (int t : ops_[i]->reads) touch(t, static_cast<int>(i));
    for (int t : ops_[i]->writes) touch(t, static_cast<int>(i));
  }
  for (const auto& o : outputs_) touch(o.first, static_cast<int>(ops_.size()));
  std::vector<size_t> order(nb);
  std::iota(order.begin(), order.end(), size_t{0});
  auto size_of = [&](size_t b) { return (buffer_floats_[b] * N + align - 1) / align * align; };
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return size_of(a) > size_of(b); });
  ArenaLayout layout;
  layout.N = N;
  layout.offsets.assign(nb, 0);
  struct Placed {
    index_t lo, hi;
    int first, last;
  };
  std::vector<Placed> placed;
  for (size_t b : order) {
    if (first[b] < 0 || buffer_floats_[b] == 0) continue;
    const index_t size = size_of(b);
    std::vector<std::pair<index_t, index_t>> busy;
    for (const Placed& p : placed)
      if (!(p.last < first[b] || last[b] < p.first)) busy.emplace_back(p.lo, p.hi);
    std::sort(busy.begin(), busy.end());
    index_t offset = 0;
    for (const auto& r : busy) {
      if (r.first - offset >= size) break;
      offset = std::max(offset, r.second);
    }
    layout.offsets[b] = offset;
    placed.push_back({offset, offset + size, first[b], last[b]});
    layout.floats = std::max(layout.floats, offset + size);
  }
  return layout;
}

std::vector<ProfileEntry> PlanCore::profile_rows(index_t N, const std::vector<double>& seconds) const {
  std::vector<ProfileEntry> out;
  for (size_t i = 0; i < ops_.size(); ++i) {
    const PlanOp& op = *ops_[i];
    out.push_back({op.name, op.kernel(N), op.detail, op.flops_per_image * static_cast<double>(N), seconds.at(i)});
  }
  return out;
}

TensorView PlanCore::view(int t, float* arena, const ArenaLayout& layout, const std::vector<float*>& constants) const {
  const TensorDesc* d = &tensor(t);
  if (d->reshaped) {
    const TensorView r = view(d->parent, arena, layout, constants);
    return {r.base, d->C, r.image};
  }
  index_t c0 = 0;
  while (d->parent >= 0) {
    c0 += d->c0;
    d = &tensor(d->parent);
  }
  const index_t stride = d->C;
  if (d->constant >= 0) return {constants[static_cast<size_t>(d->constant)] + c0, stride, 0};
  return {arena + layout.offsets[static_cast<size_t>(d->buffer)] + c0, stride, d->H * d->W * stride};
}

std::pair<index_t, index_t> conv_output(const TensorDesc& in, const ConvSpec& s, const char* op) {
  const std::string name(op);
  require(s.groups >= 1 && in.C % s.groups == 0 && s.K % s.groups == 0 && s.C * s.groups == in.C,
          name + ": weight channels do not match the input and groups");
  require(s.R >= 1 && s.S >= 1 && s.sh >= 1 && s.sw >= 1 && s.dh >= 1 && s.dw >= 1, name + ": bad kernel geometry");
  require(s.pt >= 0 && s.pb >= 0 && s.pl >= 0 && s.pr >= 0, name + ": negative padding");
  require(in.H + s.pt + s.pb >= s.dh * (s.R - 1) + 1 && in.W + s.pl + s.pr >= s.dw * (s.S - 1) + 1,
          name + ": the kernel is larger than the padded input");
  return {conv_out_size(in.H, s.R, s.sh, s.dh, s.pt, s.pb), conv_out_size(in.W, s.S, s.sw, s.dw, s.pl, s.pr)};
}

}  // namespace convcore
