// FFN blocks of the Llama-style family: biased linear, SwiGLU MLP, and the Qwen3-MoE routed experts.
// Routing follows transformers Qwen3MoeSparseMoeBlock: p = softmax(x·W_gateᵀ) in fp32, top num_experts_per_tok,
// p_k / Σ p_k if norm_topk_prob. Tokens are grouped per expert so each expert runs one linear() per matrix.
#include <algorithm>
#include <memory>
#include <numeric>

#include "kernels/ops.h"
#include "model/llama_internal.h"

namespace dm {

void Linear::apply(const float* x, int64_t n, float* y, ThreadPool* pool) const {
  linear(w, x, n, y, pool);
  add_bias(y, n, 0, w.rows);
}

void Linear::add_bias(float* y, int64_t n, int64_t r0, int64_t r1) const {
  if (bias.empty()) return;
  for (int64_t t = 0; t < n; ++t)
    for (int64_t r = r0; r < r1; ++r) y[t * w.rows + r] += bias[size_t(r)];
}

void SwiGlu::apply(const float* x, int64_t n, float* out, ThreadPool* pool) const {
  const int64_t inter = gate_proj.w.rows;
  const std::unique_ptr<float[]> g(new float[size_t(n * inter)]), u(new float[size_t(n * inter)]);  // [n, inter]
  if (gate_proj.bias.empty() && up_proj.bias.empty()) {  // both in one parallel region
    const LinearJob jobs[2] = {{gate_proj.w, x, n, g.get()}, {up_proj.w, x, n, u.get()}};
    linear_multi(jobs, 2, pool);
  } else {
    gate_proj.apply(x, n, g.get(), pool);
    up_proj.apply(x, n, u.get(), pool);
  }
  silu_mul(g.get(), u.get(), n * inter, g.get());
  down_proj.apply(g.get(), n, out, pool);
}

void MoeFfn::apply(const float* x, int64_t n, float* out, ThreadPool* pool,
                   std::vector<std::vector<int32_t>>* experts_out, std::vector<std::vector<float>>* weights_out) const {
  const int64_t n_exp = gate.rows, hidden = gate.cols, k = num_experts_per_tok;
  std::vector<float> probs(size_t(n * n_exp));  // [n, num_experts]
  linear(gate, x, n, probs.data(), pool);

  std::vector<int32_t> sel(size_t(n * k));  // [n, k] expert ids, best first
  std::vector<float> wsel(size_t(n * k));   // [n, k] their weights
  std::vector<int32_t> order(static_cast<size_t>(n_exp));
  for (int64_t t = 0; t < n; ++t) {
    float* p = probs.data() + t * n_exp;
    softmax(p, n_exp);
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    float sum = 0;
    for (int64_t j = 0; j < k; ++j) sum += p[order[size_t(j)]];
    for (int64_t j = 0; j < k; ++j) {
      sel[size_t(t * k + j)] = order[size_t(j)];
      wsel[size_t(t * k + j)] = norm_topk_prob ? p[order[size_t(j)]] / sum : p[order[size_t(j)]];
    }
  }

  // Group (token, slot) pairs per expert; each expert sees its tokens in batch order.
  std::vector<std::vector<int64_t>> rows(static_cast<size_t>(n_exp));
  for (int64_t i = 0; i < n * k; ++i) rows[size_t(sel[size_t(i)])].push_back(i);
  std::vector<float> y(size_t(n * k * hidden));  // [n, k, hidden] expert outputs
  std::vector<float> xs, ys;
  for (int64_t e = 0; e < n_exp; ++e) {
    const auto& r = rows[size_t(e)];
    if (r.empty()) continue;
    const int64_t m = int64_t(r.size());
    xs.resize(size_t(m * hidden));
    ys.resize(size_t(m * hidden));
    for (int64_t i = 0; i < m; ++i) std::copy_n(x + (r[size_t(i)] / k) * hidden, hidden, xs.data() + i * hidden);
    experts[size_t(e)].apply(xs.data(), m, ys.data(), pool);
    for (int64_t i = 0; i < m; ++i) std::copy_n(ys.data() + i * hidden, hidden, y.data() + r[size_t(i)] * hidden);
  }

  // Sum in each token's own slot order, so a token's result never depends on the rest of the batch.
  for (int64_t t = 0; t < n; ++t) {
    float* o = out + t * hidden;
    std::fill_n(o, hidden, 0.0f);
    for (int64_t j = 0; j < k; ++j) axpy(wsel[size_t(t * k + j)], y.data() + (t * k + j) * hidden, hidden, o);
  }
  if (experts_out) {
    experts_out->assign(size_t(n), {});
    weights_out->assign(size_t(n), {});
    for (int64_t t = 0; t < n; ++t) {
      (*experts_out)[size_t(t)].assign(sel.begin() + t * k, sel.begin() + (t + 1) * k);
      (*weights_out)[size_t(t)].assign(wsel.begin() + t * k, wsel.begin() + (t + 1) * k);
    }
  }
}

}  // namespace dm
