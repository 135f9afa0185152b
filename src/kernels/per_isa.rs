//! Loops of plain Rust compiled once per instruction set and chosen at run time.
//!
//! The crate is built for the baseline of its target (SSE2 on x86-64), and nothing is
//! built with `-C target-cpu`. A loop that the compiler can vectorise runs two to four
//! times wider when it is compiled for AVX2 or AVX-512, so the hot elementwise loops
//! (the BCE of [`bce`](super::bce), the Adam update) are compiled three times by
//! [`compiled_for_each_isa!`] and the build for the CPU is picked when they run, the
//! same way the matrix products pick their micro-kernel ([`Isa::detect`]). Only the
//! width of the vectors changes, never the operations or their order, so every build
//! gives the same bits; each user of the macro has a test comparing them.
//!
//! [`Isa::detect`]: crate::kernels::gemm::Isa::detect

/// Compiles `$body` (an `#[inline(always)]` loop of plain Rust) once for each
/// instruction set of [`Isa`](crate::kernels::gemm::Isa) and defines `$name`, which runs the build for the CPU's
/// ([`Isa::detect`](crate::kernels::gemm::Isa::detect), once per process), and `$name_on`, which runs the build for a given
/// one (the tests compare them). The compiler vectorises the fixed-width chunks of each
/// loop with the widest registers of the set it compiles for; the operations and their
/// order are those of the source (no contraction into fused multiply-adds, which Rust
/// never does unasked), so every build gives the same bits.
macro_rules! compiled_for_each_isa {
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident / $name_on:ident ($($arg:ident: $ty:ty),*) $(-> $ret:ty)? = $body:ident;
    ) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            $name_on($crate::kernels::gemm::Isa::detect(), $($arg),*)
        }

        /// The build of this loop for `isa` (the portable one if the CPU lacks `isa`).
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
        fn $name_on(isa: $crate::kernels::gemm::Isa, $($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2")]
                fn avx512($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                if isa.is_available() {
                    match isa {
                        // SAFETY: `is_available` has checked at run time that this CPU
                        // has AVX-512F and AVX2, the features `avx512` is compiled
                        // for; its body is safe Rust (bounds-checked slices).
                        $crate::kernels::gemm::Isa::Avx512 => return unsafe { avx512($($arg),*) },
                        // SAFETY: as above, for AVX2.
                        $crate::kernels::gemm::Isa::Avx2 => return unsafe { avx2($($arg),*) },
                        $crate::kernels::gemm::Isa::Portable => {}
                    }
                }
            }
            $body($($arg),*)
        }
    };
}

pub(crate) use compiled_for_each_isa;
