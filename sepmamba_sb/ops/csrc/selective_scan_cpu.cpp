// Selective scan (Mamba-1 SSM recurrence) on the CPU: forward and backward.
//
// Semantics follow mamba-ssm's selective_scan_fn for real A and input-dependent B, C:
//   delta' = softplus(delta + delta_bias)            (each step optional)
//   h_t    = exp(delta'_t * A) * h_{t-1} + delta'_t * B_t * u_t     (h_{-1} = initial_state, else 0)
//   y_t    = <C_t, h_t> + D * u_t
//   out_t  = y_t * silu(z_t)                          (when z is given)
// Shapes: u, delta, z, out (batch, dim, len), time dense or channels dense (the (batch, len, dim) layout
// a linear layer makes, read and written in place; outputs take u's layout); A (dim, nstate); B, C
// (batch, nstate, len), any strides (the (batch, len, nstate) layout x_proj makes is read in place);
// D, delta_bias (dim); initial_state and the last state (batch, dim, nstate). The initial state lets a
// stream continue a scan chunk by chunk; its gradient is the adjoint state left after the first step.
// Grouped parameters: A (groups, dim, nstate), D and delta_bias (groups, dim), with batch a multiple of
// groups; batch row b uses group b / (batch / groups) (a bidirectional layer's two directions as rows).
// Fused step-size projection: given delta_proj_weight (groups, dim, R), delta is the low-rank input
// (batch, R, len) and the step size is delta_proj_weight @ delta, computed per tile (dt_proj's output is
// never stored).
//
// Layout of the work: one task is one batch item and one block of W = Vectorized<scalar_t>::size()
// channels. The state h[n] of a block is W lanes wide, so the recurrence runs on whole vectors with no
// horizontal reduction in the forward pass. Time is walked in chunks of kChunk steps: each chunk of
// u/delta/z is transposed into a small time-major tile (the inputs are channel-major) and the output
// tile is transposed back. The forward pass can save the state at every chunk start ("checkpoints",
// batch*dim*nstate*ceil(len/kChunk) values); the backward pass walks the chunks in reverse, recomputes
// the chunk's states and decays from its checkpoint into a tile, then runs the adjoint recurrence.
// Tasks are spread over threads with at::parallel_for. The last block of channels may be partial: its
// missing lanes are zero-filled (u = 0 keeps their state at zero) and never stored.
// bfloat16 activations (reduced-precision inference, forward only): u, delta, B, C, z and the output are
// read and written as bfloat16 (io_t) and widened into float tiles; the state, the parameters (A, D,
// delta_bias, delta_proj_weight, initial and last states) and every sum are float.

#include <torch/extension.h>

#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <new>
#include <type_traits>
#include <vector>

namespace {

using at::vec::Vectorized;

constexpr int64_t kChunk = 64;  // time steps per tile and per checkpoint
constexpr int64_t kMaxStaticState = 16;

// Work buffers hold one vector per row: 64-byte aligned, so that no vector load or store splits a cache
// line (split stores also defeat store-to-load forwarding, which the tiles rely on).
template <typename T>
struct Aligned64 {
  using value_type = T;
  Aligned64() = default;
  template <typename U>
  Aligned64(const Aligned64<U>&) {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64))); }
  void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t(64)); }
  template <typename U>
  bool operator==(const Aligned64<U>&) const { return true; }
  template <typename U>
  bool operator!=(const Aligned64<U>&) const { return false; }
};
template <typename T>
using Buffer = std::vector<T, Aligned64<T>>;

template <typename scalar_t, typename io_t = scalar_t>
struct ScanArgs {
  int64_t batch = 0, dim = 0, len = 0, nstate = 0;
  const io_t* u = nullptr;
  const io_t* delta = nullptr;
  const scalar_t* A = nullptr;
  const io_t* B = nullptr;
  const io_t* C = nullptr;
  const scalar_t* D = nullptr;           // may be null
  const io_t* z = nullptr;               // may be null
  const scalar_t* delta_bias = nullptr;  // may be null
  const scalar_t* h0 = nullptr;          // initial state (batch, dim, nstate), contiguous; may be null
  const scalar_t* dtw = nullptr;         // delta_proj_weight (groups, dim, R); may be null
  int64_t groups = 1, R = 0;
  // (batch, dim, len) strides; for a fused step-size projection, delta's "dim" stride is over R
  int64_t u_sb = 0, u_sd = 0, u_st = 1, delta_sb = 0, delta_sd = 0, delta_st = 1, z_sb = 0, z_sd = 0, z_st = 1;
  int64_t o_sb = 0, o_sd = 0, o_st = 1;  // out, and in the backward pass du, ddelta, dz (u's layout)
  int64_t B_sb = 0, B_sn = 0, B_st = 1, C_sb = 0, C_sn = 0, C_st = 1;  // B and C: any strides
  bool softplus = false;

  int64_t group(int64_t b) const { return b / (batch / groups); }
};

// The per-state vectors of one block: a fixed array (kept in registers) when the state size is a
// compile-time constant, a heap array otherwise.
template <typename V, int64_t kN>
struct StateVecs {
  std::array<V, kN> v;
  StateVecs(int64_t, const V& init) { v.fill(init); }
  V& operator[](int64_t i) { return v[i]; }
  const V& operator[](int64_t i) const { return v[i]; }
};

template <typename V>
struct StateVecs<V, 0> {
  std::vector<V> v;
  StateVecs(int64_t n, const V& init) : v(n, init) {}
  V& operator[](int64_t i) { return v[i]; }
  const V& operator[](int64_t i) const { return v[i]; }
};

template <typename scalar_t, int64_t kN>
StateVecs<Vectorized<scalar_t>, kN> load_A(const scalar_t* A, int64_t N, int64_t d0, int64_t nvalid) {
  using Vec = Vectorized<scalar_t>;
  constexpr int64_t W = Vec::size();
  StateVecs<Vec, kN> A_v(N, Vec(scalar_t(0)));
  for (int64_t n = 0; n < N; ++n) {
    alignas(64) scalar_t col[W] = {};
    for (int64_t w = 0; w < nvalid; ++w) col[w] = A[(d0 + w) * N + n];
    A_v[n] = Vec::loadu(col);
  }
  return A_v;
}

template <typename scalar_t>
inline Vectorized<scalar_t> vexp(const Vectorized<scalar_t>& x) {
  // ATen's polynomial exp (about 20 ulp for float; falls back to Sleef for double). It flushes
  // arguments below log(FLT_MIN) to exactly 0, so very large decays give exact zeros, never NaN.
  return x.exp_u20();
}

#if defined(CPU_CAPABILITY_AVX512)
// exp for float in 11 AVX-512 instructions (exp_u20 takes about 20, and the scan's decays are most of
// its work): 2^(x log2 e) = 2^f * 2^n with n = round(x log2 e), f in [-1/2, 1/2], 2^f by its degree-6
// Taylor polynomial (truncation 1.2e-7), 2^n applied by scalef. Below log(FLT_MIN) it gives exactly 0,
// as exp_u20; above log(FLT_MAX) it saturates. Relative error about 2e-7 for |x| < 10, growing as
// |x| 6e-8 beyond (the rounding of x log2 e).
template <>
inline Vectorized<float> vexp<float>(const Vectorized<float>& v) {
  const __m512 x = _mm512_min_ps(v, _mm512_set1_ps(88.72283f));
  const __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.33654f), _CMP_GE_OQ);
  const __m512 t = _mm512_mul_ps(x, _mm512_set1_ps(1.44269504f));
  const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(t, n);
  __m512 p = _mm512_set1_ps(1.5403530e-4f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3333558e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6181291e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5504109e-2f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022651e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  return _mm512_maskz_scalef_ps(keep, p, n);
}
#endif

template <typename scalar_t>
inline Vectorized<scalar_t> vsigmoid(const Vectorized<scalar_t>& x) {
  const Vectorized<scalar_t> one(scalar_t(1));
  return one / (one + vexp(x.neg()));
}

// log(1 + e) for e in [0, 1]: 2 atanh(s), s = e / (2 + e) <= 1/3, by its series to s^13 (truncation
// below 1.5e-8 relative), a division and 8 fused multiply-adds instead of a call to Sleef's log1p.
template <typename scalar_t>
inline Vectorized<scalar_t> vlog1p_unit(const Vectorized<scalar_t>& e) {
  using Vec = Vectorized<scalar_t>;
  const Vec s = e / (Vec(scalar_t(2)) + e);
  const Vec s2 = s * s;
  Vec p(scalar_t(2.0 / 13));
  p = at::vec::fmadd(p, s2, Vec(scalar_t(2.0 / 11)));
  p = at::vec::fmadd(p, s2, Vec(scalar_t(2.0 / 9)));
  p = at::vec::fmadd(p, s2, Vec(scalar_t(2.0 / 7)));
  p = at::vec::fmadd(p, s2, Vec(scalar_t(2.0 / 5)));
  p = at::vec::fmadd(p, s2, Vec(scalar_t(2.0 / 3)));
  p = at::vec::fmadd(p, s2, Vec(scalar_t(2)));
  return p * s;
}

// softplus with mamba-ssm's threshold: x for x > 20, log1p(exp(x)) otherwise. For float,
// max(x, 0) + log1p(exp(-|x|)) (equal to x in float beyond 20, where the correction is below 2e-9);
// for double, Sleef's log1p.
template <typename scalar_t>
inline Vectorized<scalar_t> vsoftplus(const Vectorized<scalar_t>& x) {
  const Vectorized<scalar_t> thr(scalar_t(20));
  if constexpr (std::is_same_v<scalar_t, float>) {
    const Vectorized<scalar_t> zero(scalar_t(0));
    return at::vec::maximum(x, zero) + vlog1p_unit(vexp(at::vec::minimum(x, x.neg())));
  }
  const auto soft = vexp(at::vec::minimum(x, thr)).log1p();
  return Vectorized<scalar_t>::blendv(soft, x, x > thr);
}

// d softplus / dx with the same threshold.
template <typename scalar_t>
inline Vectorized<scalar_t> vsoftplus_grad(const Vectorized<scalar_t>& x) {
  const Vectorized<scalar_t> thr(scalar_t(20));
  return Vectorized<scalar_t>::blendv(vsigmoid(x), Vectorized<scalar_t>(scalar_t(1)), x > thr);
}

// Asks for the next chunk's lines while this one is computed: a block reads W rows of a time-dense
// input (too many streams for the hardware prefetcher), or one short line per step of a channels-dense
// one (a stride it does not follow). With write, for lines about to be stored.
template <typename scalar_t>
void prefetch_slab(const scalar_t* base, int64_t sd, int64_t st, int64_t d0, int64_t nvalid, int64_t t0, int64_t nt,
                   bool write = false) {
  constexpr int64_t kLine = 64 / sizeof(scalar_t);
  if (sd == 1) {
    for (int64_t t = 0; t < nt; ++t) {
      const scalar_t* p = base + d0 + (t0 + t) * st;
      write ? __builtin_prefetch(p, 1, 2) : __builtin_prefetch(p, 0, 2);
      if (nvalid * sizeof(scalar_t) > 64 - (reinterpret_cast<uintptr_t>(p) & 63))  // the row's piece spans two lines
        write ? __builtin_prefetch(p + nvalid - 1, 1, 2) : __builtin_prefetch(p + nvalid - 1, 0, 2);
    }
    return;
  }
  if (st != 1) return;
  for (int64_t w = 0; w < nvalid; ++w) {
    const scalar_t* row = base + (d0 + w) * sd + t0;
    for (int64_t t = 0; t < nt; t += kLine) write ? __builtin_prefetch(row + t, 1, 2) : __builtin_prefetch(row + t, 0, 2);
  }
}

// Channels [d0, d0+nvalid) x steps [t0, t0+nt) of a (dim, len) slice with strides (sd, st) -> tile[t][w],
// zeros in the missing lanes. Channels dense (sd == 1): one vector per step; time dense: a transpose.
// Then a prefetch of the next chunk (next_nt steps) of the same channels.
// A bfloat16 input (io_t) is widened to the tile's float.
template <typename scalar_t, typename io_t>
void load_tile(const io_t* base, int64_t sd, int64_t st, int64_t d0, int64_t nvalid, int64_t t0, int64_t nt,
               scalar_t* tile, int64_t next_t0 = 0, int64_t next_nt = 0) {
  using Vec = Vectorized<scalar_t>;
  constexpr int64_t W = Vec::size();
  if (sd == 1) {
    if constexpr (std::is_same_v<io_t, scalar_t>) {
      for (int64_t t = 0; t < nt; ++t) Vec::loadu(base + d0 + (t0 + t) * st, nvalid).store(tile + t * W);
    } else {
      static_assert(std::is_same_v<io_t, c10::BFloat16> && std::is_same_v<scalar_t, float>);
      for (int64_t t = 0; t < nt; ++t)  // W bfloat16 (zeros past nvalid), widened: the first half of the pair
        std::get<0>(at::vec::convert_bfloat16_float(Vectorized<io_t>::loadu(base + d0 + (t0 + t) * st, nvalid)))
            .store(tile + t * W);
    }
  } else {
    for (int64_t w = 0; w < nvalid; ++w) {
      const io_t* row = base + (d0 + w) * sd + t0 * st;
      for (int64_t t = 0; t < nt; ++t) tile[t * W + w] = static_cast<scalar_t>(row[t * st]);
    }
    for (int64_t w = nvalid; w < W; ++w)
      for (int64_t t = 0; t < nt; ++t) tile[t * W + w] = scalar_t(0);
  }
  if (next_nt > 0) prefetch_slab(base, sd, st, d0, nvalid, next_t0, next_nt);
}

// A bfloat16 output (io_t) is rounded from the tile's float.
template <typename scalar_t, typename io_t>
void store_tile(const scalar_t* tile, int64_t d0, int64_t nvalid, int64_t t0, int64_t nt, io_t* base,
                int64_t sd, int64_t st) {
  using Vec = Vectorized<scalar_t>;
  constexpr int64_t W = Vec::size();
  if (sd == 1) {
    if constexpr (std::is_same_v<io_t, scalar_t>) {
      for (int64_t t = 0; t < nt; ++t) Vec::loadu(tile + t * W).store(base + d0 + (t0 + t) * st, nvalid);
    } else {
      static_assert(std::is_same_v<io_t, c10::BFloat16> && std::is_same_v<scalar_t, float>);
      for (int64_t t = 0; t < nt; ++t)  // rounded to bfloat16 (round to nearest even), the first nvalid stored
        at::vec::convert_float_bfloat16(Vec::loadu(tile + t * W), Vec(0.f)).store(base + d0 + (t0 + t) * st, nvalid);
    }
    return;
  }
  for (int64_t w = 0; w < nvalid; ++w) {
    io_t* row = base + (d0 + w) * sd + t0 * st;
    for (int64_t t = 0; t < nt; ++t) row[t * st] = static_cast<io_t>(tile[t * W + w]);
  }
}

// Per-lane vectors of a per-channel (dim,) parameter; zero in missing lanes.
template <typename scalar_t>
Vectorized<scalar_t> load_channels(const scalar_t* p, int64_t d0, int64_t nvalid, scalar_t fill) {
  if (p == nullptr) return Vectorized<scalar_t>(fill);
  return Vectorized<scalar_t>::loadu(p + d0, nvalid);
}

// Tiles of one chunk: u, delta' (after bias and softplus), raw delta+bias (backward only) and z.
template <typename scalar_t>
struct ChunkTiles {
  Buffer<scalar_t> u, dt, raw, z;
  explicit ChunkTiles(bool with_z) {
    constexpr int64_t W = Vectorized<scalar_t>::size();
    u.resize(kChunk * W);
    dt.resize(kChunk * W);
    raw.resize(kChunk * W);
    if (with_z) z.resize(kChunk * W);
  }

  // Loads chunk [t0, t0+nt) and prefetches [next_t0, next_t0+next_nt) (next_nt = 0: none). With a
  // fused step-size projection, wdt holds its R columns as lanes and delta is the low-rank input.
  template <typename io_t>
  void load(const ScanArgs<scalar_t, io_t>& a, int64_t b, int64_t d0, int64_t nvalid, int64_t t0, int64_t nt,
            const Vectorized<scalar_t>& bias, const Vectorized<scalar_t>* wdt, int64_t next_t0, int64_t next_nt) {
    using Vec = Vectorized<scalar_t>;
    constexpr int64_t W = Vec::size();
    load_tile(a.u + b * a.u_sb, a.u_sd, a.u_st, d0, nvalid, t0, nt, u.data(), next_t0, next_nt);
    if (a.z != nullptr) load_tile(a.z + b * a.z_sb, a.z_sd, a.z_st, d0, nvalid, t0, nt, z.data(), next_t0, next_nt);
    if (a.dtw != nullptr) {
      const io_t* low = a.delta + b * a.delta_sb + t0 * a.delta_st;
      for (int64_t t = 0; t < nt; ++t) {
        Vec r = bias;
        for (int64_t k = 0; k < a.R; ++k)
          r = at::vec::fmadd(wdt[k], Vec(static_cast<scalar_t>(low[t * a.delta_st + k * a.delta_sd])), r);
        r.store(raw.data() + t * W);
        (a.softplus ? vsoftplus(r) : r).store(dt.data() + t * W);
      }
      if (next_nt > 0) prefetch_slab(a.delta + b * a.delta_sb, a.delta_sd, a.delta_st, 0, a.R, next_t0, next_nt);
      return;
    }
    load_tile(a.delta + b * a.delta_sb, a.delta_sd, a.delta_st, d0, nvalid, t0, nt, raw.data(), next_t0, next_nt);
    for (int64_t t = 0; t < nt; ++t) {
      Vec r = Vec::loadu(raw.data() + t * W) + bias;
      r.store(raw.data() + t * W);
      (a.softplus ? vsoftplus(r) : r).store(dt.data() + t * W);
    }
  }
};

// Gathers src[0], src[stride], ... (one value per channel) into the first nvalid lanes; zeros after.
template <typename scalar_t>
Vectorized<scalar_t> load_lanes(const scalar_t* src, int64_t stride, int64_t nvalid) {
  alignas(64) scalar_t col[Vectorized<scalar_t>::size()] = {};
  for (int64_t w = 0; w < nvalid; ++w) col[w] = src[w * stride];
  return Vectorized<scalar_t>::loadu(col);
}

// Scatters the first nvalid lanes of v to dst[0], dst[stride], ... (one value per channel).
template <typename scalar_t>
void store_lanes(const Vectorized<scalar_t>& v, scalar_t* dst, int64_t stride, int64_t nvalid) {
  alignas(64) scalar_t col[Vectorized<scalar_t>::size()];
  v.store(col);
  for (int64_t w = 0; w < nvalid; ++w) dst[w * stride] = col[w];
}

// One task: batch item b, channels [d0, d0 + nvalid), with the per-channel parameters as lanes.
// kN > 0 fixes the state size at compile time so that the state stays in registers; kN == 0 is any.
template <typename scalar_t, int64_t kN, typename io_t = scalar_t>
struct Block {
  using Vec = Vectorized<scalar_t>;
  static constexpr int64_t W = Vec::size();
  const ScanArgs<scalar_t, io_t>& a;
  const int64_t b, blk, d0, nvalid, N, nchunk, g;
  const StateVecs<Vec, kN> A;
  const Vec D, bias;
  const io_t* const Bb;
  const io_t* const Cb;
  std::vector<Vec> wdt;  // the fused step-size projection's R columns, as lanes

  Block(const ScanArgs<scalar_t, io_t>& args, int64_t b_, int64_t blk_)
      : a(args), b(b_), blk(blk_), d0(blk_ * W), nvalid(std::min<int64_t>(W, args.dim - blk_ * W)),
        N(kN > 0 ? kN : args.nstate), nchunk((args.len + kChunk - 1) / kChunk), g(args.group(b_)),
        A(load_A<scalar_t, kN>(args.A + g * args.dim * N, N, d0, nvalid)),
        D(load_channels(args.D ? args.D + g * args.dim : nullptr, d0, nvalid, scalar_t(0))),
        bias(load_channels(args.delta_bias ? args.delta_bias + g * args.dim : nullptr, d0, nvalid, scalar_t(0))),
        Bb(args.B + b_ * args.B_sb), Cb(args.C + b_ * args.C_sb) {
    if (args.dtw != nullptr)
      for (int64_t k = 0; k < args.R; ++k)
        wdt.push_back(load_lanes(args.dtw + (g * args.dim + d0) * args.R + k, args.R, nvalid));
  }

  void load(ChunkTiles<scalar_t>& tiles, int64_t t0, int64_t nt, int64_t next_t0, int64_t next_nt) const {
    tiles.load(a, b, d0, nvalid, t0, nt, bias, wdt.empty() ? nullptr : wdt.data(), next_t0, next_nt);
  }

  // The state before step 0: the initial state's lanes, or zeros.
  StateVecs<Vec, kN> initial_state() const {
    StateVecs<Vec, kN> h(N, Vec(scalar_t(0)));
    if (a.h0 != nullptr)
      for (int64_t n = 0; n < N; ++n) h[n] = load_lanes(a.h0 + (b * a.dim + d0) * N + n, N, nvalid);
    return h;
  }

  // Offset of chunk c's checkpoint in the (batch, blocks, chunks, nstate, W) checkpoint tensor.
  int64_t checkpoint(int64_t c) const {
    const int64_t nblk = (a.dim + W - 1) / W;
    return (((b * nblk + blk) * nchunk + c) * N) * W;
  }

  // Step t (absolute) of the recurrence: h[n] = exp(dt A[n]) h[n] + dt x B_t[n] for every state,
  // visit(n, decay) after each update. With kOutput, returns D x + <C_t, h> (else D x).
  template <bool kOutput, typename Visit>
  Vec step(StateVecs<Vec, kN>& h, const Vec& x, const Vec& dt, int64_t t, Visit&& visit) const {
    const Vec dtx = dt * x;
    Vec y = D * x, y2(scalar_t(0));  // two partial sums: half the dependency chain through y
    const io_t* Bt = Bb + t * a.B_st;
    const io_t* Ct = Cb + t * a.C_st;
    // a compile-time trip count when kN > 0, so that the loop unrolls and h stays in registers
#pragma GCC unroll 16
    for (int64_t n = 0; n < (kN > 0 ? kN : N); ++n) {
      const Vec decay = vexp(dt * A[n]);
      h[n] = at::vec::fmadd(decay, h[n], dtx * Vec(static_cast<scalar_t>(Bt[n * a.B_sn])));
      visit(n, decay);
      if (kOutput) {
        const Vec c(static_cast<scalar_t>(Ct[n * a.C_sn]));
        if (n % 2 == 0) y = at::vec::fmadd(h[n], c, y);
        else y2 = at::vec::fmadd(h[n], c, y2);
      }
    }
    return kOutput ? y + y2 : y;
  }
};

// Chunk c of one block: the recurrence from h (updated), the output tile stored, h saved first as the
// chunk's checkpoint when ckpt is given.
template <typename scalar_t, int64_t kN, typename io_t>
void forward_chunk(const Block<scalar_t, kN, io_t>& blk_, StateVecs<Vectorized<scalar_t>, kN>& h, int64_t c,
                   ChunkTiles<scalar_t>& tiles, Buffer<scalar_t>& ybuf, io_t* out, scalar_t* ckpt) {
  using Vec = Vectorized<scalar_t>;
  constexpr int64_t W = Vec::size();
  const ScanArgs<scalar_t, io_t>& a = blk_.a;
  const int64_t t0 = c * kChunk, nt = std::min(kChunk, a.len - t0);
  const int64_t next_nt = std::max<int64_t>(0, std::min(kChunk, a.len - t0 - kChunk));
  auto no_visit = [](int64_t, const Vec&) {};
  blk_.load(tiles, t0, nt, t0 + kChunk, next_nt);
  if (ckpt != nullptr) {
    scalar_t* dst = ckpt + blk_.checkpoint(c);
    for (int64_t n = 0; n < blk_.N; ++n) h[n].store(dst + n * W);
  }
  for (int64_t t = 0; t < nt; ++t) {
    const Vec x = Vec::loadu(tiles.u.data() + t * W);
    Vec y = blk_.template step<true>(h, x, Vec::loadu(tiles.dt.data() + t * W), t0 + t, no_visit);
    if (a.z != nullptr) {
      const Vec zt = Vec::loadu(tiles.z.data() + t * W);
      y = y * zt * vsigmoid(zt);
    }
    y.store(ybuf.data() + t * W);
  }
  store_tile(ybuf.data(), blk_.d0, blk_.nvalid, t0, nt, out + blk_.b * a.o_sb, a.o_sd, a.o_st);
  if (next_nt > 0) prefetch_slab(out + blk_.b * a.o_sb, a.o_sd, a.o_st, blk_.d0, blk_.nvalid, t0 + kChunk, next_nt, true);
}

// The Block of every channel block [blk0, blk1) of batch row b.
template <typename scalar_t, int64_t kN, typename io_t = scalar_t>
std::vector<Block<scalar_t, kN, io_t>> span_blocks(const ScanArgs<scalar_t, io_t>& a, int64_t b, int64_t blk0,
                                                   int64_t blk1) {
  std::vector<Block<scalar_t, kN, io_t>> blocks;
  blocks.reserve(blk1 - blk0);
  for (int64_t blk = blk0; blk < blk1; ++blk) blocks.emplace_back(a, b, blk);
  return blocks;
}

// Blocks [blk0, blk1) of batch row b. Time is the outer loop: each chunk is run for every block of the
// span before the next, so a time-major input is read as one slab of kChunk rows (cache and TLB
// friendly), and each block's state waits in memory between chunks.
template <typename scalar_t, int64_t kN, typename io_t>
void forward_span(const ScanArgs<scalar_t, io_t>& a, int64_t b, int64_t blk0, int64_t blk1, ChunkTiles<scalar_t>& tiles,
                  Buffer<scalar_t>& ybuf, io_t* out, scalar_t* ckpt, scalar_t* last_state) {
  using Vec = Vectorized<scalar_t>;
  const auto blocks = span_blocks<scalar_t, kN, io_t>(a, b, blk0, blk1);
  std::vector<StateVecs<Vec, kN>> h;
  h.reserve(blocks.size());
  for (const auto& k : blocks) h.push_back(k.initial_state());
  const int64_t nchunk = (a.len + kChunk - 1) / kChunk;
  for (int64_t c = 0; c < nchunk; ++c)
    for (size_t i = 0; i < blocks.size(); ++i) forward_chunk(blocks[i], h[i], c, tiles, ybuf, out, ckpt);
  if (last_state != nullptr)
    for (size_t i = 0; i < blocks.size(); ++i)
      for (int64_t n = 0; n < blocks[i].N; ++n)
        store_lanes(h[i][n], last_state + (b * a.dim + blocks[i].d0) * blocks[i].N + n, blocks[i].N, blocks[i].nvalid);
}

// Gradient buffers shared by the tasks. dB/dC are sums over channels, so each thread accumulates
// its own copy (summed at the end); dA/dD/dbias are per (batch, channel), so no task shares them.
template <typename scalar_t>
struct GradArgs {
  const scalar_t* dout = nullptr;
  int64_t dout_sb = 0, dout_sd = 0, dout_st = 1;
  scalar_t* du = nullptr;
  scalar_t* ddelta = nullptr;
  scalar_t* dz = nullptr;
  scalar_t* dA_part = nullptr;     // (batch, dim, nstate)
  scalar_t* dD_part = nullptr;     // (batch, dim)
  scalar_t* dbias_part = nullptr;  // (batch, dim)
  scalar_t* dh0 = nullptr;         // (batch, dim, nstate), when there is an initial state
  scalar_t* dB_thread = nullptr;   // (threads, batch, nstate, len)
  scalar_t* dC_thread = nullptr;
};

// What one block carries from chunk to chunk in the backward pass (chunks are walked last first).
template <typename scalar_t, int64_t kN>
struct BackwardCarry {
  using Vec = Vectorized<scalar_t>;
  StateVecs<Vec, kN> dh, dA;  // dL/dh after the chunk; dL/dA so far
  Vec dD, dbias;
  explicit BackwardCarry(int64_t N) : dh(N, Vec(scalar_t(0))), dA(N, Vec(scalar_t(0))), dD(scalar_t(0)), dbias(scalar_t(0)) {}
};

// Work tiles of one thread in the backward pass.
template <typename scalar_t>
struct BackwardWork {
  Buffer<scalar_t> work, decays, states;  // work: dout (becomes du), ddelta, dz, y
  // dB and dC of the chunk before the sum over channels: lane sums of every block of the span, reduced
  // once per span and chunk instead of once per block, step and state
  Buffer<scalar_t> dB, dC;
  BackwardWork(int64_t N) {
    constexpr int64_t W = Vectorized<scalar_t>::size();
    work.resize(4 * kChunk * W);
    decays.resize(kChunk * N * W);
    states.resize((kChunk + 1) * N * W);
    dB.resize(kChunk * N * W);
    dC.resize(kChunk * N * W);
  }
};

// Chunk c of one block: recompute its states from the checkpoint, then the adjoint recurrence.
template <typename scalar_t, int64_t kN>
void backward_chunk(const Block<scalar_t, kN>& blk_, const GradArgs<scalar_t>& g, const scalar_t* ckpt, int64_t c,
                    ChunkTiles<scalar_t>& tiles, BackwardWork<scalar_t>& wk, BackwardCarry<scalar_t, kN>& carry) {
  using Vec = Vectorized<scalar_t>;
  constexpr int64_t W = Vec::size();
  const ScanArgs<scalar_t>& a = blk_.a;
  const int64_t N = blk_.N, L = a.len, d0 = blk_.d0, nvalid = blk_.nvalid, b = blk_.b;
  const bool has_z = a.z != nullptr;
  scalar_t* dout_t = wk.work.data();
  scalar_t* ddt_t = dout_t + kChunk * W;
  scalar_t* dz_t = ddt_t + kChunk * W;
  scalar_t* y_t = dz_t + kChunk * W;
  const int64_t t0 = c * kChunk;
  const int64_t nt = std::min(kChunk, L - t0);
  const int64_t prev_nt = c > 0 ? kChunk : 0;  // chunks are walked backwards
  blk_.load(tiles, t0, nt, t0 - prev_nt, prev_nt);
  load_tile(g.dout + b * g.dout_sb, g.dout_sd, g.dout_st, d0, nvalid, t0, nt, dout_t, t0 - prev_nt, prev_nt);

  // Recompute the chunk: states[t+1][n] = h_t, states[0][n] = the checkpoint (h before the chunk).
  StateVecs<Vec, kN> h(N, Vec(scalar_t(0)));
  const scalar_t* src = ckpt + blk_.checkpoint(c);
  for (int64_t n = 0; n < N; ++n) {
    h[n] = Vec::loadu(src + n * W);
    h[n].store(wk.states.data() + n * W);
  }
  for (int64_t t = 0; t < nt; ++t) {
    scalar_t* dec = wk.decays.data() + t * N * W;
    scalar_t* st = wk.states.data() + (t + 1) * N * W;
    auto keep = [&](int64_t n, const Vec& decay) {
      decay.store(dec + n * W);
      h[n].store(st + n * W);
    };
    const Vec x = Vec::loadu(tiles.u.data() + t * W);
    const Vec dt = Vec::loadu(tiles.dt.data() + t * W);
    if (has_z)
      blk_.template step<true>(h, x, dt, t0 + t, keep).store(y_t + t * W);  // y before the gate, for dz
    else
      blk_.template step<false>(h, x, dt, t0 + t, keep);
  }

  // Adjoint recurrence, last step first. carry.dh carries dL/dh_t from later steps.
  for (int64_t t = nt - 1; t >= 0; --t) {
    const Vec x = Vec::loadu(tiles.u.data() + t * W);
    const Vec dt = Vec::loadu(tiles.dt.data() + t * W);
    Vec gy = Vec::loadu(dout_t + t * W);  // dL/dy_t
    if (has_z) {
      const Vec zt = Vec::loadu(tiles.z.data() + t * W);
      const Vec sig = vsigmoid(zt);
      const Vec one(scalar_t(1));
      const Vec dsilu = sig * (one + zt * (one - sig));
      (gy * Vec::loadu(y_t + t * W) * dsilu).store(dz_t + t * W);
      gy = gy * zt * sig;
    }
    carry.dD = at::vec::fmadd(gy, x, carry.dD);
    Vec du = blk_.D * gy;
    Vec ddt(scalar_t(0));
    const Vec dtx = dt * x;
    const scalar_t* Bt = blk_.Bb + (t0 + t) * a.B_st;
    const scalar_t* Ct = blk_.Cb + (t0 + t) * a.C_st;
    const scalar_t* dec = wk.decays.data() + t * N * W;
    const scalar_t* st = wk.states.data() + (t + 1) * N * W;
    const scalar_t* st_prev = wk.states.data() + t * N * W;
    for (int64_t n = 0; n < N; ++n) {
      const Vec Bn(Bt[n * a.B_sn]);
      const Vec Cn(Ct[n * a.C_sn]);
      const Vec hn = Vec::loadu(st + n * W);
      const Vec decay = Vec::loadu(dec + n * W);
      scalar_t* dCv = wk.dC.data() + (t * N + n) * W;
      at::vec::fmadd(gy, hn, Vec::loadu(dCv)).store(dCv);
      const Vec dhn = at::vec::fmadd(gy, Cn, carry.dh[n]);   // total dL/dh_t
      const Vec dlog = dhn * Vec::loadu(st_prev + n * W) * decay;  // dL/d(dt*A)
      ddt = at::vec::fmadd(dlog, blk_.A[n], at::vec::fmadd(dhn * Bn, x, ddt));
      carry.dA[n] = at::vec::fmadd(dlog, dt, carry.dA[n]);
      du = at::vec::fmadd(dhn, Bn * dt, du);
      scalar_t* dBv = wk.dB.data() + (t * N + n) * W;
      at::vec::fmadd(dhn, dtx, Vec::loadu(dBv)).store(dBv);
      carry.dh[n] = dhn * decay;
    }
    if (a.softplus) ddt = ddt * vsoftplus_grad(Vec::loadu(tiles.raw.data() + t * W));
    carry.dbias = carry.dbias + ddt;
    du.store(dout_t + t * W);
    ddt.store(ddt_t + t * W);
  }
  store_tile(dout_t, d0, nvalid, t0, nt, g.du + b * a.o_sb, a.o_sd, a.o_st);
  store_tile(ddt_t, d0, nvalid, t0, nt, g.ddelta + b * a.o_sb, a.o_sd, a.o_st);
  if (has_z) store_tile(dz_t, d0, nvalid, t0, nt, g.dz + b * a.o_sb, a.o_sd, a.o_st);
}

// Blocks [blk0, blk1) of batch row b, chunks last first, each chunk for every block of the span
// before the previous chunk (as forward_span).
template <typename scalar_t, int64_t kN>
void backward_span(const ScanArgs<scalar_t>& a, const GradArgs<scalar_t>& g, const scalar_t* ckpt, int64_t b,
                   int64_t blk0, int64_t blk1, ChunkTiles<scalar_t>& tiles, BackwardWork<scalar_t>& wk, int64_t thread) {
  const auto blocks = span_blocks<scalar_t, kN>(a, b, blk0, blk1);
  std::vector<BackwardCarry<scalar_t, kN>> carry;
  carry.reserve(blocks.size());
  for (const auto& k : blocks) carry.emplace_back(k.N);
  using Vec = Vectorized<scalar_t>;
  constexpr int64_t W = Vec::size();
  const int64_t nchunk = (a.len + kChunk - 1) / kChunk, N = a.nstate;
  scalar_t* dBb = g.dB_thread + (thread * a.batch + b) * N * a.len;
  scalar_t* dCb = g.dC_thread + (thread * a.batch + b) * N * a.len;
  for (int64_t c = nchunk - 1; c >= 0; --c) {
    std::fill(wk.dB.begin(), wk.dB.end(), scalar_t(0));
    std::fill(wk.dC.begin(), wk.dC.end(), scalar_t(0));
    for (size_t i = 0; i < blocks.size(); ++i) backward_chunk(blocks[i], g, ckpt, c, tiles, wk, carry[i]);
    const int64_t t0 = c * kChunk, nt = std::min(kChunk, a.len - t0);
    for (int64_t t = 0; t < nt; ++t)
      for (int64_t n = 0; n < N; ++n) {
        dBb[n * a.len + t0 + t] += at::vec::vec_reduce_all<scalar_t>(std::plus<Vec>(), Vec::loadu(wk.dB.data() + (t * N + n) * W));
        dCb[n * a.len + t0 + t] += at::vec::vec_reduce_all<scalar_t>(std::plus<Vec>(), Vec::loadu(wk.dC.data() + (t * N + n) * W));
      }
  }
  for (size_t i = 0; i < blocks.size(); ++i) {
    const auto& k = blocks[i];
    const int64_t N = k.N, at_ = b * a.dim + k.d0;
    for (int64_t n = 0; n < N; ++n) store_lanes(carry[i].dA[n], g.dA_part + at_ * N + n, N, k.nvalid);
    store_lanes(carry[i].dD, g.dD_part + at_, 1, k.nvalid);
    store_lanes(carry[i].dbias, g.dbias_part + at_, 1, k.nvalid);
    if (g.dh0 != nullptr)  // dh now carries dL/dh_{-1}
      for (int64_t n = 0; n < N; ++n) store_lanes(carry[i].dh[n], g.dh0 + at_ * N + n, N, k.nvalid);
  }
}

// A (batch, dim, len) tensor the kernels read in place: time dense or channels dense (any batch stride).
bool dense_rows(const at::Tensor& t) { return t.size(2) == 1 || t.stride(2) == 1 || t.size(1) == 1 || t.stride(1) == 1; }

// An empty (batch, dim, len) tensor with like's layout: (batch, len, dim) memory if like is channels dense.
at::Tensor empty_like_layout(const at::Tensor& like) {
  const auto batch = like.size(0), dim = like.size(1), len = like.size(2);
  if (dim > 1 && len > 1 && like.stride(1) == 1) return at::empty({batch, len, dim}, like.options()).transpose(1, 2);
  return at::empty({batch, dim, len}, like.options());
}

// The dtype the kernels compute in: float for bfloat16 activations, else the activations' own.
at::ScalarType compute_type(const at::Tensor& u) {
  return u.scalar_type() == at::kBFloat16 ? at::kFloat : u.scalar_type();
}

// A per-channel parameter: (dim,) or, grouped, (groups, dim) [(.., nstate) or (.., R) for A and the
// projection], contiguous, in the compute dtype of u.
void check_param(const at::Tensor& t, const at::Tensor& u, int64_t groups, int64_t dim, int64_t last, const char* name) {
  TORCH_CHECK(t.scalar_type() == compute_type(u) && t.device().is_cpu(), name,
              " must be a CPU tensor with the dtype of u (float32 when u is bfloat16)");
  const bool grouped = t.dim() == (last > 0 ? 3 : 2);
  TORCH_CHECK(t.is_contiguous() && t.dim() == (last > 0 ? 2 : 1) + (grouped ? 1 : 0) &&
                  (!grouped || t.size(0) == groups) && t.size(grouped ? 1 : 0) == dim &&
                  (last == 0 || t.size(grouped ? 2 : 1) == last),
              name, " must be contiguous (dim", last > 0 ? ", n)" : ")", " or (groups, dim", last > 0 ? ", n)" : ")",
              " with the groups of A");
}

int64_t group_count(const at::Tensor& A) { return A.dim() == 3 ? A.size(0) : 1; }

void check_inputs(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A, const at::Tensor& B,
                  const at::Tensor& C, const c10::optional<at::Tensor>& D, const c10::optional<at::Tensor>& z,
                  const c10::optional<at::Tensor>& delta_bias, const c10::optional<at::Tensor>& initial_state,
                  const c10::optional<at::Tensor>& dtw) {
  TORCH_CHECK(u.device().is_cpu(), "selective_scan cpu backend: u must be a CPU tensor");
  TORCH_CHECK(u.dim() == 3 && dense_rows(u), "u must be (batch, dim, len), time or channels dense");
  const auto batch = u.size(0), dim = u.size(1), len = u.size(2);
  TORCH_CHECK(A.dim() == 2 || A.dim() == 3, "A must be (dim, nstate) or (groups, dim, nstate)");
  const int64_t groups = group_count(A);
  TORCH_CHECK(groups >= 1 && batch % groups == 0, "the batch must be a multiple of A's groups");
  const auto nstate = A.size(-1);
  check_param(A, u, groups, dim, nstate, "A");
  TORCH_CHECK(B.dim() == 3 && B.size(0) == batch && B.size(1) == nstate && B.size(2) == len,
              "B must be (batch, nstate, len)");
  TORCH_CHECK(C.sizes() == B.sizes(), "C must be (batch, nstate, len)");
  for (auto* t : {&B, &C})
    TORCH_CHECK(t->scalar_type() == u.scalar_type() && t->device().is_cpu(), "B and C must be CPU tensors with the dtype of u");
  TORCH_CHECK(delta.dim() == 3 && delta.size(0) == batch && delta.size(2) == len && dense_rows(delta) &&
                  delta.scalar_type() == u.scalar_type() && delta.device().is_cpu(),
              "delta must be (batch, dim, len) (or (batch, R, len) with delta_proj_weight), time or channels dense");
  if (dtw) check_param(*dtw, u, groups, dim, delta.size(1), "delta_proj_weight");
  else TORCH_CHECK(delta.size(1) == dim, "delta must be (batch, dim, len)");
  if (D) check_param(*D, u, groups, dim, 0, "D");
  if (delta_bias) check_param(*delta_bias, u, groups, dim, 0, "delta_bias");
  if (z) {
    TORCH_CHECK(z->sizes() == u.sizes() && dense_rows(*z) && z->scalar_type() == u.scalar_type(),
                "z must be (batch, dim, len) with the dtype of u, time or channels dense");
  }
  if (initial_state) {
    TORCH_CHECK(initial_state->scalar_type() == compute_type(u),
                "initial_state must have the dtype of u (float32 when u is bfloat16)");
    TORCH_CHECK(initial_state->dim() == 3 && initial_state->size(0) == batch && initial_state->size(1) == dim &&
                    initial_state->size(2) == nstate && initial_state->is_contiguous(),
                "initial_state must be contiguous (batch, dim, nstate)");
  }
}

template <typename scalar_t, typename io_t = scalar_t>
ScanArgs<scalar_t, io_t> make_args(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                                   const at::Tensor& B, const at::Tensor& C, const c10::optional<at::Tensor>& D,
                                   const c10::optional<at::Tensor>& z, const c10::optional<at::Tensor>& delta_bias,
                                   const c10::optional<at::Tensor>& initial_state,
                                   const c10::optional<at::Tensor>& dtw, bool softplus, const at::Tensor& out) {
  ScanArgs<scalar_t, io_t> a;
  a.batch = u.size(0);
  a.dim = u.size(1);
  a.len = u.size(2);
  a.nstate = A.size(-1);
  a.groups = group_count(A);
  a.u = u.data_ptr<io_t>();
  a.delta = delta.data_ptr<io_t>();
  a.A = A.data_ptr<scalar_t>();
  a.B = B.data_ptr<io_t>();
  a.C = C.data_ptr<io_t>();
  a.D = D ? D->data_ptr<scalar_t>() : nullptr;
  a.z = z ? z->data_ptr<io_t>() : nullptr;
  a.delta_bias = delta_bias ? delta_bias->data_ptr<scalar_t>() : nullptr;
  a.h0 = initial_state ? initial_state->data_ptr<scalar_t>() : nullptr;
  a.dtw = dtw ? dtw->data_ptr<scalar_t>() : nullptr;
  a.R = dtw ? delta.size(1) : 0;
  a.u_sb = u.stride(0);
  a.u_sd = u.stride(1);
  a.u_st = u.stride(2);
  a.delta_sb = delta.stride(0);
  a.delta_sd = delta.stride(1);
  a.delta_st = delta.stride(2);
  if (z) {
    a.z_sb = z->stride(0);
    a.z_sd = z->stride(1);
    a.z_st = z->stride(2);
  }
  a.o_sb = out.stride(0);
  a.o_sd = out.stride(1);
  a.o_st = out.stride(2);
  a.B_sb = B.stride(0);
  a.B_sn = B.stride(1);
  a.B_st = B.stride(2);
  a.C_sb = C.stride(0);
  a.C_sn = C.stride(1);
  a.C_st = C.stride(2);
  a.softplus = softplus;
  return a;
}

// Per-row partial sums (batch, ...) -> the parameter's shape: summed over the batch, or per group.
at::Tensor sum_rows(const at::Tensor& part, int64_t groups, bool grouped) {
  if (!grouped) return part.sum(0);
  auto sizes = part.sizes().vec();
  sizes[0] /= groups;
  sizes.insert(sizes.begin(), groups);
  return part.view(sizes).sum(1);
}

template <typename scalar_t>
int64_t block_count(int64_t dim) {
  constexpr int64_t W = Vectorized<scalar_t>::size();
  return (dim + W - 1) / W;
}

// Tasks are (batch row, block of W channels), split evenly over the threads; fn(b, blk0, blk1) gets
// each thread's tasks as spans of consecutive blocks within one row.
template <typename scalar_t, typename Fn>
void for_each_span(int64_t batch, int64_t dim, Fn&& fn) {
  const int64_t nblk = block_count<scalar_t>(dim);
  at::parallel_for(0, batch * nblk, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end;) {
      const int64_t b = task / nblk, blk0 = task % nblk, blk1 = std::min(nblk, blk0 + (end - task));
      fn(b, blk0, blk1);
      task += blk1 - blk0;
    }
  });
}

}  // namespace

// Returns (out, checkpoints, last_state); checkpoints is empty unless save_checkpoints,
// last_state is empty unless return_last_state.
std::vector<at::Tensor> scan_forward(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                                     const at::Tensor& B, const at::Tensor& C, const c10::optional<at::Tensor>& D,
                                     const c10::optional<at::Tensor>& z,
                                     const c10::optional<at::Tensor>& delta_bias,
                                     const c10::optional<at::Tensor>& initial_state, bool softplus,
                                     bool save_checkpoints, bool return_last_state,
                                     const c10::optional<at::Tensor>& delta_proj_weight, bool in_place) {
  check_inputs(u, delta, A, B, C, D, z, delta_bias, initial_state, delta_proj_weight);
  const auto batch = u.size(0), dim = u.size(1), len = u.size(2), nstate = A.size(-1);
  // in place: out overwrites u (each chunk of u is read into a tile before the same rows are written)
  at::Tensor out = in_place ? u : empty_like_layout(u);
  at::Tensor ckpt, last;
  const auto stats = u.options().dtype(compute_type(u));  // checkpoints and last state: the compute dtype
  auto run = [&](auto compute, auto io) {
    using scalar_t = decltype(compute);
    using io_t = decltype(io);
    constexpr int64_t W = Vectorized<scalar_t>::size();
    const auto args = make_args<scalar_t, io_t>(u, delta, A, B, C, D, z, delta_bias, initial_state,
                                                delta_proj_weight, softplus, out);
    const int64_t nchunk = (len + kChunk - 1) / kChunk;
    const int64_t nblk = block_count<scalar_t>(dim);
    if (save_checkpoints) ckpt = at::empty({batch, nblk, nchunk, nstate, W}, stats);
    if (return_last_state) last = at::empty({batch, dim, nstate}, stats);
    scalar_t* ckpt_p = save_checkpoints ? ckpt.data_ptr<scalar_t>() : nullptr;
    scalar_t* last_p = return_last_state ? last.data_ptr<scalar_t>() : nullptr;
    io_t* out_p = out.data_ptr<io_t>();
    for_each_span<scalar_t>(batch, dim, [&](int64_t b, int64_t blk0, int64_t blk1) {
      ChunkTiles<scalar_t> tiles(z.has_value());
      Buffer<scalar_t> ybuf(kChunk * W);
      if (nstate == kMaxStaticState)
        forward_span<scalar_t, kMaxStaticState, io_t>(args, b, blk0, blk1, tiles, ybuf, out_p, ckpt_p, last_p);
      else
        forward_span<scalar_t, 0, io_t>(args, b, blk0, blk1, tiles, ybuf, out_p, ckpt_p, last_p);
    });
  };
  if (u.scalar_type() == at::kBFloat16) {
    TORCH_CHECK(!save_checkpoints, "selective_scan cpu backend: bfloat16 inputs are for inference (no checkpoints)");
    run(float(0), at::BFloat16(0));
  } else {
    AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "selective_scan_cpu_forward", [&] { run(scalar_t(0), scalar_t(0)); });
  }
  return {out, ckpt, last};
}

// Returns (du, ddelta, dA, dB, dC, dD, dz, ddelta_bias, dinitial_state); entries for absent optional
// inputs are empty.
std::vector<at::Tensor> scan_backward(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                                      const at::Tensor& B, const at::Tensor& C,
                                      const c10::optional<at::Tensor>& D, const c10::optional<at::Tensor>& z,
                                      const c10::optional<at::Tensor>& delta_bias,
                                      const c10::optional<at::Tensor>& initial_state, bool softplus,
                                      const at::Tensor& checkpoints, const at::Tensor& dout,
                                      const c10::optional<at::Tensor>& delta_proj_weight) {
  check_inputs(u, delta, A, B, C, D, z, delta_bias, initial_state, delta_proj_weight);
  TORCH_CHECK(dout.sizes() == u.sizes() && dense_rows(dout) && dout.scalar_type() == u.scalar_type(),
              "dout must be (batch, dim, len) with the dtype of u, time or channels dense");
  const auto batch = u.size(0), dim = u.size(1), len = u.size(2), nstate = A.size(-1);
  const int64_t threads = at::get_num_threads();
  auto opts = u.options();
  // du, ddelta (the step size before its bias, i.e. dt_proj's output when fused) and dz: u's layout
  at::Tensor du = empty_like_layout(u);
  at::Tensor ddelta = empty_like_layout(u);
  at::Tensor dz = z ? empty_like_layout(u) : at::Tensor();
  at::Tensor dA_part = at::empty({batch, dim, nstate}, opts);
  at::Tensor dD_part = at::empty({batch, dim}, opts);
  at::Tensor dbias_part = at::empty({batch, dim}, opts);
  at::Tensor dh0 = initial_state ? at::empty({batch, dim, nstate}, opts) : at::Tensor();
  at::Tensor dB_thread = at::zeros({threads, batch, nstate, len}, opts);
  at::Tensor dC_thread = at::zeros({threads, batch, nstate, len}, opts);
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "selective_scan_cpu_backward", [&] {
    constexpr int64_t W = Vectorized<scalar_t>::size();
    const auto args =
        make_args<scalar_t>(u, delta, A, B, C, D, z, delta_bias, initial_state, delta_proj_weight, softplus, du);
    GradArgs<scalar_t> g;
    g.dout = dout.data_ptr<scalar_t>();
    g.dout_sb = dout.stride(0);
    g.dout_sd = dout.stride(1);
    g.dout_st = dout.stride(2);
    g.du = du.data_ptr<scalar_t>();
    g.ddelta = ddelta.data_ptr<scalar_t>();
    g.dz = z ? dz.data_ptr<scalar_t>() : nullptr;
    g.dA_part = dA_part.data_ptr<scalar_t>();
    g.dD_part = dD_part.data_ptr<scalar_t>();
    g.dbias_part = dbias_part.data_ptr<scalar_t>();
    g.dh0 = initial_state ? dh0.data_ptr<scalar_t>() : nullptr;
    g.dB_thread = dB_thread.data_ptr<scalar_t>();
    g.dC_thread = dC_thread.data_ptr<scalar_t>();
    const scalar_t* ckpt_p = checkpoints.data_ptr<scalar_t>();
    for_each_span<scalar_t>(batch, dim, [&](int64_t b, int64_t blk0, int64_t blk1) {
      const int64_t thread = at::get_thread_num();
      TORCH_CHECK(thread < threads, "selective_scan cpu backend: thread index out of range");
      ChunkTiles<scalar_t> tiles(z.has_value());
      BackwardWork<scalar_t> wk(nstate);
      if (nstate == kMaxStaticState)
        backward_span<scalar_t, kMaxStaticState>(args, g, ckpt_p, b, blk0, blk1, tiles, wk, thread);
      else
        backward_span<scalar_t, 0>(args, g, ckpt_p, b, blk0, blk1, tiles, wk, thread);
    });
  });
  const int64_t groups = group_count(A);
  at::Tensor dA = sum_rows(dA_part, groups, A.dim() == 3);
  at::Tensor dB = dB_thread.sum(0);
  at::Tensor dC = dC_thread.sum(0);
  at::Tensor dD = D ? sum_rows(dD_part, groups, D->dim() == 2) : at::Tensor();
  at::Tensor dbias = delta_bias ? sum_rows(dbias_part, groups, delta_bias->dim() == 2) : at::Tensor();
  return {du, ddelta, dA, dB, dC, dD, dz, dbias, dh0};
}

// Depthwise causal conv of the Mamba block: y[b, d, t] = act(bias[d] + sum_k w[d, k] * xp[b, d, t + k])
// with xp = [initial (W - 1 inputs; zeros if absent), x]. x is time dense or channels dense and y takes
// its layout; weight (dim, W) or grouped (groups, dim, W), bias (dim) or (groups, dim), as the scan's
// parameters. Returns y and xp's last W - 1 inputs (batch, dim, W - 1), for a stream's next chunk. One
// pass, vectorised over channels, with the SiLU fused.
namespace {

struct ConvArgs {
  int64_t batch, dim, len, width, groups, x_sb, x_sd, x_st;
};

ConvArgs conv_args(const at::Tensor& x, const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                   const c10::optional<at::Tensor>& initial) {
  TORCH_CHECK(x.device().is_cpu() && x.dim() == 3 && dense_rows(x),
              "conv: x must be a (batch, dim, len) CPU tensor, time or channels dense");
  const auto batch = x.size(0), dim = x.size(1), len = x.size(2);
  TORCH_CHECK(weight.dim() == 2 || weight.dim() == 3, "conv: weight must be (dim, W) or (groups, dim, W)");
  const int64_t groups = weight.dim() == 3 ? weight.size(0) : 1, width = weight.size(-1);
  TORCH_CHECK(batch % groups == 0, "conv: the batch must be a multiple of the weight's groups");
  check_param(weight, x, groups, dim, width, "conv weight");
  if (bias) check_param(*bias, x, groups, dim, 0, "conv bias");
  if (initial)
    TORCH_CHECK(initial->dim() == 3 && initial->size(0) == batch && initial->size(1) == dim &&
                    initial->size(2) == width - 1 && initial->is_contiguous() && initial->scalar_type() == compute_type(x),
                "conv: initial must be contiguous (batch, dim, W - 1), x's dtype (float32 when x is bfloat16)");
  return {batch, dim, len, width, groups, x.stride(0), x.stride(1), x.stride(2)};
}

template <typename scalar_t>
struct ConvLanes {  // one task's weights as lanes: batch row b, channels [d0, d0 + nvalid)
  using Vec = Vectorized<scalar_t>;
  int64_t d0, nvalid, g;
  std::vector<Vec> w;
  Vec bias;
  ConvLanes(const ConvArgs& c, const scalar_t* weight, const scalar_t* bias_p, int64_t b, int64_t blk)
      : d0(blk * Vec::size()), nvalid(std::min<int64_t>(Vec::size(), c.dim - blk * Vec::size())),
        g(b / (c.batch / c.groups)), bias(load_channels(bias_p ? bias_p + g * c.dim : nullptr, d0, nvalid, scalar_t(0))) {
    for (int64_t k = 0; k < c.width; ++k) w.push_back(load_lanes(weight + (g * c.dim + d0) * c.width + k, c.width, nvalid));
  }
};

}  // namespace

std::vector<at::Tensor> conv_forward(const at::Tensor& x, const at::Tensor& weight,
                                     const c10::optional<at::Tensor>& bias, const c10::optional<at::Tensor>& initial,
                                     bool silu, bool in_place) {
  const ConvArgs c = conv_args(x, weight, bias, initial);
  const int64_t pad = c.width - 1;
  // in place: y overwrites x (each chunk is read into a tile, its predecessors kept, before it is written)
  at::Tensor y = in_place ? x : empty_like_layout(x);
  // bfloat16 x and y (inference): read and written as bfloat16, computed in float, the states float
  at::Tensor final_states = at::empty({c.batch, c.dim, pad}, x.options().dtype(compute_type(x)));
  auto run = [&](auto compute, auto io) {
    using scalar_t = decltype(compute);
    using io_t = decltype(io);
    using Vec = Vectorized<scalar_t>;
    constexpr int64_t W = Vec::size();
    const io_t* xp = x.data_ptr<io_t>();
    const scalar_t* init = initial ? initial->data_ptr<scalar_t>() : nullptr;
    io_t* yp = y.data_ptr<io_t>();
    scalar_t* fp = final_states.data_ptr<scalar_t>();
    for_each_span<scalar_t>(c.batch, c.dim, [&](int64_t b, int64_t blk0, int64_t blk1) {
      // tile rows: the pad inputs before the chunk, then the chunk; every output step is independent
      Buffer<scalar_t> tile((pad + kChunk) * W), ytile(kChunk * W);
      std::vector<ConvLanes<scalar_t>> lanes;
      Buffer<scalar_t> carry((blk1 - blk0) * pad * W);  // per block: the last pad inputs, as lanes
      for (int64_t blk = blk0; blk < blk1; ++blk) {
        lanes.emplace_back(c, weight.data_ptr<scalar_t>(), bias ? bias->data_ptr<scalar_t>() : nullptr, b, blk);
        for (int64_t j = 0; j < pad; ++j) {
          const auto& k = lanes.back();
          (init ? load_lanes(init + (b * c.dim + k.d0) * pad + j, pad, k.nvalid) : Vec(scalar_t(0)))
              .store(carry.data() + ((blk - blk0) * pad + j) * W);
        }
      }
      // time outer, as the scan: a time-major input is read one slab of kChunk rows at a time
      for (int64_t t0 = 0; t0 < c.len; t0 += kChunk) {
        const int64_t nt = std::min(kChunk, c.len - t0);
        for (size_t i = 0; i < lanes.size(); ++i) {
          const auto& k = lanes[i];
          scalar_t* prev = carry.data() + i * pad * W;
          const int64_t next_nt = std::max<int64_t>(0, std::min(kChunk, c.len - t0 - kChunk));
          std::copy(prev, prev + pad * W, tile.begin());
          load_tile(xp + b * c.x_sb, c.x_sd, c.x_st, k.d0, k.nvalid, t0, nt, tile.data() + pad * W, t0 + kChunk, next_nt);
          for (int64_t t = 0; t < nt; ++t) {
            Vec acc = k.bias;
            for (int64_t j = 0; j <= pad; ++j) acc = at::vec::fmadd(k.w[j], Vec::loadu(tile.data() + (t + j) * W), acc);
            if (silu) acc = acc * vsigmoid(acc);
            acc.store(ytile.data() + t * W);
          }
          std::copy(tile.begin() + nt * W, tile.begin() + (nt + pad) * W, prev);
          store_tile(ytile.data(), k.d0, k.nvalid, t0, nt, yp + b * y.stride(0), y.stride(1), y.stride(2));
          if (next_nt > 0)
            prefetch_slab(yp + b * y.stride(0), y.stride(1), y.stride(2), k.d0, k.nvalid, t0 + kChunk, next_nt, true);
        }
      }
      for (size_t i = 0; i < lanes.size(); ++i)
        for (int64_t j = 0; j < pad; ++j)
          store_lanes(Vec::loadu(carry.data() + (i * pad + j) * W), fp + (b * c.dim + lanes[i].d0) * pad + j, pad,
                      lanes[i].nvalid);
    });
  };
  if (x.scalar_type() == at::kBFloat16) {
    run(float(0), at::BFloat16(0));
  } else {
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "causal_conv_cpu_forward", [&] { run(scalar_t(0), scalar_t(0)); });
  }
  return {y, final_states};
}

// Gradients of conv_forward (no initial states): (dx in x's layout, dweight and dbias in their shapes).
std::vector<at::Tensor> conv_backward(const at::Tensor& x, const at::Tensor& weight,
                                      const c10::optional<at::Tensor>& bias, bool silu, const at::Tensor& dy) {
  const ConvArgs c = conv_args(x, weight, bias, c10::nullopt);
  TORCH_CHECK(dy.sizes() == x.sizes() && dense_rows(dy) && dy.scalar_type() == x.scalar_type(),
              "conv: dy must be (batch, dim, len) with x's dtype, time or channels dense");
  const int64_t pad = c.width - 1, L = c.len;
  at::Tensor dx = empty_like_layout(x);
  at::Tensor dw_part = at::empty({c.batch, c.dim, c.width}, x.options());
  at::Tensor db_part = at::empty({c.batch, c.dim}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "causal_conv_cpu_backward", [&] {
    using Vec = Vectorized<scalar_t>;
    constexpr int64_t W = Vec::size();
    const int64_t nblk = block_count<scalar_t>(c.dim);
    at::parallel_for(0, c.batch * nblk, 1, [&](int64_t begin, int64_t end) {
      Buffer<scalar_t> xs((pad + L) * W), dp((L + pad) * W);  // [zeros, x] and [dpre, zeros], as lanes
      for (int64_t task = begin; task < end; ++task) {
        const int64_t b = task / nblk;
        const ConvLanes<scalar_t> lanes(c, weight.data_ptr<scalar_t>(), bias ? bias->data_ptr<scalar_t>() : nullptr,
                                        b, task % nblk);
        std::fill(xs.begin(), xs.begin() + pad * W, scalar_t(0));
        std::fill(dp.begin() + L * W, dp.end(), scalar_t(0));
        load_tile(x.data_ptr<scalar_t>() + b * c.x_sb, c.x_sd, c.x_st, lanes.d0, lanes.nvalid, 0, L, xs.data() + pad * W);
        load_tile(dy.data_ptr<scalar_t>() + b * dy.stride(0), dy.stride(1), dy.stride(2), lanes.d0, lanes.nvalid, 0, L,
                  dp.data());
        Vec db(scalar_t(0));
        std::vector<Vec> dw(c.width, Vec(scalar_t(0)));
        for (int64_t t = 0; t < L; ++t) {  // dp: dL/d(pre-activation)
          Vec g = Vec::loadu(dp.data() + t * W);
          if (silu) {
            Vec pre = lanes.bias;
            for (int64_t k = 0; k <= pad; ++k) pre = at::vec::fmadd(lanes.w[k], Vec::loadu(xs.data() + (t + k) * W), pre);
            const Vec sig = vsigmoid(pre), one(scalar_t(1));
            g = g * sig * (one + pre * (one - sig));
            g.store(dp.data() + t * W);
          }
          db = db + g;
          for (int64_t k = 0; k <= pad; ++k) dw[k] = at::vec::fmadd(g, Vec::loadu(xs.data() + (t + k) * W), dw[k]);
        }
        for (int64_t t = 0; t < L; ++t) {  // dx[t] = sum_k w[k] dp[t + pad - k]; xs is free to hold it
          Vec acc(scalar_t(0));
          for (int64_t k = 0; k <= pad; ++k) acc = at::vec::fmadd(lanes.w[k], Vec::loadu(dp.data() + (t + pad - k) * W), acc);
          acc.store(xs.data() + t * W);
        }
        store_tile(xs.data(), lanes.d0, lanes.nvalid, 0, L, dx.data_ptr<scalar_t>() + b * dx.stride(0), dx.stride(1),
                   dx.stride(2));
        for (int64_t k = 0; k < c.width; ++k)
          store_lanes(dw[k], dw_part.data_ptr<scalar_t>() + (b * c.dim + lanes.d0) * c.width + k, c.width, lanes.nvalid);
        store_lanes(db, db_part.data_ptr<scalar_t>() + b * c.dim + lanes.d0, 1, lanes.nvalid);
      }
    });
  });
  at::Tensor dweight = sum_rows(dw_part, c.groups, weight.dim() == 3);
  at::Tensor dbias = bias ? sum_rows(db_part, c.groups, bias->dim() == 2) : at::Tensor();
  return {dx, dweight, dbias};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "sepmamba_sb selective scan, CPU kernels";
  m.def("forward", &scan_forward, "selective scan forward (CPU)");
  m.def("backward", &scan_backward, "selective scan backward (CPU)");
  m.def("conv_forward", &conv_forward, "depthwise causal conv + SiLU, from optional initial states (CPU)");
  m.def("conv_backward", &conv_backward, "gradients of conv_forward without initial states (CPU)");
  m.attr("chunk") = kChunk;
}
