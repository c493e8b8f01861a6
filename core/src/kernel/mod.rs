//! Kernel plumbing: rtnetlink, network namespaces, ethtool and nf_tables. Knows nothing of
//! sandboxes, peers or ports; the components above turn podnet's model into these calls.

// podnet's CLI, benchmarks and tests use more of this layer (feature `internals`) than the
// library itself does.
#![cfg_attr(
    not(feature = "internals"),
    allow(dead_code, reason = "used by podnet's tools through the internals feature")
)]

pub mod ethtool;
pub mod netlink;
pub mod netns;
pub mod nft;
