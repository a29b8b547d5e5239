//! Flush-to-zero for subnormal floats, for measuring whether they cost time.
//!
//! Late in a grokking run the softmax of confidently wrong classes underflows and Adam's second
//! moments of pruned weights decay through the subnormal range; on CPUs that handle subnormal
//! operands in microcode that is many times slower. `ticketlab bench --flush-denormals` sets
//! the FTZ and DAZ bits before the benchmark so the two can be compared (BENCHMARKS.md records
//! the measurement: on the machines measured, the late phase is not slower, so training does
//! not flush and keeps IEEE semantics).

// Setting the SSE control register needs inline assembly.
#![allow(unsafe_code)]

/// Sets flush-to-zero and denormals-are-zero on the calling thread (threads it spawns later
/// inherit them); a no-op off x86_64.
pub fn flush_to_zero() {
    #[cfg(target_arch = "x86_64")]
    {
        const FTZ_DAZ: u32 = (1 << 15) | (1 << 6);
        let mut csr: u32 = 0;
        // SAFETY: stmxcsr and ldmxcsr only read and write the SSE control register, through a
        // valid pointer to a local.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags));
            csr |= FTZ_DAZ;
            std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, preserves_flags));
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn subnormals_become_zero_after_flushing() {
        // A thread of its own: the setting stays with the thread.
        std::thread::spawn(|| {
            let tiny = std::hint::black_box(1e-39f32);
            assert!(tiny * std::hint::black_box(1.0) > 0.0, "IEEE keeps subnormals by default");
            super::flush_to_zero();
            if cfg!(target_arch = "x86_64") {
                assert_eq!(std::hint::black_box(1e-39f32) * std::hint::black_box(1.0), 0.0);
            }
        })
        .join()
        .unwrap();
    }
}
