//! Strided `matrixmultiply::sgemm` calls: one product `C = A B` of any strided views, split over
//! the kernel threads by rows or columns of C (never a sum, so every thread count gives the same
//! bits), and plain loops for products too small to pack.

// matrixmultiply's GEMM takes raw pointers and strides; blocks of one product share an output.
#![allow(unsafe_code)]

/// The small products of a contraction (one per batch entry, e.g. attention's per-example
/// products) as a fresh output of `total` elements, their batch entries split over `threads`
/// when there are enough of them (each entry writes its own elements of the output, and the
/// entries together write all of them, so nothing is zeroed first).
pub(super) fn small_batch(
    threads: usize,
    gemms: &[Gemm],
    a: &[f32],
    b: &[f32],
    total: usize,
) -> Vec<f32> {
    debug_assert_eq!(gemms.iter().map(|g| g.m * g.n).sum::<usize>(), total, "entries cover C");
    let work: usize = gemms.iter().map(|g| g.m * g.n * g.k).sum();
    let parts = if work >= SMALL_BATCH_PARALLEL { threads.min(gemms.len()) } else { 1 };
    let mut out: Vec<f32> = Vec::with_capacity(total);
    let c = SharedOut(out.as_mut_ptr());
    let run = |lo: usize, hi: usize| {
        let mut scratch = Scratch::default();
        gemms[lo..hi].iter().for_each(|g| g.small(a, b, c, &mut scratch));
    };
    let cut = |p: usize| p * gemms.len() / parts;
    super::pool::split(threads, parts, &|p| run(cut(p), cut(p + 1)));
    // SAFETY: the entries' outputs are the disjoint `m x n` blocks of C, `total` elements in
    // all, and `small` writes every element of its entry's (or panicked, re-raised by `split`
    // before this line).
    unsafe { out.set_len(total) };
    out
}

/// Where a matrix's elements lie in its buffer: `(i, j)` at `offset + i * rows + j * cols`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Strided {
    pub(super) offset: isize,
    pub(super) rows: isize,
    pub(super) cols: isize,
}

impl Strided {
    #[inline(always)]
    pub(super) fn at(&self, i: usize, j: usize) -> usize {
        (self.offset + i as isize * self.rows + j as isize * self.cols) as usize
    }
}

/// The `rows x cols` matrix `view` of `buffer` copied row-major into `out`, in tiles so that a
/// transposed view is read a cache line at a time.
pub(super) fn copy_rows(
    buffer: &[f32],
    view: Strided,
    rows: usize,
    cols: usize,
    out: &mut Vec<f32>,
) {
    const TILE: usize = 32;
    out.resize(rows * cols, 0.0);
    for i0 in (0..rows).step_by(TILE) {
        for j0 in (0..cols).step_by(TILE) {
            for j in j0..(j0 + TILE).min(cols) {
                for i in i0..(i0 + TILE).min(rows) {
                    out[i * cols + j] = buffer[view.at(i, j)];
                }
            }
        }
    }
}

/// One `C[m, n] = A[m, k] B[k, n]` of a contraction (one batch entry).
#[derive(Debug, Clone, Copy)]
pub(super) struct Gemm {
    pub(super) m: usize,
    pub(super) k: usize,
    pub(super) n: usize,
    pub(super) a: Strided,
    pub(super) b: Strided,
    pub(super) c: Strided,
}

/// Products of at most this many multiply-adds (per batch entry) run as plain loops: for the
/// attention of a short context (a batch of `2 x 128 x 2` products per example), packing the
/// operands for sgemm costs more than the product itself.
pub(super) const SMALL_PRODUCT: usize = 4096;

/// Products of at least this many multiply-adds (about 15 µs of sgemm) are split over the kernel
/// threads. With helpers that stay awake between products ([`super::pool`]) a split costs a few
/// µs; while they slept between products (about 100 µs to wake), splitting the transformer's
/// 15M and 30M products made its step slower. The paper MLP's 2.9M products (911 x 48 x 67)
/// gained nothing from a split until the elementwise kernels around them were split too; since,
/// its step at two threads is about 10% shorter with them split, and about 12% shorter again
/// with its 1.6M products (67 x 500 x 48) split as well (tests/bench/BENCHMARKS.md).
pub(super) const PARALLEL_PRODUCT: usize = 1 << 20;

/// A contraction of small products splits its batch entries over the threads from this many
/// multiply-adds in all.
const SMALL_BATCH_PARALLEL: usize = 1 << 20;

impl Gemm {
    /// The product `C^T = B^T A^T` (same buffers, roles of A and B swapped).
    pub(super) fn transposed(&self) -> Gemm {
        let t = |s: Strided| Strided { offset: s.offset, rows: s.cols, cols: s.rows };
        Gemm { m: self.n, k: self.k, n: self.m, a: t(self.b), b: t(self.a), c: t(self.c) }
    }

    /// `C = A B` with every element summed in order of `k` (bit for bit the plain loop
    /// `sum += a_ij * b_jl`), as row updates over contiguous copies so that they vectorise.
    /// Oriented so that the rows updated are the longer side of C.
    fn small(&self, a: &[f32], b: &[f32], c: SharedOut, scratch: &mut Scratch) {
        if self.n < self.m {
            return self.transposed().small(b, a, c, scratch);
        }
        let (m, k, n) = (self.m, self.k, self.n);
        if n < 16 {
            // Too narrow to vectorise a row: one dot product per element.
            for i in 0..m {
                for l in 0..n {
                    let sum =
                        (0..k).fold(0.0f32, |s, j| s + a[self.a.at(i, j)] * b[self.b.at(j, l)]);
                    // SAFETY: element (i, l) of C lies inside the output buffer and belongs to
                    // this product alone.
                    unsafe { *c.0.add(self.c.at(i, l)) = sum };
                }
            }
            return;
        }
        scratch.rows_c.clear();
        scratch.rows_c.resize(m * n, 0.0);
        scratch.row_b.resize(n, 0.0);
        for j in 0..k {
            let row_b: &[f32] = if self.b.cols == 1 {
                &b[self.b.at(j, 0)..][..n]
            } else {
                scratch.row_b.iter_mut().enumerate().for_each(|(l, x)| *x = b[self.b.at(j, l)]);
                &scratch.row_b
            };
            for (i, row_c) in scratch.rows_c.chunks_exact_mut(n).enumerate() {
                let aij = a[self.a.at(i, j)];
                row_c.iter_mut().zip(row_b).for_each(|(o, x)| *o += aij * x);
            }
        }
        self.write(&scratch.rows_c, c);
    }

    /// Writes the row-major `m x n` result `rows_c` into C, elements no other product of the
    /// contraction writes.
    pub(super) fn write(&self, rows_c: &[f32], c: SharedOut) {
        let n = self.n;
        for (i, row) in rows_c.chunks_exact(n).enumerate() {
            if self.c.cols == 1 {
                // SAFETY: row i of C lies inside the output buffer (its strides come from the
                // output's own shape) and belongs to this product alone; it may not have been
                // written yet, so it is written through a pointer, never read.
                unsafe { std::ptr::copy_nonoverlapping(row.as_ptr(), c.0.add(self.c.at(i, 0)), n) };
            } else {
                for (l, v) in row.iter().enumerate() {
                    // SAFETY: as above, for element (i, l).
                    unsafe { *c.0.add(self.c.at(i, l)) = *v };
                }
            }
        }
    }

    /// `C = A B` on `threads` threads: a product of at least [`PARALLEL_PRODUCT`] multiply-adds
    /// is cut into blocks of rows of C (of columns when C has too few rows), each one sgemm call
    /// on its own thread. Each element of C is still one sum over K in sgemm's order.
    /// The product as the whole of a fresh output of `total` elements (the only batch entry of
    /// a contraction): no need to zero the output first.
    pub(super) fn dense_alone(
        &self,
        threads: usize,
        a: &[f32],
        b: &[f32],
        total: usize,
    ) -> Vec<f32> {
        let mut out: Vec<f32> = Vec::with_capacity(total);
        self.dense_on(threads, a, b, SharedOut(out.as_mut_ptr()));
        // SAFETY: with beta = 0, sgemm writes every element of C without reading it ("If beta
        // is zero, then C does not need to be initialized"), and C, the `m x n` output of the
        // only batch entry (row-major or a permutation of it), is all `total` elements.
        unsafe { out.set_len(total) };
        out
    }

    pub(super) fn dense_on(&self, threads: usize, a: &[f32], b: &[f32], out: SharedOut) {
        let parts = if self.m * self.n * self.k >= PARALLEL_PRODUCT { threads } else { 1 };
        if parts <= 1 {
            self.sgemm(a, b, out);
            return;
        }
        let by_rows = self.m >= self.n;
        let len = if by_rows { self.m } else { self.n };
        let blocks: Vec<Gemm> = (0..parts)
            .map(|p| (p * len / parts, (p + 1) * len / parts))
            .filter(|(lo, hi)| lo < hi)
            .map(|(lo, hi)| {
                let mut g = *self;
                if by_rows {
                    g.m = hi - lo;
                    g.a.offset += lo as isize * self.a.rows;
                    g.c.offset += lo as isize * self.c.rows;
                } else {
                    g.n = hi - lo;
                    g.b.offset += lo as isize * self.b.cols;
                    g.c.offset += lo as isize * self.c.cols;
                }
                g
            })
            .collect();
        super::pool::split(threads, blocks.len(), &|p| blocks[p].sgemm(a, b, out));
    }

    /// One `matrixmultiply::sgemm` call writing C through `c`.
    fn sgemm(&self, a: &[f32], b: &[f32], c: SharedOut) {
        // SAFETY: every index sgemm touches, offset + (i < m) * rows + (j < k) * cols, lies
        // inside its buffer: A's and B's strides come from views whose extents luminal checked
        // against these buffers, no axis is padded, and a slice only moves the offset within the
        // buffer; C's are those of a row-major buffer of the output's shape, or a permutation of
        // them (`ProductLayoutPass`), over a buffer of that many elements. Blocks of one product
        // running at once write disjoint rows (or columns) of C.
        unsafe {
            matrixmultiply::sgemm(
                self.m,
                self.k,
                self.n,
                1.0,
                a.as_ptr().offset(self.a.offset),
                self.a.rows,
                self.a.cols,
                b.as_ptr().offset(self.b.offset),
                self.b.rows,
                self.b.cols,
                0.0,
                c.0.offset(self.c.offset),
                self.c.rows,
                self.c.cols,
            );
        }
    }
}

/// Buffers [`Gemm::small`] reuses over the batch entries of a contraction.
#[derive(Default)]
struct Scratch {
    rows_c: Vec<f32>,
    row_b: Vec<f32>,
}

/// The output buffer of a product whose blocks are computed on several threads, each writing
/// its own rows or columns.
#[derive(Clone, Copy)]
pub(super) struct SharedOut(pub(super) *mut f32);

impl SharedOut {
    /// Elements `start..start + len` of the buffer.
    ///
    /// # Safety
    /// The buffer holds them and outlives the slice, and no other holder of this `SharedOut`
    /// touches them meanwhile.
    pub(super) unsafe fn slice<'a>(self, start: usize, len: usize) -> &'a mut [f32] {
        // SAFETY: as the caller promises.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start), len) }
    }
}

// SAFETY: the blocks that share a `SharedOut` write disjoint elements, and the buffer outlives
// the scope that runs them.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32)
            .map(|i| {
                ((i.wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    /// A product large enough to be split gives the same bits on 1, 2 and 3 threads, split by
    /// rows (tall C) and by columns (wide C).
    #[test]
    fn split_products_give_the_same_bits_on_every_thread_count() {
        for (m, k, n) in [(512, 256, 256), (64, 256, 2048)] {
            assert!(m * n * k >= PARALLEL_PRODUCT);
            let (a, b) = (values(m * k, 1), values(k * n, 2));
            let row_major = |cols: usize| Strided { offset: 0, rows: cols as isize, cols: 1 };
            let g = Gemm { m, k, n, a: row_major(k), b: row_major(n), c: row_major(n) };
            let run = |threads| {
                let mut c = vec![0.0f32; m * n];
                g.dense_on(threads, &a, &b, SharedOut(c.as_mut_ptr()));
                c
            };
            let one = run(1);
            assert!(one.iter().any(|&v| v != 0.0));
            for threads in [2, 3] {
                assert!(
                    run(threads).iter().zip(&one).all(|(x, y)| x.to_bits() == y.to_bits()),
                    "{m}x{k}x{n} on {threads} threads"
                );
            }
        }
    }

    /// Small products give the bits of the plain loop `sum += a_ij * b_jl` in order of `k`
    /// for every layout of A, B and C (row updates, transposed orientation, narrow dot
    /// products), and a batch of them is the same on 1, 2 and 3 threads.
    #[test]
    fn small_products_give_the_plain_loops_bits_on_every_thread_count() {
        let layouts = |rows: usize, cols: usize| {
            [
                Strided { offset: 0, rows: cols as isize, cols: 1 },
                Strided { offset: 0, rows: 1, cols: rows as isize },
            ]
        };
        for (m, k, n) in [(2, 128, 2), (2, 2, 128), (128, 2, 2), (3, 5, 40), (40, 7, 3)] {
            let (a, b) = (values(m * k, 3), values(k * n, 4));
            for (la, lb, lc) in layouts(m, k)
                .into_iter()
                .flat_map(|la| layouts(k, n).map(move |lb| (la, lb)))
                .flat_map(|(la, lb)| layouts(m, n).map(move |lc| (la, lb, lc)))
            {
                let g = Gemm { m, k, n, a: la, b: lb, c: lc };
                let mut plain = vec![0.0f32; m * n];
                for i in 0..m {
                    for l in 0..n {
                        let mut sum = 0.0f32;
                        for j in 0..k {
                            sum += a[la.at(i, j)] * b[lb.at(j, l)];
                        }
                        plain[lc.at(i, l)] = sum;
                    }
                }
                let mut c = vec![f32::NAN; m * n];
                g.small(&a, &b, SharedOut(c.as_mut_ptr()), &mut Scratch::default());
                assert!(
                    c.iter().zip(&plain).all(|(x, y)| x.to_bits() == y.to_bits()),
                    "{m}x{k}x{n} with {la:?} {lb:?} {lc:?}"
                );
            }
        }
        // A batch of 2,100 products of 2 x 128 x 2, each writing its own 2 x 2 block.
        let (m, k, n, batch) = (2, 128, 2, 2100);
        let (a, b) = (values(batch * m * k, 5), values(batch * k * n, 6));
        let gemms: Vec<Gemm> = (0..batch)
            .map(|e| Gemm {
                m,
                k,
                n,
                a: Strided { offset: (e * m * k) as isize, rows: k as isize, cols: 1 },
                b: Strided { offset: (e * k * n) as isize, rows: 1, cols: k as isize },
                c: Strided { offset: (e * m * n) as isize, rows: n as isize, cols: 1 },
            })
            .collect();
        assert!(batch * m * n * k >= SMALL_BATCH_PARALLEL);
        let run = |threads| small_batch(threads, &gemms, &a, &b, batch * m * n);
        let one = run(1);
        assert!(one.iter().all(|v| v.is_finite()) && one.iter().any(|&v| v != 0.0));
        for threads in [2, 3] {
            assert!(one.iter().zip(run(threads)).all(|(x, y)| x.to_bits() == y.to_bits()));
        }
    }
}
