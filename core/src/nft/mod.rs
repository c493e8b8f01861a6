//! nf_tables over netlink (filled in by the nft issue).
