//! Kernel plumbing: rtnetlink, network namespaces, ethtool and nf_tables. Knows nothing of
//! sandboxes, peers or ports; the components above turn podnet's model into these calls.

pub mod ethtool;
pub mod netlink;
pub mod netns;
pub mod nft;
