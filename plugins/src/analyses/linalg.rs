//! Eigenvalues of small symmetric matrices by the cyclic Jacobi method.
//!
//! Written here because the graph metrics need only the spectrum of matrices of a few hundred
//! rows, and no small, dependency-free crate on the registry does this without pulling in a
//! full linear-algebra stack.

/// Eigenvalues of the symmetric `n × n` matrix `a` (row-major), sorted in decreasing order.
pub fn symmetric_eigenvalues(a: &[f64], n: usize) -> Vec<f64> {
    assert_eq!(a.len(), n * n, "symmetric_eigenvalues: {} values for n = {n}", a.len());
    let mut m = a.to_vec();
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i * n + j] * m[i * n + j])
            .sum();
        let scale: f64 = m.iter().map(|v| v * v).sum::<f64>().max(f64::MIN_POSITIVE);
        if off <= 1e-24 * scale {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (m[q * n + q] - m[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (mkp, mkq) = (m[k * n + p], m[k * n + q]);
                    m[k * n + p] = c * mkp - s * mkq;
                    m[k * n + q] = s * mkp + c * mkq;
                }
                for k in 0..n {
                    let (mpk, mqk) = (m[p * n + k], m[q * n + k]);
                    m[p * n + k] = c * mpk - s * mqk;
                    m[q * n + k] = s * mpk + c * mqk;
                }
            }
        }
    }
    let mut ev: Vec<f64> = (0..n).map(|i| m[i * n + i]).collect();
    ev.sort_by(|a, b| b.total_cmp(a));
    ev
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_spectra() {
        let ev = symmetric_eigenvalues(&[2.0, 1.0, 1.0, 2.0], 2);
        assert!((ev[0] - 3.0).abs() < 1e-10 && (ev[1] - 1.0).abs() < 1e-10);
        // Path graph on 3 nodes: ±sqrt(2), 0.
        let ev = symmetric_eigenvalues(&[0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0], 3);
        assert!(
            (ev[0] - 2f64.sqrt()).abs() < 1e-10
                && ev[1].abs() < 1e-10
                && (ev[2] + 2f64.sqrt()).abs() < 1e-10
        );
    }
}
