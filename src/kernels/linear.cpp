// Dispatch of linear layers: picks the instruction set (linear_simd), shares row chunks (whole register row
// tiles) of one or more layers among the pool's threads, and for Q8_0/Q4_0 on VNNI quantizes the activations
// once per call (tokens split over threads) before the int8 kernels run (on AMX, batches are rounded to bf16
// instead for the tile kernel). Scalar path: one dequantized row at a time.
#include <algorithm>
#include <atomic>
#include <memory>
#include <vector>

#include "core/cpu.h"
#include "core/error.h"
#include "core/tensor.h"
#include "kernels/linear.h"
#include "kernels/linear_kernels.h"
#include "kernels/quant.h"

namespace dm {

namespace {

bool has_avx512() {
  const CpuFeatures& f = cpu_features();
  return f.avx512f && f.avx512bw && f.avx512vl && f.fma && f.f16c;
}
bool has_amx() { return has_avx512() && cpu_features().amx_bf16; }
bool has_avx2() {
  const CpuFeatures& f = cpu_features();
  return f.avx2 && f.fma && f.f16c;
}

void rows_scalar(const Weight& w, const float* x, int64_t n_tokens, float* y, int64_t r0, int64_t r1,
                 float* row) {
  for (int64_t r = r0; r < r1; ++r) {
    dequantize_rows(w, r, r + 1, row);
    for (int64_t t = 0; t < n_tokens; ++t) {
      const float* xt = x + t * w.cols;
      float acc = 0;
      for (int64_t c = 0; c < w.cols; ++c) acc += xt[c] * row[c];
      y[t * w.rows + r] = acc;
    }
  }
}

// Items [0, n) split into one contiguous range per thread. A thread takes its own range from the front, so
// it reads its rows as one forward stream (the prefetch running past an item's end lands in its next item),
// then takes from the back of the others' ranges: a thread that is descheduled, or never joins the job, has its
// items taken by the rest. Each range is one atomic word (front << 32 | back), so an item goes to one thread.
// One range's word, on a cache line of its own: a thread's takes from its own range do not contend with the
// other threads' takes from theirs.
struct alignas(64) RangeWord {
  std::atomic<uint64_t> v;
};

class ItemRanges {
 public:
  // Range k is items [bounds[k], bounds[k + 1]). r: storage for n_ranges words.
  ItemRanges(const size_t* bounds, int n_ranges, RangeWord* r) : n_(n_ranges), r_(r) {
    for (int k = 0; k < n_; ++k) r_[k].v.store(uint64_t(bounds[k]) << 32 | bounds[k + 1], std::memory_order_relaxed);
  }
  bool take(int t, size_t& item) {
    std::atomic<uint64_t>& own = r_[t].v;
    for (uint64_t s = own.load(std::memory_order_relaxed); (s >> 32) < (s & kLow);)
      if (own.compare_exchange_weak(s, s + (uint64_t(1) << 32), std::memory_order_relaxed)) {
        item = size_t(s >> 32);
        return true;
      }
    for (int k = 1; k < n_; ++k) {
      std::atomic<uint64_t>& other = r_[(t + k) % n_].v;
      for (uint64_t s = other.load(std::memory_order_relaxed); (s >> 32) < (s & kLow);)
        if (other.compare_exchange_weak(s, s - 1, std::memory_order_relaxed)) {
          item = size_t(s & kLow) - 1;
          return true;
        }
    }
    return false;
  }

 private:
  static constexpr uint64_t kLow = 0xffffffffu;
  int n_;
  RangeWord* r_;
};

// One job made ready to run: its path, its quantized activations (int8 path) and its scratch needs.
struct Plan {
  const LinearJob* job = nullptr;
  Simd simd = Simd::Scalar;
  bool int8 = false;
  bool packed = false;  // int8 path over w.packed (kern::PActs activations)
  bool amx = false;     // bf16 dot products over w.packed (kern::BActs activations): AMX tiles, or
  bool dpbf16 = false;  // with amx: vdpbf16ps on AVX512-BF16 where there are no tiles (BF16/F16, bf16_acts)
  int splits = 1;       // AMX: bf16 parts per activation
  bool converts_acts() const { return int8 || amx; }  // activations converted once per call (alloc_acts)
  uint8_t* q = nullptr;  // QActs / PActs storage (int8 path), in the call's workspace
  float* s = nullptr;
  int32_t* c = nullptr;
  kern::QActs xq;
  kern::PActs xa;
  kern::BActs xb;
  size_t scratch_bytes = 0;  // per thread
  bool owns_acts = true;     // false: xq points into an earlier plan's activations (same x, dtype and shape)
  size_t shares = 0;         // !owns_acts: that plan's index
};

void make_plan(const LinearJob& j, const LinearOptions& opt, Plan& p) {
  const Weight& w = j.w;
  DM_CHECK(linear_supports(w.dtype), "linear: unsupported dtype ", dtype_name(w.dtype));
  DM_CHECK(w.cols % dtype_block(w.dtype) == 0, "linear: ", dtype_name(w.dtype), " row of ", w.cols, " values");
  p.job = &j;
  p.simd = linear_simd(opt);
  const bool avx512 = p.simd == Simd::Avx512 || p.simd == Simd::Amx;
  const int64_t cols = w.cols, n = j.n_tokens;
  // Float weights keep their f32 activations (three bf16 parts, see kern::BActs); quantized weights take
  // bf16(x), finer than the int8 activations of the VNNI path they replace.
  const bool quantized = w.dtype == DType::Q8_0 || w.dtype == DType::Q4_0;
  p.amx = p.simd == Simd::Amx && w.packed && n >= kAmxMinTokens &&
          (quantized ? opt.quantize_activations : w.dtype == DType::BF16 || w.dtype == DType::F16);
  p.splits = quantized ? 1 : 3;
  if (p.amx) {  // activations are allocated by alloc_acts() unless shared with another job
    p.scratch_bytes = kern::amx_scratch_bytes(cols);
    return;
  }
  // Without tiles, a batch over packed BF16 / F16 weights that may round x (and F16 weights) to bf16 takes
  // vdpbf16ps: 32 products per instruction where f32 FMA does 16.
  p.dpbf16 = avx512 && cpu_features().avx512bf16 && w.packed && (w.dtype == DType::BF16 || w.dtype == DType::F16) &&
             w.bf16_acts && n >= kAmxMinTokens;
  if (p.dpbf16) {
    p.amx = true;
    p.splits = 1;
    p.scratch_bytes = kern::dpbf16_scratch_bytes(cols);
    return;
  }
  p.int8 = avx512 && opt.quantize_activations && cpu_features().avx512vnni &&
           (w.dtype == DType::Q8_0 || w.dtype == DType::Q4_0);
  if (p.int8) {  // activations are allocated by alloc_acts() unless shared with another job
    p.packed = w.packed != nullptr;
    p.scratch_bytes = n > 4 && !p.packed ? kern::q8_scratch_bytes(cols) : 0;
    return;
  }
  const bool direct = w.dtype == DType::F32 || w.dtype == DType::BF16 || w.dtype == DType::F16 ||
                      w.dtype == DType::F8_E4M3;
  // Packed BF16 / F16 rows are read in place by decode only; batches convert a row tile at a time.
  const bool in_place = direct && (n == 1 || (n <= 4 && !(avx512 && w.packed)));
  const size_t floats = p.simd == Simd::Scalar ? size_t(cols) : in_place ? 0 : size_t(kern::kRowTile * cols);
  p.scratch_bytes = (floats * sizeof(float) + 63) / 64 * 64;
}

// AMX activations: rows padded to whole tiles of 16 tokens, columns to whole tiles of 32.
int64_t amx_rows(int64_t n) { return (n + 15) / 16 * 16; }
int64_t amx_ld(int64_t cols, int splits) { return (cols + 31) / 32 * 32 * splits; }

// Bytes of the activations alloc_acts() carves for p, each part 64-byte aligned.
size_t act_bytes(const Plan& p) {
  const int64_t n = p.job->n_tokens, cols = p.job->w.cols, nb = cols / kQK, n_pairs = (nb + 1) / 2;
  auto up = [](int64_t b) { return size_t(b + 63) / 64 * 64; };
  if (p.amx) return up(amx_rows(n) * amx_ld(cols, p.splits) * 2);
  if (p.packed) return up(n * cols) + 2 * up(n * nb * 4);
  return up(n * n_pairs * 64) + 2 * up(n * n_pairs * 16 * 4);
}

void alloc_acts(Plan& p, uint8_t*& at) {
  const int64_t n = p.job->n_tokens, cols = p.job->w.cols, nb = cols / kQK, n_pairs = (nb + 1) / 2;
  const bool q4 = p.job->w.dtype == DType::Q4_0;
  auto take = [&](int64_t bytes) {
    uint8_t* r = at;
    at += size_t(bytes + 63) / 64 * 64;
    return r;
  };
  if (p.amx) {
    p.q = take(amx_rows(n) * amx_ld(cols, p.splits) * 2);
    p.xb = kern::BActs{reinterpret_cast<const uint16_t*>(p.q), amx_ld(cols, p.splits), p.splits};
    return;
  }
  if (p.packed) {
    p.q = take(n * cols);
    p.s = reinterpret_cast<float*>(take(n * nb * 4));
    p.c = reinterpret_cast<int32_t*>(take(n * nb * 4));
    p.xa = kern::PActs{p.q, p.s, q4 ? p.c : nullptr, cols};
    return;
  }
  p.q = take(n * n_pairs * 64);
  p.s = reinterpret_cast<float*>(take(n * n_pairs * 16 * 4));
  p.c = reinterpret_cast<int32_t*>(take(n * n_pairs * 16 * 4));
  p.xq = kern::QActs{p.q, p.s, q4 ? p.c : nullptr, n_pairs};
}

void quantize_tokens(Plan& p, int64_t t0, int64_t t1) {
  const LinearJob& j = *p.job;
  const bool q4 = j.w.dtype == DType::Q4_0;
  if (p.amx) {
    uint16_t* acts = reinterpret_cast<uint16_t*>(p.q);
    for (int64_t t = t0; t < t1; ++t) kern::convert_acts_bf16_amx(j.x + t * j.w.cols, j.w.cols, p.splits, acts, p.xb.ld, t);
    if (t1 == j.n_tokens)  // the last token tile's padding
      for (int64_t t = t1; t < amx_rows(t1); ++t) kern::convert_acts_bf16_amx(nullptr, j.w.cols, p.splits, acts, p.xb.ld, t);
    return;
  }
  if (p.packed) {
    const int64_t cols = j.w.cols, nb = cols / kQK;
    for (int64_t t = t0; t < t1; ++t)
      kern::quantize_acts_plain_avx512(j.x + t * cols, cols, j.w.dtype, p.q + t * cols, p.s + t * nb,
                                       q4 ? p.c + t * nb : nullptr);
    return;
  }
  const int64_t np = p.xq.n_pairs;
  for (int64_t t = t0; t < t1; ++t)
    kern::quantize_acts_avx512(j.x + t * j.w.cols, j.w.cols, j.w.dtype, p.q + t * np * 64, p.s + t * np * 16,
                               q4 ? p.c + t * np * 16 : nullptr);
}

void run_rows(const Plan& p, int64_t r0, int64_t r1, void* scratch) {
  const LinearJob& j = *p.job;
  if (p.dpbf16) return kern::rows_dpbf16(j.w, p.xb, j.n_tokens, j.y, r0, r1, scratch);
  if (p.amx) return kern::rows_amx(j.w, p.xb, j.n_tokens, j.y, r0, r1, scratch);
  if (p.packed) return kern::rows_packed_avx512(j.w, p.xa, j.n_tokens, j.y, r0, r1);
  if (p.int8) return kern::rows_q8_avx512(j.w, p.xq, j.n_tokens, j.y, r0, r1, scratch);
  float* sc = static_cast<float*>(scratch);
  switch (p.simd) {
    case Simd::Amx:
    case Simd::Avx512: return kern::rows_avx512(j.w, j.x, j.n_tokens, j.y, r0, r1, sc);
    case Simd::Avx2: return kern::rows_avx2(j.w, j.x, j.n_tokens, j.y, r0, r1, sc);
    default: return rows_scalar(j.w, j.x, j.n_tokens, j.y, r0, r1, sc);
  }
}

}  // namespace

bool packable(const Weight& w) {
  if (w.dtype == DType::BF16 || w.dtype == DType::F16) return has_avx512();
  return (w.dtype == DType::Q8_0 || w.dtype == DType::Q4_0) && w.cols % kQK == 0 && has_avx512() &&
         cpu_features().avx512vnni;
}

Simd linear_simd(const LinearOptions& opt) {
  const Simd want = opt.simd == Simd::Auto ? Simd::Amx : opt.simd;
  if (want == Simd::Amx && has_amx()) return Simd::Amx;
  if ((want == Simd::Amx || want == Simd::Avx512) && has_avx512()) return Simd::Avx512;
  if (want != Simd::Scalar && has_avx2()) return Simd::Avx2;
  return Simd::Scalar;
}

void linear(const Weight& w, const float* x, int64_t n_tokens, float* y, ThreadPool* pool) {
  linear(w, x, n_tokens, y, pool, LinearOptions{});
}

void linear(const Weight& w, const float* x, int64_t n_tokens, float* y, ThreadPool* pool,
            const LinearOptions& opt) {
  const LinearJob job{w, x, n_tokens, y};
  linear_multi(&job, 1, pool, opt);
}

namespace {

struct TokenChunk {
  Plan* plan;
  int64_t t0, t1;
};
struct Item {
  const Plan* plan;
  int64_t r0, r1;
};

// What linear_multi needs per call, kept on the calling thread between calls (calls are not re-entrant), so a
// decode step's ~10 calls per layer do not go through the heap: plans, work lists, the activations of the int8
// path and the kernels' scratch (one 64-byte aligned block, grown to the largest call; given back when a call
// needed more than kKeepBytes).
struct Workspace {
  static constexpr size_t kKeepBytes = size_t(64) << 20;
  std::vector<Plan> plans;
  std::vector<TokenChunk> chunks;
  std::vector<Item> items;
  std::vector<size_t> bounds;  // of the threads' ranges of items
  std::vector<RangeWord> ranges;
  Buffer bytes;

  uint8_t* reserve(size_t n) {
    if (bytes.size() < n) bytes = Buffer(n);
    return bytes.as<uint8_t>();
  }
  void trim() {
    if (bytes.size() > kKeepBytes) bytes = Buffer();
  }
};

}  // namespace

// Activations are quantized on the threads only from this many values on. Below it (decode: the inputs of MLA's
// per-head absorbed projections, of the MoE down projections) a chunk takes about a microsecond and the threads
// taking them from one shared counter cost more: V2-Lite Q4_0 decode spent 2.6-4.8 µs on each such call.
constexpr int64_t kParallelActValues = int64_t(1) << 16;

namespace {

Workspace& thread_workspace() {
  thread_local Workspace ws;
  return ws;
}

// A call made ready to run on one thread's workspace: plans, activations carved (not yet converted), the work
// items and the threads' ranges of them. A pure function of the jobs, the options and nt, so that every thread
// that prepares the same call gets the same items.
struct Prepared {
  bool empty = true;  // no rows to compute
  int nt = 1;
  uint8_t* scratch = nullptr;
  size_t scratch_bytes = 0;  // per thread
  int64_t act_values = 0;    // values converted (the int8 / AMX activations of the jobs that own them)
  int64_t max_tokens = 0;
};

Prepared prepare(const LinearJob* jobs, size_t n_jobs, ThreadPool* pool, const LinearOptions& opt, Workspace& ws) {
  Prepared r;
  std::vector<Plan>& plans = ws.plans;
  plans.assign(n_jobs, Plan{});
  ws.items.clear();
  int64_t total_rows = 0;
  size_t total_bytes = 0;
  for (size_t i = 0; i < n_jobs; ++i) {
    if (jobs[i].n_tokens <= 0 || jobs[i].w.rows <= 0) continue;
    make_plan(jobs[i], opt, plans[i]);
    total_rows += jobs[i].w.rows;
    total_bytes += jobs[i].w.bytes();
    r.scratch_bytes = std::max(r.scratch_bytes, plans[i].scratch_bytes);
    r.max_tokens = std::max(r.max_tokens, jobs[i].n_tokens);
  }
  if (total_rows == 0) return r;
  r.empty = false;
  // Below ~64 KiB of weights a second thread costs more in wake-up than it saves.
  const int nt = pool && total_rows >= 2 * kern::kRowTile && total_bytes >= (64 << 10) ? pool->size() : 1;
  r.nt = nt;

  // Jobs that read the same x for the same dtype (e.g. an expert's gate and up projections) share one
  // quantization of it.
  size_t act_total = 0;
  for (size_t i = 0; i < n_jobs; ++i) {
    if (!plans[i].converts_acts()) continue;
    for (size_t k = 0; k < i; ++k) {
      const Plan& o = plans[k];
      if (o.converts_acts() && o.owns_acts && o.packed == plans[i].packed && o.amx == plans[i].amx &&
          o.splits == plans[i].splits && (o.amx || o.job->w.dtype == jobs[i].w.dtype) && o.job->x == jobs[i].x &&
          o.job->n_tokens == jobs[i].n_tokens && o.job->w.cols == jobs[i].w.cols) {
        plans[i].owns_acts = false;
        plans[i].shares = k;
        break;
      }
    }
    if (plans[i].owns_acts) {
      act_total += act_bytes(plans[i]);
      r.act_values += jobs[i].n_tokens * jobs[i].w.cols;
    }
  }
  r.scratch_bytes = (r.scratch_bytes + 63) / 64 * 64;
  uint8_t* at = ws.reserve(act_total + r.scratch_bytes * size_t(nt));
  r.scratch = at + act_total;
  for (size_t i = 0; i < n_jobs; ++i) {
    if (!plans[i].converts_acts()) continue;
    if (plans[i].owns_acts) {
      alloc_acts(plans[i], at);
    } else {
      plans[i].xq = plans[plans[i].shares].xq;
      plans[i].xa = plans[plans[i].shares].xa;
      plans[i].xb = plans[plans[i].shares].xb;
    }
  }
  if (nt == 1) return r;

  // Items are whole 16-row groups (packed weights need them; a multiple of the register row tile for the rest).
  // Prefill: about 8 per thread, so that each streams the activations over many rows, ranges of equal counts.
  // Decode (a few tokens): each thread's range is its share of the call's bytes, read front to back as one
  // stream (the prefetch running past an item's end lands in its next item), cut into items of up to half the
  // share (128 to 512 KiB) that shrink towards the range's end, to half of what is left but not under 128 KiB:
  // the items other threads take from the back are small, so the last one taken leaves the others waiting a few
  // µs, not half of a 512 KiB item (on the Zen 5 host the caller waited ~5 µs per call, 4% of Qwen-1.5B Q4_0
  // decode, with items of equal size). Items shrank to a quarter of what was left, down to 32 KiB, until the
  // Zen 4 host's Qwen-1.5B Q4_0 decode took +1.2% / +0.8% (high / usual phase, 71 / 29 rounds of 128 steps in
  // turns in one process) from these larger ones: q/k/v and o were cut into ~12 items per thread. Rows packed in
  // column panels go in whole bands (kPanelBand groups, linear.h), which decode reads panel by panel: items of a
  // few groups cut across the bands read the same Q4_0 down_proj at 42 GB/s against 56 in whole bands (Zen 4
  // host, 2 threads).
  std::vector<Item>& items = ws.items;
  std::vector<size_t>& bounds = ws.bounds;
  bounds.assign(size_t(nt) + 1, 0);
  if (r.max_tokens > kern::kRowTile) {
    const int64_t chunk = std::max<int64_t>(1, total_rows / 16 / (int64_t(nt) * 8)) * 16;
    for (const Plan& p : plans)
      for (int64_t row = 0; p.job && row < p.job->w.rows; row += chunk)
        items.push_back({&p, row, std::min(p.job->w.rows, row + chunk)});
    for (int k = 0; k <= nt; ++k) bounds[size_t(k)] = items.size() * size_t(k) / size_t(nt);
  } else {
    const size_t share = (total_bytes + size_t(nt) - 1) / size_t(nt);
    const size_t max_item = std::clamp<size_t>(share / 2, 128 << 10, 512 << 10), min_item = 128 << 10;
    size_t done = 0;  // bytes in the items so far
    int k = 0;        // the range being filled
    for (const Plan& p : plans) {
      if (!p.job) continue;
      const Weight& w = p.job->w;
      const int64_t unit = 16 * (w.packed && packed_panels(w) > 1 ? kPanelBand : 1);
      const size_t group = std::max<size_t>(1, unit * w.row_bytes());
      for (int64_t row = 0; row < w.rows;) {
        const size_t end = k + 1 < nt ? share * size_t(k + 1) : total_bytes, left = end - std::min(done, end);
        const size_t want = std::clamp(left / 2, min_item, max_item);
        const int64_t r1 = std::min(w.rows, row + unit * int64_t(std::max<size_t>(1, want / group)));
        items.push_back({&p, row, r1});
        done += size_t(r1 - row) * w.row_bytes();
        row = r1;
        while (k + 1 < nt && done >= share * size_t(k + 1)) bounds[size_t(++k)] = items.size();
      }
    }
    while (k < nt) bounds[size_t(++k)] = items.size();
  }
  return r;
}

void convert_all(Workspace& ws) {
  for (Plan& p : ws.plans)
    if (p.converts_acts() && p.owns_acts) quantize_tokens(p, 0, p.job->n_tokens);
}

}  // namespace

// Work items are (job, row chunk) pairs shared by the threads through ItemRanges (ThreadPool::run_elastic): a
// thread slowed by other load takes fewer or none, and which thread computes a row never changes its result.
// Decode (a few tokens): every thread prepares the call on its own workspace (the same items) and converts the
// activations into its own buffer, so that nothing one thread writes is read by another but x, the outputs and
// the range words. Where the two threads sit on different core complexes (the Zen 4 host's "high" bandwidth
// phase, a cache line ~180 ns from one to the other), the caller rewriting the activations and items the worker
// had read in the last call took 3-11 µs per call before the worker could start (Qwen-1.5B Q4_0 shapes: 22 µs of
// a layer's 512); now 1-2.5. Batches convert the activations once, in chunks of tokens shared by the threads.
void linear_multi(const LinearJob* jobs, size_t n_jobs, ThreadPool* pool, const LinearOptions& opt) {
  Workspace& ws = thread_workspace();
  const Prepared pr = prepare(jobs, n_jobs, pool, opt, ws);
  const int nt = pr.nt;
  if (pr.empty) return;

  const bool own_acts = nt > 1 && pr.max_tokens <= kern::kRowTile && pr.act_values < kParallelActValues;
  if (!own_acts) {
    std::vector<TokenChunk>& chunks = ws.chunks;
    chunks.clear();
    for (Plan& p : ws.plans) {
      if (!p.converts_acts() || !p.owns_acts) continue;
      for (int64_t t = 0; t < p.job->n_tokens; t += 16) chunks.push_back({&p, t, std::min(p.job->n_tokens, t + 16)});
    }
    std::atomic<size_t> next{0};
    auto convert = [&](int) {
      for (size_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < chunks.size();)
        quantize_tokens(*chunks[i].plan, chunks[i].t0, chunks[i].t1);
    };
    if (nt > 1 && chunks.size() > 1 && pr.act_values >= kParallelActValues)
      pool->run_elastic(convert);
    else
      convert(0);
  }

  if (nt == 1) {
    for (const Plan& p : ws.plans)
      if (p.job) run_rows(p, 0, p.job->w.rows, pr.scratch);
    ws.trim();
    return;
  }
  if (ws.ranges.size() < size_t(nt)) ws.ranges = std::vector<RangeWord>(size_t(nt));
  ItemRanges ranges(ws.bounds.data(), nt, ws.ranges.data());
  pool->run_elastic([&](int t) {
    Workspace* w = &ws;
    Prepared mine = pr;
    if (t != 0 && own_acts) {  // this thread's own plans, items and activations
      w = &thread_workspace();
      mine = prepare(jobs, n_jobs, pool, opt, *w);
    }
    if (own_acts) convert_all(*w);
    void* sc = mine.scratch + size_t(own_acts ? 0 : t) * mine.scratch_bytes;
    for (size_t i; ranges.take(t, i);) run_rows(*w->items[i].plan, w->items[i].r0, w->items[i].r1, sc);
    if (w != &ws) w->trim();
  });
  ws.trim();
}

}  // namespace dm
