//! Shared helpers of `tests/isolation.rs` and of `compat/tests/`
//! (`differential`, `import`, `import_readonly`): a seeded PRNG, small key
//! pools (so keys collide), one `Op` per trait method, a generator of random
//! ops, and `apply`, which runs an op against any `Backend` and renders the
//! result canonically (unordered lists sorted, structs without `PartialEq`
//! rendered field by field) so that two stores, or a store and a model, can
//! be compared as strings.
//!
//! Users include this file with `#[path]`; its submodules are named with
//! `#[path]` too (relative to this file), so they resolve the same from
//! every including crate. Every public name is re-exported here.

#![allow(dead_code)] // each test binary uses a different subset

#[path = "diff_util/apply.rs"]
mod apply;
#[path = "diff_util/canon.rs"]
mod canon;
#[path = "diff_util/generate.rs"]
mod generate;
#[path = "diff_util/like.rs"]
mod like;
#[path = "diff_util/ops.rs"]
mod ops;
#[path = "diff_util/pools.rs"]
mod pools;
#[path = "diff_util/rng.rs"]
mod rng;
#[path = "diff_util/specs.rs"]
mod specs;

// Each test binary uses a different subset of the re-exports too.
#[allow(unused_imports)]
pub use apply::*;
#[allow(unused_imports)]
pub use canon::*;
#[allow(unused_imports)]
pub use like::*;
#[allow(unused_imports)]
pub use ops::*;
#[allow(unused_imports)]
pub use pools::*;
#[allow(unused_imports)]
pub use rng::*;
#[allow(unused_imports)]
pub use specs::*;
