//! Products with a mostly-zero operand as loops over its non-zeros.
//!
//! Training data is often mostly zeros: one-hot token inputs (where no token gather applies),
//! the blank pixels of MNIST digits (about four in five), and the transposes of both in the
//! weight gradients. A product `C = A B` whose A (or, as `C^T = B^T A^T`, whose B) has at most
//! [`MAX_DENSITY`] non-zeros visits only those: row `i` of C is the sum over the non-zero `a_ij`
//! of `a_ij * B[j, :]`, in order of `j`, as the plain loop `c += a * b` adds it (a product, then
//! a sum: no fused multiply-add, so that every CPU gives the same bits). Skipping a zero term
//! changes nothing in exact arithmetic (while B is finite), so this is the product, with a fifth
//! of the multiply-adds on MNIST.
//!
//! A is scanned along the lines it is stored in, so that the scan reads memory in order, and its
//! non-zeros are then sorted into rows if it was stored by columns. Threads split the rows of C,
//! never a sum: every thread count gives the same bits.

// The vectorised loops are compiled for AVX-512 behind a run-time check of the CPU, and the
// threads write their own rows of one output.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};

use super::gemm::{Gemm, PARALLEL_PRODUCT, SharedOut, Strided, copy_rows};

/// An operand with at most this fraction of non-zeros is multiplied by its non-zeros. Measured
/// on the MNIST MLP (tests/bench/BENCHMARKS.md): its digits, 19% non-zero, run faster this way
/// than through sgemm.
const MAX_DENSITY: f64 = 0.25;

/// Products computed by the sparse loop, so tests can tell that it ran.
#[cfg(test)]
pub(crate) static SPARSE_PRODUCTS: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

/// The non-zeros of a matrix, line by line (its rows, or its columns before they are sorted
/// into rows).
#[derive(Debug, Default)]
struct NonZeros {
    /// Line `l` holds the entries `starts[l]..starts[l + 1]`.
    starts: Vec<usize>,
    /// Each entry's position along its line.
    at: Vec<u32>,
    values: Vec<f32>,
}

/// Buffers kept from product to product on a thread: they are as large as the operands, and
/// fresh ones would cost page faults at every step.
#[derive(Debug, Default)]
struct Buffers {
    /// The sparse operands compressed last, most recent first: the one being multiplied, and
    /// those a later product is likely to see again (the data of a full-batch run, every step).
    seen: Vec<Seen>,
    /// A scan's non-zeros, by the lines the operand is stored in.
    scanned: NonZeros,
    /// The dense operand's rows, when they are not contiguous in its buffer.
    rows_b: Vec<f32>,
    /// C's rows, when they are not contiguous in the output.
    rows_c: Vec<f32>,
}

/// A sparse operand compressed before: its elements (to know it again) and its non-zeros.
#[derive(Debug, Default)]
struct Seen {
    /// How often it was found again: data (found at every step) outlives masked weights (new
    /// at every step) when room runs out.
    hits: u32,
    /// Rows, columns and strides; `None` when its elements were too many to keep.
    shape: Option<(usize, usize, isize, isize)>,
    /// The span of its buffer its elements lie in.
    elements: Vec<f32>,
    /// Its non-zeros by rows.
    rows: NonZeros,
}

/// How many sparse operands a thread remembers.
const SEEN: usize = 8;

/// How many elements (of copies, 4 bytes each) the remembered operands of a thread hold at most:
/// 64 MiB (MNIST's training and test digits fit). An operand spanning more is compressed at
/// every product, not remembered.
const SEEN_MAX_ELEMENTS: usize = 1 << 24;

thread_local! {
    static BUFFERS: std::cell::RefCell<Buffers> = std::cell::RefCell::default();
}

/// Computes `g` (`C = A B`) from the non-zeros of A or, failing that, of B (as
/// `C^T = B^T A^T`), into C in `out` (first grown with zeros to `len` elements), and returns
/// the floating-point operations done (2 per non-zero and column of the dense operand); `None`,
/// with `out` untouched, when neither is mostly zeros.
pub(super) fn product(
    g: &Gemm,
    threads: usize,
    a: &[f32],
    b: &[f32],
    len: usize,
    out: &mut Vec<f32>,
) -> Option<f64> {
    BUFFERS.with_borrow_mut(|buffers| {
        let t = g.transposed();
        let (g, dense) = if buffers.compress(threads, a, g.a, g.m, g.k) {
            (g, b)
        } else if buffers.compress(threads, b, t.a, t.m, t.k) {
            (&t, a)
        } else {
            return None;
        };
        #[cfg(test)]
        SPARSE_PRODUCTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nonzeros = buffers.seen[0].rows.values.len();
        out.resize(len, 0.0);
        buffers.multiply(g, threads, dense, out);
        Some(2.0 * (nonzeros * g.n) as f64)
    })
}

/// The lines a matrix is stored in: its rows when its columns are adjacent, else its columns.
#[derive(Debug, Clone, Copy)]
struct Lines {
    by_rows: bool,
    view: Strided,
    count: usize,
    len: usize,
    /// From one element of a line to the next.
    step: isize,
}

impl Lines {
    /// `None` for an empty matrix or lines too long to index with `u32`.
    fn of(view: Strided, rows: usize, cols: usize) -> Option<Lines> {
        let by_rows = view.cols.unsigned_abs() <= view.rows.unsigned_abs();
        let (count, len) = if by_rows { (rows, cols) } else { (cols, rows) };
        let step = if by_rows { view.cols } else { view.rows };
        (u32::try_from(len).is_ok() && count * len > 0).then_some(Lines {
            by_rows,
            view,
            count,
            len,
            step,
        })
    }

    /// The buffer index of line `l`'s first element.
    fn first(&self, l: usize) -> usize {
        if self.by_rows { self.view.at(l, 0) } else { self.view.at(0, l) }
    }

    /// Element `e` of the line starting at buffer index `first`.
    fn element(&self, buffer: &[f32], first: usize, e: usize) -> f32 {
        buffer[(first as isize + e as isize * self.step) as usize]
    }

    /// Whether at most [`MAX_DENSITY`] of the elements are non-zero. Lines are counted in order,
    /// and the count gives up as soon as the answer is no, or once the lines read are half as
    /// dense again as allowed: a dense operand costs a glance. Counting only (the non-zeros are
    /// gathered by [`NonZeros::scan`] once the answer is yes) keeps the glance at every
    /// product with a dense operand a vectorised comparison.
    fn mostly_zeros(&self, buffer: &[f32]) -> bool {
        let budget = (MAX_DENSITY * (self.count * self.len) as f64) as usize;
        let mut count = 0;
        for line in 0..self.count {
            let first = self.first(line);
            count += if self.step == 1 {
                buffer[first..][..self.len].iter().filter(|&&v| v != 0.0).count()
            } else {
                (0..self.len).filter(|&e| self.element(buffer, first, e) != 0.0).count()
            };
            let scanned = (line + 1) * self.len;
            if count > budget
                || (scanned >= 4096 && count as f64 > 1.5 * MAX_DENSITY * scanned as f64)
            {
                return false;
            }
        }
        true
    }
}

impl NonZeros {
    /// Fills `self` with the non-zeros of the `rows x cols` matrix `view` of `buffer` along the
    /// lines it is stored in (rows when its columns are adjacent, else columns): `None` when
    /// [`Lines::mostly_zeros`] refuses it, else whether the lines are rows.
    fn scan(&mut self, buffer: &[f32], view: Strided, rows: usize, cols: usize) -> Option<bool> {
        let lines = Lines::of(view, rows, cols)?;
        if !lines.mostly_zeros(buffer) {
            return None;
        }
        self.at.clear();
        self.values.clear();
        self.starts.clear();
        self.starts.push(0);
        for line in 0..lines.count {
            let first = lines.first(line);
            if lines.step == 1 {
                for (c, chunk) in buffer[first..][..lines.len].chunks(32).enumerate() {
                    // One bit per non-zero: a blank stretch (a digit's margins) costs one
                    // comparison of 32 elements.
                    let mut bits = chunk
                        .iter()
                        .enumerate()
                        .fold(0u32, |bits, (e, &v)| bits | (u32::from(v != 0.0) << e));
                    while bits != 0 {
                        let e = bits.trailing_zeros() as usize;
                        self.at.push((c * 32 + e) as u32);
                        self.values.push(chunk[e]);
                        bits &= bits - 1;
                    }
                }
            } else {
                for e in 0..lines.len {
                    let v = lines.element(buffer, first, e);
                    if v != 0.0 {
                        self.at.push(e as u32);
                        self.values.push(v);
                    }
                }
            }
            self.starts.push(self.values.len());
        }
        Some(lines.by_rows)
    }

    /// `self` (lines are the columns of a matrix of `rows` rows) into `out` by rows, each row's
    /// entries in order of column.
    fn transpose_into(&self, rows: usize, out: &mut NonZeros) {
        out.starts.clear();
        out.starts.resize(rows + 1, 0);
        for &i in &self.at {
            out.starts[i as usize + 1] += 1;
        }
        for i in 0..rows {
            out.starts[i + 1] += out.starts[i];
        }
        out.at.resize(self.at.len(), 0);
        out.values.resize(self.values.len(), 0.0);
        // The next free entry of each row.
        let mut next = out.starts[..rows].to_vec();
        for column in 0..self.starts.len() - 1 {
            let (at, values) = self.line(column);
            for (&i, &v) in at.iter().zip(values) {
                let slot = &mut next[i as usize];
                out.at[*slot] = column as u32;
                out.values[*slot] = v;
                *slot += 1;
            }
        }
    }

    /// The entries of line `l`: positions and values.
    fn line(&self, l: usize) -> (&[u32], &[f32]) {
        let span = self.starts[l]..self.starts[l + 1];
        (&self.at[span.clone()], &self.values[span])
    }
}

impl Buffers {
    /// Leaves the non-zeros of the `rows x cols` matrix `view` of `buffer` by rows in
    /// `self.seen[0]`; `false` when it is not mostly zeros. An operand equal to one seen before,
    /// element for element, is not scanned again: full-batch data is compressed once a run.
    fn compress(
        &mut self,
        threads: usize,
        buffer: &[f32],
        view: Strided,
        rows: usize,
        cols: usize,
    ) -> bool {
        // Its shape and elements, when it is small enough to remember.
        let known = (view.rows >= 0 && view.cols >= 0)
            .then(|| view.at(0, 0)..view.at(rows - 1, cols - 1) + 1)
            .filter(|span| span.len() <= SEEN_MAX_ELEMENTS)
            .map(|span| ((rows, cols, view.rows, view.cols), &buffer[span]));
        let (shape, elements) = (known.map(|(shape, _)| shape), known.map(|(_, e)| e));
        if let Some(found) = known.and_then(|(shape, elements)| {
            self.seen.iter().position(|seen| {
                seen.shape == Some(shape) && same_bits(threads, &seen.elements, elements)
            })
        }) {
            self.seen[found].hits = self.seen[found].hits.saturating_add(1);
            self.seen[..=found].rotate_right(1);
            return true;
        }
        let Some(by_rows) = self.scanned.scan(buffer, view, rows, cols) else { return false };
        let mut seen = if self.seen.len() < SEEN { Seen::default() } else { self.evict() };
        if by_rows {
            std::mem::swap(&mut seen.rows, &mut self.scanned);
        } else {
            self.scanned.transpose_into(rows, &mut seen.rows);
        }
        seen.shape = shape;
        seen.hits = 0;
        seen.elements.clear();
        seen.elements.extend_from_slice(elements.unwrap_or_default());
        self.seen.insert(0, seen);
        // The one just compressed stays, for the product about to use it.
        while self.seen.len() > 1
            && self.seen.iter().map(|seen| seen.elements.len()).sum::<usize>() > SEEN_MAX_ELEMENTS
        {
            self.evict();
        }
        true
    }

    /// Forgets the least recently used operand never found again, else the least recently used
    /// one (never the most recent, which the product about to run uses).
    fn evict(&mut self) -> Seen {
        let last = self.seen.len() - 1;
        let victim = self.seen[1..].iter().rposition(|seen| seen.hits == 0).map_or(last, |i| i + 1);
        self.seen.remove(victim)
    }

    /// `C = A B` from A's non-zeros (`self.seen[0]`), the rows of C split over `threads`.
    fn multiply(&mut self, g: &Gemm, threads: usize, b: &[f32], out: &mut [f32]) {
        let (m, n) = (g.m, g.n);
        let rows_b: &[f32] = if g.b.cols == 1 && g.b.rows == n as isize {
            &b[g.b.at(0, 0)..][..g.k * n]
        } else {
            copy_rows(b, g.b, g.k, n, &mut self.rows_b);
            &self.rows_b
        };
        let rows_b = Rows { data: rows_b, width: n };
        let direct = g.c.cols == 1 && g.c.rows == n as isize;
        if !direct {
            self.rows_c.resize(m * n, 0.0);
        }
        let c: &mut [f32] =
            if direct { &mut out[g.c.at(0, 0)..][..m * n] } else { &mut self.rows_c };
        let nonzeros = &self.seen[0].rows;
        let parts =
            if nonzeros.values.len() * n >= PARALLEL_PRODUCT { threads.clamp(1, m) } else { 1 };
        let c_out = SharedOut(c.as_mut_ptr());
        super::pool::split(threads, parts, &|p| {
            let (lo, hi) = (p * m / parts, (p + 1) * m / parts);
            // SAFETY: rows `lo..hi` of C, inside it, are this part's alone.
            let rows = unsafe { c_out.slice(lo * n, (hi - lo) * n) };
            gather(nonzeros, lo, rows_b, rows);
        });
        if !direct {
            g.write(&self.rows_c, SharedOut(out.as_mut_ptr()));
        }
    }
}

/// Whether `a` and `b` hold the same bits, compared in blocks on the kernel threads when they
/// are large (a copy of MNIST's digits, 784 K elements, is compared at every product), as the
/// other kernels split their work ([`super::pool::parts`]).
fn same_bits(threads: usize, a: &[f32], b: &[f32]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let chunk = a.len().div_ceil(super::pool::parts(threads, 2 * a.len(), a.len())).max(1);
    let pieces: Vec<_> = a.chunks(chunk).zip(b.chunks(chunk)).collect();
    let same = AtomicBool::new(true);
    super::pool::split_pieces(threads, pieces, &|(a, b)| {
        if !same_bits_on_thread(a, b) {
            same.store(false, Ordering::Relaxed);
        }
    });
    same.into_inner()
}

/// [`same_bits`] of two slices of one length on this thread.
fn same_bits_on_thread(a: &[f32], b: &[f32]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked above.
        return unsafe { same_bits_avx2(a, b) };
    }
    same_bits_plain(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn same_bits_avx2(a: &[f32], b: &[f32]) -> bool {
    same_bits_plain(a, b)
}

/// Compared a block at a time, so that the comparison vectorises.
#[inline(always)]
fn same_bits_plain(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len()
        && a.chunks(64).zip(b.chunks(64)).all(|(a, b)| {
            a.iter().zip(b).fold(true, |same, (x, y)| same & (x.to_bits() == y.to_bits()))
        })
}

/// A row-major matrix: rows of `width` elements.
#[derive(Clone, Copy)]
struct Rows<'a> {
    data: &'a [f32],
    width: usize,
}

impl Rows<'_> {
    fn row(&self, j: usize) -> &[f32] {
        &self.data[j * self.width..][..self.width]
    }
}

/// Rows `first..` of C (`c`, row-major, `rows_b.width` wide) from A's rows of non-zeros, every
/// element written.
fn gather(nonzeros: &NonZeros, first: usize, rows_b: Rows, c: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512, checked above.
        return unsafe { gather_avx512(nonzeros, first, rows_b, c) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked above.
        return unsafe { gather_avx2(nonzeros, first, rows_b, c) };
    }
    gather_plain(nonzeros, first, rows_b, c);
}

/// [`gather_plain`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn gather_avx2(nonzeros: &NonZeros, first: usize, rows_b: Rows, c: &mut [f32]) {
    gather_plain(nonzeros, first, rows_b, c);
}

/// [`gather_plain`] in AVX-512 registers: up to eight vectors of a row of C at a time, the last
/// one of the row masked. The same terms in the same order, so the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn gather_avx512(nonzeros: &NonZeros, first: usize, rows_b: Rows, c: &mut [f32]) {
    let n = rows_b.width;
    let vectors = n.div_ceil(16);
    // The lanes of a row's last vector that lie inside the row.
    let last = if n.is_multiple_of(16) { u16::MAX } else { (1u16 << (n % 16)) - 1 };
    for (i, row_c) in c.chunks_exact_mut(n).enumerate() {
        let (at, values) = nonzeros.line(first + i);
        let mut v0 = 0;
        while v0 < vectors {
            let count = (vectors - v0).min(8);
            let mask = |v: usize| if v0 + v + 1 == vectors { last } else { u16::MAX };
            let block = Block { at, values, rows_b, row_c: &mut *row_c, col: v0 * 16 };
            match count {
                8 => block.add::<8>(mask),
                7 => block.add::<7>(mask),
                6 => block.add::<6>(mask),
                5 => block.add::<5>(mask),
                4 => block.add::<4>(mask),
                3 => block.add::<3>(mask),
                2 => block.add::<2>(mask),
                _ => block.add::<1>(mask),
            }
            v0 += count;
        }
    }
}

/// Vectors of one row of C from `col` on, and the non-zeros that add into them.
#[cfg(target_arch = "x86_64")]
struct Block<'a> {
    at: &'a [u32],
    values: &'a [f32],
    rows_b: Rows<'a>,
    row_c: &'a mut [f32],
    col: usize,
}

#[cfg(target_arch = "x86_64")]
impl Block<'_> {
    /// Adds `V` vectors (`mask(v)` the lanes of vector `v` inside the row) in registers.
    #[target_feature(enable = "avx512f")]
    fn add<const V: usize>(self, mask: impl Fn(usize) -> u16) {
        use std::arch::x86_64::{
            _MM_HINT_T0, _mm_prefetch, _mm512_add_ps, _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps,
            _mm512_mul_ps, _mm512_set1_ps, _mm512_setzero_ps,
        };
        const AHEAD: usize = 8;
        let masks: [u16; V] = std::array::from_fn(&mask);
        let mut acc = [_mm512_setzero_ps(); V];
        for (e, (&j, &v)) in self.at.iter().zip(self.values).enumerate() {
            if let Some(&ahead) = self.at.get(e + AHEAD) {
                let row = self.rows_b.row(ahead as usize)[self.col..].as_ptr();
                for q in 0..V {
                    // SAFETY: a prefetch reads nothing; the address lies inside row `ahead`.
                    unsafe { _mm_prefetch::<_MM_HINT_T0>(row.add(16 * q).cast()) };
                }
            }
            let row_b = &self.rows_b.row(j as usize)[self.col..];
            let v = _mm512_set1_ps(v);
            for (q, acc) in acc.iter_mut().enumerate() {
                // SAFETY: the masked lanes of vector q lie inside row j of B (its last vector
                // masked at the row's end), and masked-off lanes are not read.
                let x = unsafe { _mm512_maskz_loadu_ps(masks[q], row_b.as_ptr().add(16 * q)) };
                *acc = _mm512_add_ps(*acc, _mm512_mul_ps(v, x));
            }
        }
        for (q, acc) in acc.iter().enumerate() {
            // SAFETY: as above, for this row of C.
            unsafe {
                _mm512_mask_storeu_ps(
                    self.row_c.as_mut_ptr().add(self.col + 16 * q),
                    masks[q],
                    *acc,
                )
            };
        }
    }
}

/// Each element of C's row is its own sum, term by term in order of the non-zeros.
#[inline(always)]
fn gather_plain(nonzeros: &NonZeros, first: usize, rows_b: Rows, c: &mut [f32]) {
    let n = rows_b.width;
    for (i, row_c) in c.chunks_exact_mut(n).enumerate() {
        let (at, values) = nonzeros.line(first + i);
        row_c.fill(0.0);
        for (&j, &v) in at.iter().zip(values) {
            for (o, &x) in row_c.iter_mut().zip(rows_b.row(j as usize)) {
                *o += v * x;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A `rows x cols` matrix with about `density` non-zeros, as a buffer and its row-major view.
    fn sparse_matrix(rows: usize, cols: usize, density: f64, seed: u64) -> Vec<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..rows * cols)
            .map(|_| if rng.gen_bool(density) { rng.gen_range(-1.0..1.0) } else { 0.0 })
            .collect()
    }

    fn row_major(cols: usize) -> Strided {
        Strided { offset: 0, rows: cols as isize, cols: 1 }
    }

    fn column_major(rows: usize) -> Strided {
        Strided { offset: 0, rows: 1, cols: rows as isize }
    }

    /// The row-major `rows x cols` matrix `m` stored the other way round.
    fn transposed(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
        (0..cols).flat_map(|j| (0..rows).map(move |i| m[i * cols + j])).collect()
    }

    /// `g` by the sparse loop on `threads`, C read back row-major; `None` if it refused. The
    /// FLOPs it reports are 2 per non-zero of the operand it compressed and column of the other.
    fn run(g: &Gemm, threads: usize, a: &[f32], b: &[f32]) -> Option<Vec<f32>> {
        let mut out = Vec::new();
        let flops = product(g, threads, a, b, g.m * g.n, &mut out)?;
        let nonzeros = |m: &[f32]| m.iter().filter(|x| **x != 0.0).count() as f64;
        let (by_a, by_b) = (2.0 * nonzeros(a) * g.n as f64, 2.0 * nonzeros(b) * g.m as f64);
        assert!(flops == by_a || flops == by_b, "{flops} FLOPs: not {by_a} nor {by_b}");
        Some(
            (0..g.m)
                .flat_map(|i| (0..g.n).map(move |l| (i, l)))
                .map(|(i, l)| out[g.c.at(i, l)])
                .collect(),
        )
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Every layout of A, B and C, and the sparse operand on either side, gives the same bits,
    /// within 1e-5 of a dense sum in f64, on 1, 2 and 3 threads.
    #[test]
    fn every_layout_and_thread_count_gives_the_same_bits_as_a_dense_sum() {
        let (m, k, n) = (600, 784, 100);
        let a = sparse_matrix(m, k, 0.19, 1);
        let b: Vec<f32> = sparse_matrix(k, n, 1.0, 2);
        assert!(
            a.iter().filter(|&&x| x != 0.0).count() * n >= PARALLEL_PRODUCT,
            "split on threads"
        );
        let reference: Vec<f64> = (0..m)
            .flat_map(|i| (0..n).map(move |l| (i, l)))
            .map(|(i, l)| (0..k).map(|j| f64::from(a[i * k + j]) * f64::from(b[j * n + l])).sum())
            .collect();
        let (a_t, b_t) = (transposed(&a, m, k), transposed(&b, k, n));
        let mut first: Option<Vec<u32>> = None;
        for (a_buf, a_view) in [(&a, row_major(k)), (&a_t, column_major(m))] {
            for (b_buf, b_view) in [(&b, row_major(n)), (&b_t, column_major(k))] {
                for c in [row_major(n), column_major(m)] {
                    for threads in [1, 2, 3] {
                        let g = Gemm { m, k, n, a: a_view, b: b_view, c };
                        let c_rows = run(&g, threads, a_buf, b_buf).expect("A is sparse");
                        for (x, r) in c_rows.iter().zip(&reference) {
                            assert!((f64::from(*x) - r).abs() <= 1e-5 * r.abs().max(1.0));
                        }
                        // The same product with the sparse operand as B: C^T = B^T A^T.
                        let swapped = run(&g.transposed(), threads, b_buf, a_buf)
                            .expect("B of the transposed product is sparse");
                        assert_eq!(bits(&transposed(&swapped, n, m)), bits(&c_rows));
                        let first = first.get_or_insert_with(|| bits(&c_rows));
                        assert_eq!(*first, bits(&c_rows), "{a_view:?} {b_view:?} {c:?} {threads}");
                    }
                }
            }
        }
    }

    /// The vectorised loops give the plain loop's bits, for widths with and without a partial
    /// last vector, a row without non-zeros, and from a first row past 0.
    #[test]
    fn vectorised_loops_give_the_plain_loops_bits() {
        for n in [1, 15, 16, 70, 128, 200, 300] {
            let (m, k) = (20, 50);
            let mut a = sparse_matrix(m, k, 0.2, 3);
            a[4 * k..5 * k].fill(0.0);
            let b = sparse_matrix(k, n, 1.0, 4);
            let mut nonzeros = NonZeros::default();
            assert_eq!(nonzeros.scan(&a, row_major(k), m, k), Some(true));
            let rows_b = Rows { data: &b, width: n };
            let mut plain = vec![f32::NAN; m * n];
            gather_plain(&nonzeros, 0, rows_b, &mut plain);
            assert!(plain.iter().all(|x| x.is_finite()));
            for first in [0, 3] {
                let mut dispatched = vec![f32::NAN; (m - first) * n];
                gather(&nonzeros, first, rows_b, &mut dispatched);
                assert_eq!(bits(&plain[first * n..]), bits(&dispatched), "width {n}, from {first}");
            }
        }
    }

    /// A dense operand, or one just denser than allowed, is left to sgemm with the output
    /// untouched; a NaN counts as a non-zero and reaches its row of C.
    #[test]
    fn dense_operands_are_refused_and_nan_is_kept() {
        let (m, k, n) = (64, 100, 32);
        let b = sparse_matrix(k, n, 1.0, 5);
        let g = Gemm { m, k, n, a: row_major(k), b: row_major(n), c: row_major(n) };
        let dense = sparse_matrix(m, k, 1.0, 6);
        let mut out = vec![7.0f32; 3];
        assert_eq!(product(&g, 1, &dense, &b, m * n, &mut out), None);
        assert_eq!(out, [7.0; 3]);
        // Every row a third non-zero: more than MAX_DENSITY, yet under the glance's limit.
        let mut denser = vec![0.0f32; m * k];
        denser.iter_mut().step_by(3).for_each(|x| *x = 1.0);
        assert!(run(&g, 1, &denser, &b).is_none());
        let mut a = sparse_matrix(m, k, 0.1, 7);
        a[5 * k + 3] = f32::NAN;
        let c = run(&g, 1, &a, &b).expect("sparse");
        assert!(c[5 * n..6 * n].iter().all(|x| x.is_nan()));
        assert!(c[..5 * n].iter().chain(&c[6 * n..]).all(|x| x.is_finite()));
    }

    /// An operand seen before is reused only while its elements are the same: changing one
    /// element (or only its sign of zero, which changes no product) gives the new product.
    #[test]
    fn remembered_operands_follow_their_elements() {
        let (m, k, n) = (40, 60, 24);
        let b = sparse_matrix(k, n, 1.0, 8);
        let g = Gemm { m, k, n, a: row_major(k), b: row_major(n), c: row_major(n) };
        let mut a = sparse_matrix(m, k, 0.15, 9);
        let fresh = |a: &[f32]| {
            BUFFERS.with_borrow_mut(|buffers| buffers.seen.clear());
            run(&g, 1, a, &b).expect("sparse")
        };
        let before = run(&g, 1, &a, &b).expect("sparse");
        assert_eq!(bits(&run(&g, 1, &a, &b).expect("sparse")), bits(&before));
        let at = a.iter().position(|&x| x == 0.0).expect("a zero");
        a[at] = 0.5;
        let changed = run(&g, 1, &a, &b).expect("sparse");
        assert_ne!(bits(&changed), bits(&before));
        assert_eq!(bits(&changed), bits(&fresh(&a)));
        a[at] = -0.0;
        assert_eq!(bits(&run(&g, 1, &a, &b).expect("sparse")), bits(&before));
        // A thread remembers at most SEEN operands; one found again (data, at every step)
        // outlives more new ones than that (masked weights, new at every step).
        run(&g, 1, &a, &b).expect("sparse");
        for seed in 0..2 * SEEN as u64 {
            run(&g, 1, &sparse_matrix(m, k, 0.15, 100 + seed), &b).expect("sparse");
        }
        let last = sparse_matrix(m, k, 0.15, 100 + 2 * SEEN as u64 - 1);
        BUFFERS.with_borrow(|buffers| {
            assert_eq!(buffers.seen.len(), SEEN);
            assert!(same_bits(1, &buffers.seen[0].elements, &last));
            assert!(buffers.seen.iter().any(|seen| same_bits(2, &seen.elements, &a)));
        });
    }

    /// A comparison split over the threads finds one changed bit in any of their blocks.
    #[test]
    fn a_changed_bit_is_found_on_every_thread_count() {
        let a = sparse_matrix(1, 100_003, 0.2, 11);
        for threads in 1..=3 {
            let splits = crate::kernels::cpu::splits_on_this_thread();
            assert!(same_bits(threads, &a, &a.clone()));
            let split = crate::kernels::cpu::splits_on_this_thread() > splits;
            assert_eq!(split, threads > 1, "split at {threads} threads");
            assert!(!same_bits(threads, &a, &a[1..]));
            for at in [0, a.len() / 3, a.len() / 2 + 1, a.len() - 1] {
                let mut b = a.clone();
                b[at] = f32::from_bits(b[at].to_bits() ^ 1);
                assert!(!same_bits(threads, &a, &b), "element {at} at {threads} threads");
            }
        }
    }
}
